"""Never lose a run: kills, signals, non-finite states, corrupt checkpoints,
and the same metrics run after run."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from configs import freq_task as freq_config
from experiments import freq_task
from plstm import train
from plstm.train import optimizers

# Kills, signals and subprocess runs of the driver: end to end, so slow.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
NUM_EPOCHS = 4  # 12 steps of the freq_task smoke config
FLAGS = [
  "--config=configs/freq_task.py:smoke",
  f"--config.num_epochs={NUM_EPOCHS}",
  "--config.log_every=1",
]

# `python -c SIGNAL_AT_STEP_5 READY --flags...` runs plstm.train and, before
# the batch of step 5, touches READY and waits until the driver's handler
# has received a signal, so the test signals mid-run without a race.
SIGNAL_AT_STEP_5 = """
import signal, sys, time
from pathlib import Path
from absl import app
from experiments import freq_task
from plstm.train import cli

ready = Path(sys.argv.pop(1))
real = freq_task.make_task

def make_task(config):
  task = real(config)

  def train_batch(key, step):
    if step == 4 and not ready.exists():
      ready.touch()
      deadline = time.monotonic() + 120
      while signal.getsignal(signal.SIGTERM).__self__.received is None:
        assert time.monotonic() < deadline, "no signal came"
        time.sleep(0.01)
    return task.train_batch(key, step)

  return task._replace(train_batch=train_batch)

freq_task.make_task = make_task
app.run(cli.main, flags_parser=cli._parse_flags)
"""


def _config():
  """The config of FLAGS (checkpoints only at the end: the cadence changes
  no number)."""
  config = freq_config.get_config("smoke")
  config.num_epochs = NUM_EPOCHS
  config.log_every = 1
  config.checkpoint_every = 3 * NUM_EPOCHS
  return config


def _steps(workdir: Path) -> list[int]:
  return sorted(
    int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()
  )


def _state(workdir: Path, step: int | None = None):
  step = _steps(workdir)[-1] if step is None else step
  return ocp.StandardCheckpointer().restore(
    workdir / "checkpoints" / str(step) / "state"
  )


def _assert_same_state(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def _records(workdir: Path) -> list[dict]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line) for line in lines]


def _untimed(workdir: Path) -> list[dict]:
  """The records of metrics.jsonl without their wall-clock fields."""
  timing = {"train_steps_per_s", "wall_time_s"}
  return [
    {k: v for k, v in r.items() if k not in timing} for r in _records(workdir)
  ]


def _start(*args: str, script: str | None = None) -> subprocess.Popen:
  """plstm.train (or a script wrapping it) on 2 CPU devices, as the tests;
  runs share compiled programs through jax's persistent cache."""
  env = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "JAX_NUM_CPU_DEVICES": "2",
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".pytest_cache/jax"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
  }
  command = ["-m", "plstm.train"] if script is None else ["-c", script]
  return subprocess.Popen(
    [sys.executable, *command, *args],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120):
  deadline = time.monotonic() + timeout
  while not condition():
    if proc.poll() is not None:
      pytest.fail(f"the run ended early: {proc.communicate()[1][-3000:]}")
    if time.monotonic() > deadline:
      proc.kill()
      pytest.fail("the run did not get there in time")
    time.sleep(0.02)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """An uninterrupted run of FLAGS: (workdir, results)."""
  workdir = tmp_path_factory.mktemp("straight")
  return workdir, train.train_and_evaluate(_config(), workdir)


def test_sigkill_at_a_random_point_then_resume_ends_bit_identical(
  straight, tmp_path
):
  at, delay = random.randint(1, 9), random.uniform(0.0, 0.05)
  run = _start(*FLAGS, "--config.checkpoint_every=1", f"--workdir={tmp_path}")
  _wait_for(
    lambda: (
      (tmp_path / "checkpoints").exists()
      and max(_steps(tmp_path), default=0) >= at
    ),
    run,
  )
  time.sleep(delay)  # into the next step, its save, or an evaluation
  run.kill()
  run.communicate()
  assert run.returncode == -signal.SIGKILL, "it ended before the kill"
  killed = f"killed after checkpoint {_steps(tmp_path)[-1]}"

  train.train_and_evaluate(_config(), tmp_path)
  _assert_same_state(_state(tmp_path), _state(straight[0]))
  # The kill left no record twice, none missing, none cut short.
  assert _untimed(tmp_path) == _untimed(straight[0]), killed


def test_sigterm_saves_exits_143_and_the_rerun_resumes(straight, tmp_path):
  ready = tmp_path / "ready"
  run = _start(
    str(ready),
    *FLAGS,
    "--config.checkpoint_every=1000",  # no cadence save before the end
    f"--workdir={tmp_path}",
    script=SIGNAL_AT_STEP_5,
  )
  _wait_for(ready.exists, run)
  run.send_signal(signal.SIGTERM)
  _, stderr = run.communicate(timeout=120)
  assert run.returncode == 143, stderr[-3000:]
  assert (
    stderr.strip()
    .splitlines()[-1]
    .startswith("plstm.train: stopped by SIGTERM after step 5, saved in ")
  )
  assert _steps(tmp_path) == [5]
  assert not (tmp_path / "results.json").exists()

  train.train_and_evaluate(_config(), tmp_path)
  _assert_same_state(_state(tmp_path), _state(straight[0]))
  # The training record of the interrupted window too (steps 5 and 6: the
  # checkpoint holds step 5's metrics).
  assert _untimed(tmp_path) == _untimed(straight[0])


def test_ctrl_c_during_start_up_stops_before_the_first_step(
  tmp_path, monkeypatch
):
  real = freq_task.make_task

  def make_task(config):
    os.kill(os.getpid(), signal.SIGINT)  # while the task loads
    return real(config)

  monkeypatch.setattr(freq_task, "make_task", make_task)
  with pytest.raises(
    train.Interrupted, match="SIGINT before the first step; nothing new"
  ):
    train.train_and_evaluate(_config(), tmp_path)
  assert _steps(tmp_path) == []


def test_ctrl_c_saves_and_raises_interrupted(tmp_path, monkeypatch):
  real = freq_task.make_task

  def make_task(config):
    task = real(config)

    def train_batch(key, step):
      if step == 4:  # the batch of step 5
        os.kill(os.getpid(), signal.SIGINT)
      return task.train_batch(key, step)

    return task._replace(train_batch=train_batch)

  monkeypatch.setattr(freq_task, "make_task", make_task)
  handler = signal.getsignal(signal.SIGINT)
  with pytest.raises(train.Interrupted, match="SIGINT after step 5") as e:
    train.train_and_evaluate(_config(), tmp_path)
  assert e.value.signum == signal.SIGINT and e.value.step == 5
  assert _steps(tmp_path) == [5]
  assert signal.getsignal(signal.SIGINT) is handler


def _nan_at(step: int) -> optax.GradientTransformation:
  """Adds NaN to the updates of `step` (counted from 1) only."""

  def update(updates, count, params=None):
    bad = jnp.where(count == step - 1, jnp.nan, 0.0)
    return jax.tree.map(lambda u: u + bad, updates), count + 1

  return optax.GradientTransformation(
    lambda params: jnp.zeros([], jnp.int32), update
  )


def test_a_failed_save_is_one_line_and_keeps_the_last_checkpoint(
  tmp_path, monkeypatch
):
  config = freq_config.get_config("smoke")  # checkpoints 3 and 6
  real = ocp.CheckpointManager.save

  def save(manager, step, *args, **kwargs):
    if step == 6:
      raise OSError(28, "No space left on device")
    return real(manager, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", save)
  with pytest.raises(
    OSError,
    match=r"^could not save checkpoint 6 in .*checkpoints \(OSError: .*No "
    r"space left on device\); step 3 is kept\.$",
  ):
    train.train_and_evaluate(config, tmp_path)
  assert _steps(tmp_path) == [3]


def test_non_finite_params_are_never_saved(tmp_path, monkeypatch):
  """The last update makes the params NaN while every training metric of
  that step (computed before it) is finite: the final save refuses it."""
  real = optimizers.make
  monkeypatch.setattr(
    optimizers, "make", lambda c: optax.chain(real(c), _nan_at(6))
  )
  config = freq_config.get_config("smoke")  # 6 steps, a checkpoint every 3
  with pytest.raises(
    FloatingPointError,
    match=r"non-finite params or optimiser state at step 6; the last good "
    r"checkpoint \(step 3\) is kept.* pass a new --workdir",
  ):
    train.train_and_evaluate(config, tmp_path)
  assert _steps(tmp_path) == [3]


def _spoil(state_dir: Path, how: str):
  for f in state_dir.rglob("*"):
    if f.is_file():
      data = f.read_bytes()
      f.write_bytes(b"garbage" if how == "garbage" else data[: len(data) // 2])


def test_a_corrupt_latest_checkpoint_falls_back_with_a_warning(
  tmp_path, caplog
):
  config = freq_config.get_config("smoke")  # checkpoints 3 and 6
  train.train_and_evaluate(config, tmp_path)
  good = _state(tmp_path, 6)
  _spoil(tmp_path / "checkpoints/6/state", "cut short")
  with (tmp_path / "metrics.jsonl").open("a") as f:
    f.write('{"step": 7, "train_lo')  # a line a kill cut short

  results = train.train_and_evaluate(config, tmp_path)
  assert "checkpoints/6 cannot be restored" in caplog.text
  assert "resuming from step 3" in caplog.text
  aside = [p.name for p in (tmp_path / "corrupt_checkpoints").iterdir()]
  assert len(aside) == 1 and aside[0].startswith("6-")
  assert results["steps"] == 6 and _steps(tmp_path) == [3, 6]
  _assert_same_state(_state(tmp_path, 6), good)
  assert [r["step"] for r in _records(tmp_path)][-1] == 6

  # With no readable checkpoint left, a clear error, and all are kept.
  for step in (3, 6):
    _spoil(tmp_path / f"checkpoints/{step}/state", "garbage")
  with pytest.raises(
    ValueError, match=r"checkpoints/6 cannot be restored .*nor any earlier"
  ):
    train.train_and_evaluate(config, tmp_path)
  assert _steps(tmp_path) == [3, 6]


def test_a_bit_flip_in_the_latest_checkpoint_falls_back(tmp_path, caplog):
  config = freq_config.get_config("smoke")  # checkpoints 3 and 6
  train.train_and_evaluate(config, tmp_path)
  good = _state(tmp_path, 6)
  # A bit flip the storage does not notice: checkpoint 6's state rewritten
  # with the lowest mantissa bit of one tau flipped, its record unchanged.
  flipped = jax.tree.map(np.array, good)
  tau = flipped["params"]["rnn"]["tau"].view(np.uint32)
  tau.flat[0] ^= 1
  state_dir = tmp_path / "checkpoints/6/state"
  shutil.rmtree(state_dir)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(state_dir, flipped)

  results = train.train_and_evaluate(config, tmp_path)
  assert "is not the one saved (checksum)" in caplog.text
  assert "resuming from step 3" in caplog.text
  assert results["steps"] == 6
  _assert_same_state(_state(tmp_path, 6), good)


def test_the_same_config_gives_the_same_metrics(straight, tmp_path):
  train.train_and_evaluate(_config(), tmp_path)
  assert len(_untimed(tmp_path)) == 3 * NUM_EPOCHS + NUM_EPOCHS
  assert _untimed(tmp_path) == _untimed(straight[0])
