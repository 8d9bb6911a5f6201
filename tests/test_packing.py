"""Packed sweeps: points x seeds as one program equal separate runs."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import freq_task as freq_config
from configs import store_recall as store_recall_config
from plstm import train
from plstm.train import packing

ROOT = Path(__file__).parent.parent


def _config(pack: dict | None = None, seeds: int = 1, module=freq_config):
  config = module.get_config("smoke")
  config.pack = json.dumps(pack) if pack else ""
  config.num_seeds = seeds
  return config


def _final_params(workdir: Path):
  ckpt = workdir / "checkpoints"
  step = max(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
  path = ckpt / str(step) / "state"
  # On this process's first device, whatever the devices that saved it.
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  checkpointer = ocp.StandardCheckpointer()
  like = jax.tree.map(
    lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
    checkpointer.metadata(path).item_metadata,
  )
  return jax.tree.leaves(checkpointer.restore(path, like)["params"])


def _records(workdir: Path) -> list[dict]:
  return [json.loads(x) for x in (workdir / "metrics.jsonl").open()]


def test_models_are_the_product_of_the_pack_times_the_seeds():
  config = _config(
    {"optimizer.learning_rate": [1e-3, 3e-3], "model.alpha": [0, 1e-3, 0.01]},
    seeds=2,
  )
  models = packing.models(config)
  assert len(models) == 12 and models.seeds == [0, 1]
  assert models.points[1] == {
    "optimizer.learning_rate": 1e-3,
    "model.alpha": 1e-3,
  }
  assert models.model_seeds == [0, 1] * 6
  np.testing.assert_array_equal(models.seed_index, [0, 1] * 6)
  values = models.values()
  np.testing.assert_allclose(values["model.alpha"][:4], [0, 0, 1e-3, 1e-3])
  assert values["model.alpha"].dtype == np.float32
  assert models.names()[1] == "learning_rate=0.001,alpha=0.001"
  assert models.labels()[3] == "learning_rate=0.001,alpha=0.001,seed=1"


def test_no_pack_is_one_point_of_seeds():
  models = packing.models(_config(seeds=3))
  assert (models.fields, models.points, models.seeds) == ((), [{}], [0, 1, 2])
  assert models.labels() == ["0", "1", "2"]


def test_a_pair_field_packs_as_rows():
  config = _config({"model.tau_range": [[1, 10], [10, 100]]})
  values = packing.models(config).values()["model.tau_range"]
  assert values.shape == (2, 2)
  copy = packing.substitute(config, {"model.tau_range": values[1]})
  assert tuple(float(v) for v in copy.model.tau_range) == (10.0, 100.0)
  assert config.model.tau_range != copy.model.tau_range


@pytest.mark.parametrize(
  "pack, message",
  [
    ("{", "config.pack is not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"model.alpah": [0]}', "config has no field 'model.alpah'"),
    ('{"model.alpha": []}', "needs a non-empty list"),
    ('{"model.alpha": 0.1}', "needs a non-empty list"),
    ('{"model.name": ["lstm", "plstm"]}', "model.name is not a number"),
    ('{"model.alpha": [[0, 1]]}', "must have the shape of"),
    ('{"data.batch_size": [8, 16]}', "data.batch_size sets the batches"),
    ('{"num_epochs": [1, 2]}', "num_epochs sets the run itself"),
    ('{"seed": [1, 2]}', "seed sets the run itself"),
  ],
)
def test_bad_packs_are_one_line(pack, message):
  config = _config()
  config.pack = pack
  with pytest.raises(ValueError, match=message) as e:
    packing.models(config)
  assert "\n" not in str(e.value)


def test_integers_pack_as_the_fields_type():
  config = _config({"model.r_on": [1, 0.5], "model.tau_range": [[1, 10]]})
  models = packing.models(config)
  assert models.points[0] == {"model.r_on": 1.0, "model.tau_range": (1.0, 10.0)}
  assert models.values()["model.r_on"].dtype == np.float32
  copy = packing.point_config(config, models.points[1])
  assert (copy.model.r_on, config.model.r_on) == (0.5, 0.05)


def test_a_points_value_gets_the_check_of_a_separate_run(tmp_path):
  config = _config({"model.r_on": [0.05, 0.0]})
  with pytest.raises(ValueError, match="config.pack point r_on=0: .*r_on"):
    train.train_and_evaluate(config, tmp_path / "run")


@pytest.mark.parametrize("field, values", [("model.hidden", [4, 8])])
def test_a_shape_field_stops_before_compiling(field, values, tmp_path):
  config = _config({field: values})
  with pytest.raises(ValueError) as e:
    train.train_and_evaluate(config, tmp_path / "run")
  message = str(e.value)
  assert field in message and "scripts/sweep.py" in message
  assert "\n" not in message
  assert not (tmp_path / "run/metrics.jsonl").exists()


def _assert_packed_equals_separate(tmp_path, module, pack: dict, seeds: int):
  config = _config(pack, seeds, module)
  packed = train.train_and_evaluate(config, tmp_path / "packed")
  models = packing.models(config)
  params = _final_params(tmp_path / "packed")
  records = _records(tmp_path / "packed")
  metric = f"val_{config.metric}"
  for m, (point, seed) in enumerate(
    (p, s) for p in models.points for s in models.seeds
  ):
    alone = _config(None, 1, module)
    alone.update_from_flattened_dict(point)
    alone.seed = seed
    name = f"{m}"
    train.train_and_evaluate(alone, tmp_path / name)
    for a, b in zip(params, _final_params(tmp_path / name), strict=True):
      np.testing.assert_allclose(a[m], b[0], rtol=2e-5, atol=5e-6)
    single = _records(tmp_path / name)
    assert [r["step"] for r in single] == [r["step"] for r in records]
    for r_alone, r_packed in zip(single, records, strict=True):
      for k, v in r_alone.items():
        if k.endswith(("_per_s", "wall_time_s")) or k in ("step", "epoch"):
          continue
        np.testing.assert_allclose(
          r_packed[f"{k}_per_model"][m], v, rtol=1e-4, atol=1e-6, err_msg=k
        )
  rows = packed["points"]
  assert [r["point"] for r in rows] == models.names()
  # results.json keeps every evaluation and where the run ran.
  assert packed["history"][-1] == packed["final"]
  assert len(packed["history"]) == config.num_epochs
  assert packed["machine"]["versions"]["jax"] == jax.__version__
  final = np.reshape(packed["final"][f"{metric}_per_model"], (-1, seeds))
  np.testing.assert_allclose([r[metric] for r in rows], final.mean(1))
  for name in ("summary.csv", "summary.md", "sweep.png"):
    assert (tmp_path / "packed" / name).stat().st_size > 0
  assert len((tmp_path / "packed/summary.csv").read_text().splitlines()) == (
    1 + len(rows)
  )


@pytest.mark.slow
def test_a_packed_learning_rate_and_alpha_sweep_equals_separate_runs(tmp_path):
  _assert_packed_equals_separate(
    tmp_path,
    freq_config,
    {"optimizer.learning_rate": [1e-3, 1e-2], "model.alpha": [0.0, 1e-3]},
    seeds=1,
  )


@pytest.mark.slow
def test_a_packed_threshold_and_beta_sweep_equals_separate_runs(tmp_path):
  _assert_packed_equals_separate(
    tmp_path,
    store_recall_config,
    {"model.thr": [0.01, 0.03], "model.beta": [0.5, 1.8]},
    seeds=1,
  )


def _cli(workdir: Path, *extra: str, devices: int = 2) -> subprocess.Popen:
  env = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".pytest_cache/jax"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
  }
  return subprocess.Popen(
    [
      sys.executable,
      "-m",
      "plstm.train",
      "--config=configs/freq_task.py:smoke",
      f"--workdir={workdir}",
      "--config.pack=" + json.dumps({"optimizer.learning_rate": [1e-3, 1e-2]}),
      "--config.num_seeds=2",
      f"--cpu_devices={devices}",
      *extra,
    ],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


@pytest.mark.slow
def test_eight_devices_split_models_and_rows_as_one_device(tmp_path):
  runs = [
    _cli(tmp_path / "one", devices=1),
    _cli(tmp_path / "eight", "--model_devices=4", devices=8),
  ]
  for run in runs:
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-2000:]
    # The epoch line names the best point and the range over points.
    assert re.search(
      r"val_accuracy \S+% ± \S+ \(2 seeds\), best of 2 points: "
      r"learning_rate=0\.0\d+; points \S+% to \S+%",
      stdout,
    ), stdout
  one, eight = (
    json.loads((tmp_path / n / "results.json").read_text())
    for n in ("one", "eight")
  )
  assert (one["devices"], eight["devices"]) == (1, 8)
  np.testing.assert_allclose(
    one["final"]["val_loss_per_model"],
    eight["final"]["val_loss_per_model"],
    rtol=1e-5,
  )
  for a, b in zip(
    _final_params(tmp_path / "one"),
    _final_params(tmp_path / "eight"),
    strict=True,
  ):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=5e-6)


@pytest.mark.slow
def test_a_killed_packed_run_resumes_bit_identically(tmp_path):
  longer = ("--config.num_epochs=12", "--config.checkpoint_every=1")
  whole = _cli(tmp_path / "whole", *longer)
  assert whole.wait(timeout=600) == 0
  run = _cli(tmp_path / "killed", *longer)
  ckpt = tmp_path / "killed/checkpoints/5"
  deadline = time.monotonic() + 300
  while not ckpt.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
  run.kill()
  run.communicate()
  assert run.returncode == -signal.SIGKILL, "it ended before the kill"
  resumed = _cli(tmp_path / "killed", *longer)
  _, stderr = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, stderr[-2000:]
  for a, b in zip(
    _final_params(tmp_path / "whole"),
    _final_params(tmp_path / "killed"),
    strict=True,
  ):
    np.testing.assert_array_equal(a, b)

  def untimed(workdir):
    return [
      {k: v for k, v in r.items() if not k.endswith(("_per_s", "time_s"))}
      for r in _records(workdir)
    ]

  assert untimed(tmp_path / "whole") == untimed(tmp_path / "killed")


@pytest.mark.parametrize(
  "change, model_devices, message",
  [
    (
      {"data.batch_size": 7},
      1,
      r"batch_size \(7\) must be a multiple of the 2 devices of the data axis",
    ),
    ({"num_seeds": 3}, 2, r"--model_devices=2 must divide the 3 models"),
    ({}, 3, r"the model axis \(3 devices\) must divide the 2 devices"),
  ],
)
def test_a_mesh_that_does_not_fit_is_one_line(
  change, model_devices, message, tmp_path
):
  config = _config()
  config.update_from_flattened_dict(change)
  with pytest.raises(ValueError, match=message) as e:
    train.train_and_evaluate(config, tmp_path / "run", model_devices)
  assert "\n" not in str(e.value)
  assert not (tmp_path / "run/metrics.jsonl").exists()
