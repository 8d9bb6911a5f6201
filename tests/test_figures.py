"""scripts/figures.py reads run histories and draws the suite's figures."""

import json
from pathlib import Path

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


def test_the_task1_bars_are_drawn_from_committed_summaries(tmp_path):
  """results/task1 holds results.json alone: each run gets its bar."""
  _summary(tmp_path / "regular/plstm", [0.99, 0.97])
  _summary(tmp_path / "async/lstm", [0.5, 0.6])
  bar_ax = figures.task1_bars(tmp_path).axes[0]
  ours = [p.get_height() for p in bar_ax.patches if p.get_hatch() is None]
  np.testing.assert_allclose(sorted(ours), [55.0, 98.0])
  assert len(bar_ax.patches) == 9 + 2  # the paper's 9, hatched, and ours


def test_longer_runs_are_diamonds_on_the_bars_and_dashed_curves(tmp_path):
  _summary(tmp_path / "short/async/plstm", [0.95, 0.97])
  _summary(tmp_path / "long/async/plstm", [0.98, 0.99])
  fig = figures.task1_bars(tmp_path / "short", tmp_path / "long")
  bar_ax, _, _, async_ax = fig.axes
  (diamond,) = [line for line in bar_ax.lines if line.get_marker() == "D"]
  x, y = diamond.get_data()
  np.testing.assert_allclose(np.asarray(y, float), [98.5])
  ours = [p for p in bar_ax.patches if p.get_hatch() is None]
  assert float(np.ravel(x)[0]) == pytest.approx(
    ours[0].get_x() + ours[0].get_width() / 2
  )
  dashed = [line for line in async_ax.lines if line.get_linestyle() == "--"]
  np.testing.assert_allclose(dashed[0].get_ydata(), [98.5])


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
  assert rows[0].endswith("| ≈99.0% | 99.3 ± 0.2% | reproduced |")
  assert rows[1].endswith(
    "| 69.0 ± 13.3% | not (17 of 70 epochs; seeds spread ±13) |"
  )


def test_every_reference_number_names_its_source():
  rows = figures.reference_rows()[2:]
  sources = (
    figures.FIGURE,
    figures.NOTEBOOK,
    figures.OFFICIAL_FIGURE,
    figures.TUTORIAL,
    figures.RECALLED,
  )
  assert all(any(s in row.split(" | ")[-1] for s in sources) for row in rows)
  task1 = [r for r in rows if r.startswith("| task 1")]
  assert len(task1) == 2 * 9  # each cell: Fig. 3d and the notebook
  assert "| task 1, async, epoch 70 | accuracy | LSTM | ≈63.2% |" in task1[-2]
  assert "| LSTM | 69.0 ± 13.3% (5 seeds) |" in task1[-1]


def test_a_bfloat16_row_gives_its_dtype_flag(tmp_path):
  _summary(tmp_path / "async/plstm", [0.95, 0.96])
  path = tmp_path / "async/plstm/results.json"
  summary = json.loads(path.read_text())
  summary["config"] = {"model": {"dtype": "bfloat16"}}
  path.write_text(json.dumps(summary))
  (row,) = figures.task1_rows(tmp_path)[2:]
  assert "--config.seed=1 --config.model.dtype=bfloat16`" in row


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


def test_first_below_is_per_seed_and_none_where_never():
  steps = np.array([100, 200, 300])
  values = np.array([[0.2, 0.2, 0.2], [0.005, 0.2, 0.2], [0.001, 0.01, 0.2]])
  assert figures.first_below(steps, values, 0.01) == [200, 300, None]


def _adding_results(tmp_path):
  """A packed Phased LSTM run (two period ranges, 2 seeds) and an LSTM."""
  steps = [200, 400, 600]
  lstm = [[0.16, 0.17], [0.05, 0.16], [0.009, 0.02]]  # [N, S]
  plstm = [  # [N, P * S]: point 0 solves at 400 and 600, point 1 never
    [0.1, 0.16, 0.16, 0.16],
    [0.008, 0.05, 0.16, 0.16],
    [0.002, 0.004, 0.15, 0.16],
  ]
  (tmp_path / "lstm").mkdir(parents=True)
  (tmp_path / "lstm/results.json").write_text(
    json.dumps(
      {
        "seeds": [1, 2],
        "steps": 600,
        "config": {"model": {"hidden": 64}},
        "final": {"val_mse": 0.0145, "val_mse_per_seed": lstm[-1]},
        "history": [
          {"step": s, "val_mse": np.mean(v), "val_mse_per_seed": v}
          for s, v in zip(steps, lstm, strict=True)
        ],
      }
    )
  )
  (tmp_path / "plstm").mkdir()
  points = [
    {
      "point": f"tau_range={r}",
      "model.tau_range": r,
      "val_mse_per_seed": plstm[-1][2 * i : 2 * i + 2],
    }
    for i, r in enumerate([[1.0, 7.389], [403.4, 2981.0]])
  ]
  (tmp_path / "plstm/results.json").write_text(
    json.dumps(
      {
        "seeds": [1, 2],
        "steps": 600,
        "config": {"model": {"hidden": 64}},
        "points": points,
        "history": [
          {"step": s, "val_mse_per_model": v}
          for s, v in zip(steps, plstm, strict=True)
        ],
      }
    )
  )


def test_the_adding_rows_compare_each_period_range_with_the_lstm(tmp_path):
  _adding_results(tmp_path)
  rows = figures.adding_rows(tmp_path)
  assert len(rows) == 2 + 3
  assert rows[0].endswith(
    "| steps to MSE ≤ 0.1 | steps to MSE ≤ 0.01 | "
    "the paper (recalled): faster than the LSTM |"
  )
  assert rows[1].count("|") == rows[0].count("|")
  lstm, fast, slow = rows[2:]
  # The LSTM: below 0.1 at 400 and 600; below 0.01 at 600 for seed 0 only.
  assert (
    "| LSTM | 600 steps | 2 | 0.0145 ± 0.0055 | 500 | 600 (1 of 2 seeds) |  |"
    in lstm
  )
  assert "τ ~ exp(U(0, 2))" in fast and "exp(U(6, 8))" in slow
  assert (
    '--config.model.tau_range="(1.0, 7.389)" --config.model.hidden=64' in fast
  )
  assert "`--config.model.name=lstm --config.model.hidden=64`" in lstm
  # Below 0.1 at 200 and 400; below 0.01 at (400 + 600) / 2 = 500 steps
  # against the LSTM's 600: 1.2x as fast at the lower level.
  assert fast.endswith(
    "| 0.0030 ± 0.0010 | 300 | 500 | reproduced: 1.2x as fast to MSE ≤ 0.01 |"
  )
  assert slow.endswith(
    "| none of 2 seeds | none of 2 seeds | not: not below 0.1 |"
  )


def test_an_adding_row_that_only_the_phased_lstm_reached_says_so(tmp_path):
  _adding_results(tmp_path)
  path = tmp_path / "lstm/results.json"
  summary = json.loads(path.read_text())
  for record in summary["history"]:  # the LSTM never leaves 1/6
    record["val_mse_per_seed"] = [0.16, 0.17]
  path.write_text(json.dumps(summary))
  fast = figures.adding_rows(tmp_path)[3]
  assert fast.endswith("| reproduced: reached MSE ≤ 0.01; the LSTM did not |")


def test_an_adding_range_that_some_seeds_reached_is_partly_reproduced(
  tmp_path,
):
  """A level reached by 1 of 2 seeds is not called reproduced; it is
  counted, beside the level every seed reached."""
  _adding_results(tmp_path)
  path = tmp_path / "plstm/results.json"
  summary = json.loads(path.read_text())
  # Point 1, seed 0 goes below 0.1 at step 600; seed 1 never does.
  summary["history"][2]["val_mse_per_model"][2] = 0.09
  # Point 0, seed 1 stays above 0.01: 0.01 is reached by 1 of 2 seeds.
  summary["history"][1]["val_mse_per_model"][1] = 0.05
  summary["history"][2]["val_mse_per_model"][1] = 0.02
  path.write_text(json.dumps(summary))
  lstm = tmp_path / "lstm/results.json"
  lstm_summary = json.loads(lstm.read_text())
  for record in lstm_summary["history"]:  # the LSTM never leaves 1/6
    record["val_mse_per_seed"] = [0.16, 0.17]
  lstm.write_text(json.dumps(lstm_summary))
  _, _, _, fast, slow = figures.adding_rows(tmp_path)
  assert fast.endswith(
    "| 300 | 400 (1 of 2 seeds) | reproduced: reached MSE ≤ 0.1; the LSTM "
    "did not; 1 of 2 seeds reached MSE ≤ 0.01, the LSTM did not |"
  )
  assert slow.endswith(
    "| 600 (1 of 2 seeds) | none of 2 seeds | partly: 1 of 2 seeds reached "
    "MSE ≤ 0.1, the LSTM did not |"
  )
  assert "reproduced" not in slow


def test_the_adding_curves_have_one_line_per_period_range(tmp_path):
  _adding_results(tmp_path)
  fig = figures.curves(
    [tmp_path / "plstm", tmp_path / "lstm"], ["PLSTM", "LSTM"], "val_mse"
  )
  ax = fig.axes[0]
  assert len(ax.lines) == 3 and ax.get_yscale() == "log"
  np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.13, 0.029, 0.003])


def _nmnist_run(path, model, accuracy, per_neuron, events):
  path.mkdir(parents=True)
  final = {
    "epoch": 2,
    "step": 1418,
    "val_accuracy": float(np.mean(accuracy)),
    "val_accuracy_per_seed": accuracy,
    "val_updates_per_neuron": per_neuron,
    "val_events_per_sample": events,
  }
  config = {
    "model": {"name": model},
    "data": {"max_events": 4096, "train_size": 0},
    "num_epochs": 2,
    "num_seeds": len(accuracy),
    "seed": 1,
  }
  first = {  # the evaluation after the first of the two passes
    **final,
    "epoch": 1,
    "step": 709,
    "val_accuracy": 0.5,
    "val_accuracy_per_seed": [0.5] * len(accuracy),
    "val_updates_per_neuron": 2 * per_neuron,
  }
  summary = {"final": final, "history": [first, final], "config": config}
  (path / "results.json").write_text(json.dumps(summary))
  train = [  # the training records of metrics.jsonl
    {"step": s, "train_accuracy": a, "train_accuracy_per_seed": [a] * 2}
    for s, a in [(700, 0.5), (1418, 0.9)]
  ]
  (path / "metrics.jsonl").write_text(
    "".join(json.dumps(r) + "\n" for r in train)
  )


def test_the_nmnist_rows_give_accuracy_updates_and_the_saving(tmp_path):
  _nmnist_run(tmp_path / "plstm", "plstm", [0.95, 0.97], 250.0, 4900.0)
  _nmnist_run(
    tmp_path / "event_lstm", "event_lstm", [0.94, 0.94], 4900.0, 4900.0
  )
  _nmnist_run(tmp_path / "lstm", "lstm", [0.98], 60.0, 4900.0)
  rows = figures.nmnist_rows(tmp_path)
  assert len(rows) == 2 + 3
  plstm, event, frames = rows[2:]
  assert plstm.startswith(
    "| `--config.model.name=plstm --config.data.max_events=4096"
  )
  # Each pass: pass 1 from the history, pass 2 the final evaluation.
  assert (
    "| 2 epochs, 1418 steps | 2 | pass 1: 50.0; pass 2: 96.0 ± 1.0% | "
    "pass 1: 500; pass 2: 250 | 4,900 |" in plstm
  )
  assert plstm.endswith(
    "| about 97.3% (recalled; real N-MNIST) | close (2 passes over the "
    "digits); +2.0 points against "
    "the event LSTM with 20x fewer updates |"
  )
  assert "2: 94.0 ± 0.0% | pass 1: 9,800; pass 2: 4,900 | 4,900 |" in event
  assert event.endswith("|  |  |")
  assert "| LSTM (5 ms frames) |" in frames and "pass 2: 60 |" in frames
  assert "| 1 | pass 1: 50.0; pass 2: 98.0% |" in frames  # one seed
  out = tmp_path / "nmnist.png"
  fig = figures.nmnist_figure(tmp_path)
  fig.savefig(out)
  # Per model: the training curve (two records) and the test dot.
  lines = fig.axes[0].lines
  assert len(lines) == 6 and out.stat().st_size > 5000
  np.testing.assert_allclose(lines[0].get_ydata(), [50.0, 90.0])
  np.testing.assert_allclose(lines[1].get_ydata(), [50.0, 96.0])  # each pass


def test_a_one_pass_event_mnist_row_says_so(tmp_path):
  _nmnist_run(tmp_path / "plstm", "plstm", [0.82], 326.0, 4880.0)
  path = tmp_path / "plstm/results.json"
  summary = json.loads(path.read_text())
  summary["final"]["epoch"] = 1
  summary["history"] = [summary["final"]]
  summary["wall_time_s"] = 1362.8
  path.write_text(json.dumps(summary))
  (row,) = figures.nmnist_rows(tmp_path)[2:]
  assert "| 1 epoch, 1418 steps, 1363 s | 1 | 82.0% |" in row
  assert row.endswith("| not (1 pass over the digits) |")


REPO = Path(__file__).resolve().parents[1]


def test_the_tables_are_those_of_the_committed_results(tmp_path):
  """Regenerating every block from results/ (the README's headline, the
  studies of docs/results.md) leaves both files unchanged."""
  readme, results = tmp_path / "README.md", tmp_path / "results.md"
  readme.write_text((REPO / "README.md").read_text())
  results.write_text((REPO / "docs/results.md").read_text())
  blocks = figures.tables(REPO / "results")
  assert blocks["task1"] and blocks["task2"]
  figures.write_tables(REPO / "results", readme, results)
  assert readme.read_text() == (REPO / "README.md").read_text()
  assert results.read_text() == (REPO / "docs/results.md").read_text()


# The claims of the papers that results/ holds a run of, one headline row
# each, by the start of the row.
CLAIMS = (
  "task 1, 1 ms: Phased LSTM vs the best baseline",
  "task 1, 0.1 ms: Phased LSTM vs the best baseline",
  "task 1, async: Phased LSTM vs the best baseline",
  "task 2, 110 units: Phased LSTM",
  "adding task, T = 500 ± 10: Phased LSTM",
  "event MNIST: Phased LSTM",
  "LSNN store-recall (10 LIF + 10 ALIF)",
)


def test_the_headline_has_one_row_per_claim():
  rows = figures.headline_rows(REPO / "results")
  header, rule, *claims = rows
  assert header.startswith("| claim | paper | ours | config | hardware |")
  assert len(claims) == len(CLAIMS)
  for row, claim in zip(claims, CLAIMS, strict=True):
    assert row.startswith(f"| {claim}"), row
    assert row.count("|") == header.count("|") == rule.count("|"), row
  async_ = claims[2]
  # The paper's budget of 70 epochs (results/task1_70) joins the async row,
  # the Phased LSTM's beside the baseline's.
  assert "; at 70 epochs: 98.7 ± 0.5% vs 83.4 ± 5.3% (5 seeds) |" in async_
  assert async_.endswith("| close (17 of 70 epochs); at 70 epochs reproduced |")
  readme = (REPO / "README.md").read_text()
  block = readme.split("<!-- headline -->\n")[1].split("<!-- /headline -->")[0]
  assert block.splitlines() == rows


def test_a_headline_row_compares_with_the_best_baseline(tmp_path):
  """Per condition: the Phased LSTM, the better of the baselines by our
  mean, the paper's numbers of both, the machine and the wall times."""
  _summary(tmp_path / "task1/regular/plstm", [0.99, 0.995])
  _summary(tmp_path / "task1/regular/lstm", [0.7, 0.9])
  _summary(tmp_path / "task1/regular/bn_lstm", [0.6, 0.62])
  _summary(tmp_path / "task1/async/lstm", [0.5, 0.54])  # no Phased LSTM
  for run in ("plstm", "lstm"):
    path = tmp_path / f"task1/regular/{run}/results.json"
    summary = json.loads(path.read_text())
    summary["wall_time_s"] = 99.6 if run == "plstm" else 10.2
    summary["machine"] = {"backend": "gpu", "device_kind": "H100", "devices": 8}
    path.write_text(json.dumps(summary))
  _, _, row = figures.headline_rows(tmp_path)
  assert row.startswith(
    "| task 1, 1 ms: Phased LSTM vs the best baseline, LSTM | Fig. 3d ≈99.0% "
    "vs ≈99.0% (read off); notebook 99.3 ± 0.2% vs 89.3 ± 18.9% (epoch 70; "
    "the verdict's) | 99.2 ± 0.2% vs 80.0 ± 10.0% (2 seeds, 17 epochs) | "
  )
  assert row.endswith(
    "; `--config.model.name=lstm` | 8 devices (H100) | 100 s, LSTM 10 s | "
    "reproduced |"
  )


def test_the_tables_write_nothing_unless_both_files_have_their_blocks(
  tmp_path,
):
  readme, results = tmp_path / "README.md", tmp_path / "results.md"
  readme.write_text("<!-- headline -->\nold\n<!-- /headline -->\n")
  results.write_text("no blocks\n")
  with pytest.raises(ValueError, match="no <!-- task1 -->"):
    figures.write_tables(REPO / "results", readme, results)
  assert "old" in readme.read_text()


def test_the_readme_reads_in_a_minute():
  assert len((REPO / "README.md").read_text().splitlines()) <= 250


def test_the_task1_figure_redraws_from_the_committed_results(tmp_path):
  runs = sorted((REPO / "results/task1").glob("*/*/results.json"))
  assert len(runs) >= 6
  fig = figures.task1_bars(REPO / "results/task1")
  ours = [p for p in fig.axes[0].patches if p.get_hatch() is None]
  assert len(ours) == len(runs)
  fig.savefig(tmp_path / "task1.png")
