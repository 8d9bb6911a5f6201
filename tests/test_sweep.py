"""scripts/sweep.py: points, names, commands, the summary, and a real run."""

import csv
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from configs import freq_task as freq_config
from configs import store_recall as store_recall_config

ROOT = Path(__file__).parent.parent
_spec = importlib.util.spec_from_file_location(
  "sweep", ROOT / "scripts/sweep.py"
)
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


def _sweep(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, "scripts/sweep.py", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
    timeout=300,
  )


def test_freq_task_sweep_is_the_papers_grid():
  points = sweep.load_sweep("configs/freq_task.py")
  assert sorted((p["data.condition"], p["model.name"]) for p in points) == [
    (c, m)
    for c in ("async", "highres", "regular")
    for m in ("bn_lstm", "lstm", "plstm")
  ]


def test_store_recall_sweep_pairs_the_neuron_counts():
  points = sweep.load_sweep("configs/store_recall.py")
  assert [(p["model.n_regular"], p["model.n_adaptive"]) for p in points] == [
    (20, 0),
    (10, 10),
  ]


@pytest.mark.parametrize("module", [freq_config, store_recall_config])
def test_every_point_fits_its_config(module):
  config = module.get_config("smoke")
  config.lock()
  sweep.check(config, module.get_sweep())
  with pytest.raises(ValueError, match=r"'model.hiden': 3.*hiden"):
    sweep.check(config, [{"model.hiden": 3}])
  with pytest.raises(ValueError, match=r"'seed': 'one'"):
    sweep.check(config, [{"seed": "one"}])


def test_run_names():
  points = [
    {"data.condition": "async", "model.name": "lstm"},
    {"model.tau_range": (1.0, 3.0)},
    {},
  ]
  assert sweep.run_names(points) == [
    "condition=async,name=lstm",
    "tau_range=(1.0,3.0)",
    "default",
  ]
  # Keys whose last parts clash keep their full names.
  assert sweep.run_names([{"a.size": 1, "b.size": 2}]) == ["a.size=1,b.size=2"]
  with pytest.raises(ValueError, match="share a workdir name"):
    sweep.run_names([{"a": "x/y"}, {"a": "xy"}])


def test_print_gives_one_command_per_point(tmp_path):
  run = _sweep(
    "--config=configs/freq_task.py:smoke",
    f"--root={tmp_path}",
    "--print",
    "--config.seed=3",
  )
  assert run.returncode == 0, run.stderr
  lines = run.stdout.splitlines()
  assert len(lines) == 9
  argv = shlex.split(lines[1])
  assert argv == [
    sys.executable,
    "-m",
    "plstm.train",
    "--config=configs/freq_task.py:smoke",
    f"--workdir={tmp_path}/condition=regular,name=bn_lstm",
    "--config.seed=3",
    "--config.data.condition=regular",
    "--config.model.name=bn_lstm",
  ]
  workdirs = {shlex.split(line)[4] for line in lines}
  assert len(workdirs) == 9
  assert not any(tmp_path.iterdir())  # --print runs nothing


@pytest.mark.parametrize(
  "override,message",
  [
    ("--config.sed=1", "unknown config key 'sed'"),
    ("--config.model.hidden=abc", "--config.model.hidden=abc"),
  ],
)
def test_a_bad_override_is_one_line(override, message, tmp_path):
  run = _sweep(
    "--config=configs/freq_task.py:smoke",
    f"--root={tmp_path}",
    "--print",
    override,
  )
  assert run.returncode == 1 and run.stdout == ""
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("sweep.py: error: ")
  assert message in lines[0]


def test_summary_gathers_the_results(tmp_path):
  points = [{"model.name": "plstm"}, {"model.name": "lstm"}]
  names = sweep.run_names(points)
  final = {
    "step": 6,
    "val_accuracy": 0.75,
    "val_accuracy_std": 0.05,
    "val_accuracy_per_seed": [0.7, 0.8],
    "val_loss": 0.123456,
  }
  (tmp_path / names[0]).mkdir()
  (tmp_path / names[0] / "results.json").write_text(
    json.dumps(
      {
        "steps": 6,
        "stopped_early": False,
        "metric": "accuracy",
        "best_val_accuracy": 0.8,
        "target_reached_step": None,
        "wall_time_s": 12.5,
        "final": final,
      }
    )
  )
  sweep.summarize(tmp_path, names, points)  # the second has no results yet

  with (tmp_path / "summary.csv").open() as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == [
    "run",
    "model.name",
    *(f.format(metric="accuracy") for f in sweep.RESULT_FIELDS),
    "val_accuracy",
    "val_accuracy_std",
    "val_loss",
  ]
  assert rows[0]["run"] == "name=plstm" and rows[0]["model.name"] == "plstm"
  assert float(rows[0]["val_loss"]) == 0.123456
  assert rows[0]["target_reached_step"] == ""
  assert rows[1]["run"] == "name=lstm" and rows[1]["val_accuracy"] == ""
  md = (tmp_path / "summary.md").read_text().splitlines()
  cells = [[c.strip() for c in line.split("|")[1:-1]] for line in md]
  assert cells[0] == list(rows[0]) and set(cells[1]) == {"---"}
  assert cells[2] == [
    "name=plstm", "plstm", "6", "False", "0.8", "", "12.5", "0.75", "0.05",
    "0.1235",
  ]  # fmt: skip
  assert cells[3] == ["name=lstm", "lstm"] + [""] * 8


@pytest.mark.slow
def test_run_trains_each_point_then_summarizes(tmp_path):
  """The store-recall smoke config's two points, one after the other."""
  args = ("--config=configs/store_recall.py:smoke", f"--root={tmp_path}")
  run = _sweep(*args, "--run")
  assert run.returncode == 0, run.stderr[-3000:]
  assert "2 of 2 runs done" in run.stdout
  with (tmp_path / "summary.csv").open() as f:
    rows = list(csv.DictReader(f))
  assert [r["run"] for r in rows] == [
    "n_regular=20,n_adaptive=0",
    "n_regular=10,n_adaptive=10",
  ]
  for row in rows:
    results = json.loads((tmp_path / row["run"] / "results.json").read_text())
    assert results["config"]["model"]["n_regular"] == int(
      row["model.n_regular"]
    )
    assert (
      float(row["val_recall_error"]) == results["final"]["val_recall_error"]
    )

  again = _sweep(*args, "--run")  # finished points are not run again
  assert again.stdout.count("done already") == 2
