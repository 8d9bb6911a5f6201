"""Bad input to `plstm.train`, as a user types it: each case exits with
status 1 and one line naming what to fix, before training, and leaves the
workdir's checkpoints, metric records and results as they were."""

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Each case is a subprocess of the driver: end to end, so slow.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
SMOKE = "--config=configs/freq_task.py:smoke"


def _cli(*args: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run(
    [sys.executable, "-m", "plstm.train", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env=env,
    timeout=180,
  )


def _contents(workdir: Path) -> dict[str, str]:
  """SHA-256 of every file of the run that must not change."""
  files = [
    workdir / "metrics.jsonl",
    workdir / "results.json",
    *sorted((workdir / "checkpoints").rglob("*")),
  ]
  return {
    str(f.relative_to(workdir)): hashlib.sha256(f.read_bytes()).hexdigest()
    for f in files
    if f.is_file()
  }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
  """The workdir of a finished smoke run."""
  workdir = tmp_path_factory.mktemp("finished")
  run = _cli(SMOKE, f"--workdir={workdir}")
  assert run.returncode == 0, run.stderr
  return workdir


SYNTAX_ERROR = "def get_config(:\n  pass\n"

CASES = {
  # Settings that look legal but cannot work: refused before compiling.
  "num_epochs=0": (["--config.num_epochs=0"], "config.num_epochs must be an"),
  "steps_per_epoch=0": (
    ["--config.steps_per_epoch=0"],
    "config.steps_per_epoch must be an integer >= 1, got 0.",
  ),
  "log_every=0": (["--config.log_every=0"], "config.log_every must be"),
  "checkpoint_every=0": (
    ["--config.checkpoint_every=0"],
    "config.checkpoint_every must be",
  ),
  "keep_checkpoints=0": (
    ["--config.keep_checkpoints=0"],
    "config.keep_checkpoints must be an integer >= 1, got 0.",
  ),
  "batch_size=0": (["--config.data.batch_size=0"], "data.batch_size must be"),
  "batch_size<0": (["--config.data.batch_size=-8"], "got -8."),
  "eval_size=0": (["--config.data.eval_size=0"], "config.data.eval_size must"),
  # Typing mistakes.
  "unknown key": (
    ["--config.model.hiden=3"],
    "unknown config key 'hiden' Did you mean \"hidden\" instead of",
  ),
  "not a pair": (
    ["--config.model.tau_range=abc"],
    "tau_range must be two numbers 0 < low <= high, got ('abc',).",
  ),
  "extra argument": (["extra"], "unexpected argument 'extra'"),
  "syntax error": (["--config={syntax}"], "line 1: invalid syntax"),
  "empty workdir": (["--workdir="], "--workdir is empty"),
  # Another run's settings on a finished workdir.
  "changed settings": (
    ["--config.optimizer.learning_rate=0.5", "--config.data.condition=regular"],
    "the config differs from the one that made checkpoint 6 in {checkpoints}: "
    "data.condition ('async' -> 'regular'), optimizer.learning_rate (0.001 "
    "-> 0.5). A run resumes only with its own config",
  ),
  "changed shapes": (
    ["--config.model.hidden=16"],
    "model.hidden (8 -> 16). A run resumes only",
  ),
  "shortened": (["--config.num_epochs=1"], "at step 6, beyond the 3 steps"),
  # A workdir another run holds.
  "locked": ([], "workdir {workdir} is in use by process {pid}; wait"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_changes_nothing(case, finished, tmp_path):
  args, message = CASES[case]
  syntax = tmp_path / "syntax.py"
  syntax.write_text(SYNTAX_ERROR)
  args = [a.format(syntax=syntax) for a in args]
  before = _contents(finished)
  message = message.format(
    checkpoints=finished / "checkpoints", workdir=finished, pid=os.getpid()
  )
  if not any(a.startswith("--config=") for a in args):
    args.insert(0, SMOKE)
  if not any(a.startswith("--workdir=") for a in args):
    args.append(f"--workdir={finished}")
  with (finished / ".lock").open("a+") as lock:
    if case == "locked":
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
      lock.seek(0)
      lock.truncate()
      lock.write(str(os.getpid()))
      lock.flush()
    run = _cli(*args)
  assert run.returncode == 1, run.stderr[-2000:]
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1, run.stderr[-2000:]
  assert lines[0].startswith("plstm.train: error: ")
  assert message in lines[0]
  assert _contents(finished) == before
  assert not (Path(ROOT) / "checkpoints").exists()  # nothing in the cwd
