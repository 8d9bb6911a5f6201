"""configs/common.py and the config files built from it."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs import common

# configs/ also holds the package marker and the shared fields.
NOT_CONFIGS = ("__init__", "common")
CONFIGS = sorted(
  p
  for p in (Path(__file__).parent.parent / "configs").glob("*.py")
  if p.stem not in NOT_CONFIGS
)
# The top-level fields plstm.train reads, and their types.
DRIVER_FIELDS = {
  "experiment": str,
  "seed": int,
  "num_seeds": int,
  "steps_per_epoch": int,
  "num_epochs": int,
  "metric": str,
  "mode": str,
  "target": float,
  "log_every": int,
  "checkpoint_every": int,
  "keep_checkpoints": int,
  "progress_bar": bool,
}


def _load(path: Path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_variant_has_the_driver_fields(path):
  module = _load(path)
  assert module.get_config().to_dict() == module.get_config("small").to_dict()
  for variant in common.VARIANTS:
    config = module.get_config(variant)
    config.lock()
    for field, kind in DRIVER_FIELDS.items():
      assert isinstance(config[field], kind), (variant, field)
    assert importlib.util.find_spec(config.experiment) is not None
    assert config.seed == 0 and config.num_seeds == 1
    assert config.progress_bar == (variant != "smoke")
    assert isinstance(config.model.name, str)
    assert isinstance(config.data.batch_size, int)
    with pytest.raises(AttributeError, match="Did you mean .num_epochs"):
      config.num_epoch = 1


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_smoke_runs_a_few_steps_and_saves(path):
  config = _load(path).get_config("smoke")
  steps = config.num_epochs * config.steps_per_epoch
  assert 2 <= steps <= 6
  assert config.num_epochs >= 2  # two evaluations
  assert config.checkpoint_every < steps  # a checkpoint before the last
  assert config.log_every <= steps


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_unknown_variant_names_the_file_and_the_variants(path):
  with pytest.raises(ValueError) as e:
    _load(path).get_config("big")
  assert str(e.value) == (
    f"configs/{path.name}: unknown variant 'big'; use small, paper or smoke."
  )


def test_check_variant():
  for variant in common.VARIANTS:
    common.check_variant("/x/y/z.py", variant)
  with pytest.raises(ValueError, match=r"^y/z\.py: unknown variant 'Small'"):
    common.check_variant("/x/y/z.py", "Small")


def test_a_config_loads_from_another_directory(tmp_path):
  """With the clone on PYTHONPATH (configs import configs.common, and the
  experiments are not installed)."""
  root = Path(__file__).parent.parent
  path = root / "configs/freq_task.py"
  code = (  # As plstm.train reads --config.
    "from absl import flags\n"
    "from ml_collections import config_flags\n"
    "config = config_flags.DEFINE_config_file('config')\n"
    f"flags.FLAGS(['x', '--config={path}:smoke'])\n"
    "c = config.value\n"
    "print(c.experiment, c.model.name, c.steps_per_epoch)"
  )
  out = subprocess.run(
    [sys.executable, "-c", code],
    cwd=tmp_path,
    env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(root)},
    capture_output=True,
    text=True,
    timeout=120,
    check=True,
  )
  assert out.stdout.split() == ["experiments.freq_task", "plstm", "3"]
