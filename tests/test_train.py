"""The training driver: configs, resume, metrics, and bad input."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import freq_task as freq_config
from experiments import freq_task
from plstm import train
from tests.test_configs import NOT_CONFIGS

ROOT = Path(__file__).parent.parent
CONFIGS = sorted(
  p for p in (ROOT / "configs").glob("*.py") if p.stem not in NOT_CONFIGS
)


def _load_config(path: Path, arg: str):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _patch_task(monkeypatch, change):
  """Makes freq_task's `make_task` return `change(task)`."""
  real = freq_task.make_task
  monkeypatch.setattr(freq_task, "make_task", lambda c: change(real(c)))


def _final_state(workdir: Path):
  ckpt = workdir / "checkpoints"
  step = max(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
  return step, ocp.StandardCheckpointer().restore(ckpt / str(step) / "state")


def _with_data(config, directory):
  """configs/shd.py's data is not shipped: small files in SHD's layout in
  `directory`, and the config pointed at them."""
  if config.experiment != "experiments.shd":
    return
  from experiments.common import heidelberg

  directory.mkdir(parents=True, exist_ok=True)
  for split in ("train", "test"):
    heidelberg.write(
      directory / f"shd_{split}.h5",
      [[0.01 * i] for i in range(300)],
      [[i % 700] for i in range(300)],
      [i % 20 for i in range(300)],
    )
  config.data.dir = str(directory)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_smoke_runs(path, tmp_path):
  config = _load_config(path, "smoke")
  _with_data(config, tmp_path / "data")
  metric = config.metric
  results = train.train_and_evaluate(config, tmp_path)
  value = results["final"][f"val_{metric}"]
  assert np.isfinite(value)
  if metric.endswith(("accuracy", "error")):
    assert 0 <= value <= 1
  assert results["metric"] == metric and results["mode"] == config.mode
  assert (tmp_path / "results.json").exists()
  assert (tmp_path / f"val_{metric}.png").stat().st_size > 1000
  assert any((tmp_path / "tb").iterdir())
  records = [
    json.loads(line)
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
  ]
  assert {"train_loss", f"train_{metric}", "train_steps_per_s"} <= set(
    records[0]
  )
  assert any(f"val_{metric}" in r for r in records)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("arg", ["small", "paper"])
def test_every_config_variant_builds(path, arg, tmp_path):
  config = _load_config(path, arg)
  _with_data(config, tmp_path)
  task = importlib.import_module(config.experiment).make_task(config)
  key = jax.random.key(0)
  params = jax.eval_shape(task.init, key, key)
  assert jax.tree.leaves(params)


def test_paper_config_is_the_paper_setting():
  config = freq_config.get_config("paper")
  assert config.model.hidden == 110
  assert config.data.batch_size == 32
  assert config.steps_per_epoch == 157
  assert config.num_epochs == 70
  assert config.optimizer.learning_rate == 1e-3


@pytest.mark.slow
def test_a_short_run_lowers_the_loss(tmp_path, monkeypatch):
  """60 Adam steps on one repeated batch fit it (the task itself has a
  plateau of some hundred steps before the loss moves)."""
  _patch_task(
    monkeypatch,
    lambda task: task._replace(
      train_batch=lambda key, step: task.train_batch(key, 0)
    ),
  )
  config = freq_config.get_config("smoke")
  config.model.hidden = 16
  config.data.batch_size = 16
  config.optimizer.learning_rate = 1e-2
  config.steps_per_epoch = 60
  config.num_epochs = 1
  config.log_every = 10
  config.checkpoint_every = 60
  train.train_and_evaluate(config, tmp_path)
  losses = [
    json.loads(line)["train_loss"]
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    if "train_loss" in line
  ]
  assert losses[0] > 0.6
  assert losses[-1] < 0.2 * losses[0]


def test_golden_first_steps(tmp_path):
  """Pins the numbers of a fixed short run against silent changes."""
  config = freq_config.get_config("smoke")
  config.num_epochs = 1
  config.log_every = 1
  train.train_and_evaluate(config, tmp_path)
  first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
  np.testing.assert_allclose(first["train_loss"], GOLDEN_FIRST_LOSS, rtol=1e-5)


GOLDEN_FIRST_LOSS = 0.6947728395462036


class _Crash(Exception):
  pass


def _crash_at(monkeypatch, step, error):
  def change(task):
    def train_batch(key, s):
      if s == step:
        raise error
      return task.train_batch(key, s)

    return task._replace(train_batch=train_batch)

  _patch_task(monkeypatch, change)


@pytest.mark.slow
def test_a_crashed_run_resumes_to_identical_params(tmp_path, monkeypatch):
  config = freq_config.get_config("smoke")
  config.num_epochs = 3  # 9 steps, a checkpoint every 3
  straight = train.train_and_evaluate(config, tmp_path / "straight")

  with monkeypatch.context() as m:
    _crash_at(m, 4, _Crash())  # the batch of step 5
    with pytest.raises(_Crash):
      train.train_and_evaluate(config, tmp_path / "resumed")
  saved = sorted(
    int(p.name)
    for p in (tmp_path / "resumed/checkpoints").iterdir()
    if p.name.isdigit()
  )
  assert saved == [3]  # The cadence checkpoint (signals: test_robustness).
  resumed = train.train_and_evaluate(config, tmp_path / "resumed")

  step_a, state_a = _final_state(tmp_path / "straight")
  step_b, state_b = _final_state(tmp_path / "resumed")
  assert step_a == step_b == 9
  jax.tree.map(np.testing.assert_array_equal, state_a, state_b)
  for key in ("val_accuracy", "val_loss"):
    assert resumed["final"][key] == straight["final"][key]
  steps = [
    json.loads(line)["step"]
    for line in (tmp_path / "resumed/metrics.jsonl").read_text().splitlines()
  ]
  assert steps == sorted(steps)  # No record written twice.


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
  tmp_path, monkeypatch
):
  config = freq_config.get_config("smoke")
  train.train_and_evaluate(config, tmp_path)

  def change(task):
    def nan_loss(*args, **kwargs):
      loss, metrics = task.loss(*args, **kwargs)
      return loss * np.nan, {**metrics, "loss": loss * np.nan}

    return task._replace(loss=nan_loss)

  _patch_task(monkeypatch, change)
  config.num_epochs = 4
  with pytest.raises(
    FloatingPointError, match=r"non-finite .*loss.* step 8.*step 6"
  ):
    train.train_and_evaluate(config, tmp_path)
  assert _final_state(tmp_path)[0] == 6


def test_config_errors_are_raised_before_training(tmp_path):
  config = freq_config.get_config("smoke")
  config.model.r_on = 0.0
  with pytest.raises(ValueError, match="r_on"):
    train.train_and_evaluate(config, tmp_path)
  config = freq_config.get_config("smoke")
  config.model.tau_range = (-1.0, 3.0)
  with pytest.raises(ValueError, match="tau_range"):
    train.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "checkpoints").exists() or not any(
    p.name.isdigit() for p in (tmp_path / "checkpoints").iterdir()
  )


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(OSError, match="not writable"):
    train.train_and_evaluate(freq_config.get_config("smoke"), blocker / "run")


def _cli(*args, workdir):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run(
    [sys.executable, "-m", "plstm.train", *args, f"--workdir={workdir}"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env=env,
    timeout=120,
  )


@pytest.mark.slow
@pytest.mark.parametrize(
  "config,args,message",
  [
    ("freq_task", ["--config.modle.hidden=3"], "unknown config key 'modle'"),
    ("freq_task", ["--config.model.r_on=-0.5"], "r_on must be in (0, 1]"),
    ("freq_task", ["--config.model.hidden=abc"], "--config.model.hidden=abc"),
    (
      "adding_task",
      ["--config.data.seq_len=0"],
      "config.data.seq_len must be at least 2 (a marker in each half), got 0.",
    ),
    (
      "series",
      ["--config.data.csv=/nope.csv"],
      "config.data.csv: no file '/nope.csv'; pass --config.data.csv=PATH to "
      "a CSV file, or --config.data.csv='' for the synthetic series.",
    ),
  ],
)
def test_cli_reports_bad_input_in_one_line(config, args, message, tmp_path):
  run = _cli(f"--config=configs/{config}.py:smoke", *args, workdir=tmp_path)
  assert run.returncode == 1
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("plstm.train: error: ")
  assert message in lines[0]


@pytest.mark.slow
def test_cli_trains_and_prints_the_result(tmp_path):
  run = _cli("--config=configs/freq_task.py:smoke", workdir=tmp_path)
  assert run.returncode == 0, run.stderr
  assert "Final val_accuracy" in run.stdout
  assert json.loads((tmp_path / "results.json").read_text())["steps"] == 6


@pytest.mark.slow
def test_a_metric_the_task_lacks_stops_after_one_step(tmp_path):
  config = freq_config.get_config("smoke")
  config.metric = "acc"
  with pytest.raises(
    ValueError,
    match=r"^config.metric 'acc' is not a metric of experiments.freq_task; "
    r"it reports accuracy, loss\.$",
  ):
    train.train_and_evaluate(config, tmp_path)
  assert not any(p.name.isdigit() for p in (tmp_path / "checkpoints").iterdir())


@pytest.mark.slow
def test_logs_to_a_file_hold_epoch_lines_and_no_progress_bar(tmp_path):
  run = _cli(
    "--config=configs/freq_task.py:smoke",
    "--config.progress_bar=True",
    workdir=tmp_path,
  )
  assert run.returncode == 0, run.stderr
  assert "epoch 2 step 6: val_accuracy" in run.stdout
  assert "\r" not in run.stdout + run.stderr
  assert "step/s" not in run.stderr


def test_a_missing_experiment_is_one_line(tmp_path):
  run = _cli(
    "--config=configs/freq_task.py:smoke",
    "--config.experiment=experiments.nope",
    workdir=tmp_path,
  )
  assert run.returncode == 1
  assert run.stderr.strip() == (
    "plstm.train: error: config.experiment: no module 'experiments.nope'; "
    "run from the repository root (or put it on PYTHONPATH)."
  )


@pytest.mark.slow
def test_seeds_trained_together_equal_separate_runs(tmp_path):
  config = freq_config.get_config("smoke")
  config.num_seeds = 2
  together = train.train_and_evaluate(config, tmp_path / "together")
  _, state = _final_state(tmp_path / "together")
  assert together["seeds"] == [0, 1]
  accuracies = together["final"]["val_accuracy_per_seed"]
  np.testing.assert_allclose(
    together["final"]["val_accuracy"], np.mean(accuracies), rtol=1e-6
  )
  for i in range(2):
    alone = freq_config.get_config("smoke")
    alone.seed = i
    result = train.train_and_evaluate(alone, tmp_path / f"seed{i}")
    _, single = _final_state(tmp_path / f"seed{i}")
    for a, b in zip(
      jax.tree.leaves(state["params"]),
      jax.tree.leaves(single["params"]),
      strict=True,
    ):
      np.testing.assert_allclose(a[i], b[0], rtol=1e-5, atol=1e-6)
    assert result["final"]["val_accuracy"] == accuracies[i]


def test_bad_num_seeds(tmp_path):
  config = freq_config.get_config("smoke")
  config.num_seeds = 0
  with pytest.raises(ValueError, match="num_seeds must be an integer >= 1"):
    train.train_and_evaluate(config, tmp_path)


@pytest.mark.slow
def test_early_stop_ends_the_run_and_stays_ended(tmp_path):
  config = freq_config.get_config("smoke")
  config.steps_per_epoch = 1
  config.num_epochs = 5
  with config.unlocked():
    config.early_stop = {"metric": "loss", "window": 2, "below": 1e9}
  results = train.train_and_evaluate(config, tmp_path)
  assert results["stopped_early"] and results["steps"] == 2
  assert _final_state(tmp_path)[0] == 2
  # A rerun in the same workdir resumes at the stop and trains no further.
  again = train.train_and_evaluate(config, tmp_path)
  assert again["steps"] == 2 and again["stopped_early"]


@pytest.mark.slow
def test_early_stop_needs_its_window_below_the_bound(tmp_path):
  config = freq_config.get_config("smoke")
  config.steps_per_epoch = 1
  config.num_epochs = 3
  with config.unlocked():
    config.early_stop = {"metric": "loss", "window": 2, "below": 0.0}
  results = train.train_and_evaluate(config, tmp_path)
  assert not results["stopped_early"] and results["steps"] == 3
