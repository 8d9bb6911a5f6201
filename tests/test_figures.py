"""scripts/figures.py reads run histories and draws the suite's figures."""

import json

import numpy as np
import pytest

from scripts import figures


def _write_run(workdir, finals, steps=(10, 20)):
  """A fake metrics.jsonl: train records and per-seed val records."""
  workdir.mkdir(parents=True)
  lines = []
  for k, step in enumerate(steps):
    lines.append({"step": step, "train_loss": 0.5})
    per_seed = [f * (k + 1) / len(steps) for f in finals]
    record = {"step": step, "val_accuracy": float(np.mean(per_seed))}
    if len(finals) > 1:
      record["val_accuracy_per_seed"] = per_seed
    lines.append(record)
  (workdir / "metrics.jsonl").write_text(
    "".join(json.dumps(r) + "\n" for r in lines)
  )


def test_read_history_keeps_seeds_and_skips_train_records(tmp_path):
  _write_run(tmp_path / "run", [0.8, 0.6])
  steps, values = figures.read_history(tmp_path / "run", "val_accuracy")
  np.testing.assert_array_equal(steps, [10, 20])
  np.testing.assert_allclose(values, [[0.4, 0.3], [0.8, 0.6]])


def test_read_history_single_seed(tmp_path):
  _write_run(tmp_path / "run", [0.9])
  _, values = figures.read_history(tmp_path / "run", "val_accuracy")
  assert values.shape == (2, 1)


def test_missing_run_is_one_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="metrics.jsonl not found"):
    figures.read_history(tmp_path / "nope", "val_accuracy")


def test_figures_are_drawn(tmp_path):
  root = tmp_path / "sweep"
  _write_run(root / "async" / "plstm", [0.97, 0.98])
  _write_run(root / "async" / "lstm", [0.7, 0.6])
  out = tmp_path / "bars.png"
  figures.task1_bars(root).savefig(out)
  assert out.stat().st_size > 5000
  fig = figures.curves(
    [root / "async" / "plstm", root / "async" / "lstm"],
    ["PLSTM", "LSTM"],
    "val_accuracy",
  )
  ax = fig.axes[0]
  np.testing.assert_allclose(ax.lines[0].get_ydata(), [48.75, 97.5])


def test_a_committed_summary_alone_redraws_the_curves(tmp_path):
  """results.json's history is enough: no metrics.jsonl, no checkpoints."""
  run = tmp_path / "results" / "run"
  run.mkdir(parents=True)
  history = [
    {"step": 10, "val_accuracy": 0.5, "val_accuracy_per_seed": [0.4, 0.6]},
    {"step": 20, "val_accuracy": 0.8, "val_accuracy_per_seed": [0.7, 0.9]},
  ]
  (run / "results.json").write_text(json.dumps({"history": history}))
  steps, values = figures.read_history(run, "val_accuracy")
  np.testing.assert_array_equal(steps, [10, 20])
  np.testing.assert_allclose(values, [[0.4, 0.6], [0.7, 0.9]])
  fig = figures.curves([run], ["run"], "val_accuracy")
  np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [50, 80])


def _summary(path, per_seed, epoch=17):
  path.mkdir(parents=True)
  final = {
    "step": 157 * epoch,
    "epoch": epoch,
    "val_accuracy": float(np.mean(per_seed)),
    "val_accuracy_per_seed": per_seed,
  }
  summary = {"seeds": [1, 2], "final": final, "history": [final]}
  (path / "results.json").write_text(json.dumps(summary))


def test_the_task1_table_is_generated_into_the_readme(tmp_path):
  _summary(tmp_path / "regular/plstm", [0.99, 0.995])
  _summary(tmp_path / "async/lstm", [0.5, 0.54])
  readme = tmp_path / "README.md"
  readme.write_text("intro\n<!-- task1 -->\nold\n<!-- /task1 -->\nend\n")
  figures.write_block(readme, "task1", figures.task1_rows(tmp_path))
  text = readme.read_text()
  assert (
    text.startswith("intro\n<!-- task1 -->\n| task 1") and "old" not in text
  )
  assert text.endswith("<!-- /task1 -->\nend\n")
  rows = [
    r
    for r in text.splitlines()
    if r.startswith("| 1 ms") or r.startswith("| async")
  ]
  assert len(rows) == 2
  assert "| Phased LSTM | 17 epochs, 2669 steps | 2 | 99.2 ± 0.2% |" in rows[0]
  assert rows[0].endswith("| 99.3 ± 0.2% | reproduced |")
  assert rows[1].endswith(
    "| 69.0 ± 13.3% | not (17 of 70 epochs; seeds spread ±13) |"
  )


@pytest.mark.parametrize(
  "ours, paper, word",
  [
    (99.0, 99.3, "reproduced"),
    (97.0, 99.3, "close"),
    (70.5, 89.3, "not"),
    (99.9, 99.0, "reproduced"),
  ],
)
def test_verdicts(ours, paper, word):
  assert figures.verdict(ours, paper) == word


def test_the_task2_row_compares_with_the_figures_epoch_50(tmp_path):
  _summary(tmp_path / "plstm", [0.86, 0.88], epoch=33)
  rows = figures.task2_rows(tmp_path)
  assert len(rows) == 3
  assert "| Phased LSTM | 33 epochs, 5181 steps | 2 | 87.0 ± 1.0% |" in rows[2]
  assert rows[2].endswith("| close (33 of 50 epochs) |")
