"""A data setting that its source switch leaves unused is refused, by name.

Each experiment checks its config when it builds its task, before any file
is read; the shipped variants pass.
"""

import importlib

import pytest

from configs import common

# (config file, variant, overrides of config.data, the message).
UNUSED = [
  (
    "smnist",
    "small",
    {"synthetic": True},
    r"^config.data.dir is set \('../shared/data/mnist'\) but "
    r"config.data.synthetic is True, which reads no files; unset one",
  ),
  (
    "smnist_lsnn",
    "paper",
    {"synthetic": True},
    r"^config.data.dir is set .* but config.data.synthetic is True",
  ),
  (
    "smnist",
    "smoke",
    {"dir": "/data/mnist"},
    r"^config.data.dir is set \('/data/mnist'\) but config.data.synthetic",
  ),
  (
    "nmnist",
    "small",
    {"source": "synthetic"},
    r"^config.data.dir is set \('../shared/data/mnist'\) but "
    r"config.data.source is 'synthetic', which reads no files; unset one",
  ),
  (
    "nmnist",
    "smoke",
    {"source": "nmnist"},
    r"^config.data.source is 'nmnist', .* but config.data.dir is empty",
  ),
  (
    "series",
    "small",
    {"column": 2},
    r"^config.data.column is set \(2\) but config.data.csv is '', the "
    r"synthetic series, which reads no file; unset one",
  ),
]


def _task(name: str, variant: str, **data):
  config = importlib.import_module(f"configs.{name}").get_config(variant)
  config.data.update(data)
  config.lock()
  return importlib.import_module(config.experiment).make_task(config)


@pytest.mark.parametrize(
  "name,variant,data,match", UNUSED, ids=[f"{c[0]}-{c[1]}" for c in UNUSED]
)
def test_an_unused_data_setting_is_refused(name, variant, data, match):
  with pytest.raises(ValueError, match=match) as error:
    _task(name, variant, **data)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("variant", common.VARIANTS)
@pytest.mark.parametrize("name", ["smnist", "smnist_lsnn", "nmnist", "series"])
def test_shipped_variants_are_consistent(name, variant):
  _task(name, variant)


@pytest.mark.parametrize(
  "name,data",
  [
    ("smnist", {"synthetic": True, "dir": ""}),
    ("nmnist", {"source": "synthetic", "dir": ""}),
    ("nmnist", {"source": "nmnist", "dir": "/data/nmnist"}),
  ],
)
def test_the_documented_switches_pass(name, data):
  _task(name, "small", **data)
