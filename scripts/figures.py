r"""Figures of the paper suite, drawn from the workdirs of finished runs.

  # Task 1: bar chart of the final validation accuracy (mean +- std over the
  # seeds of each run), paper numbers beside, and one curve panel per
  # condition; runs in ROOT/{condition}/{model} (scripts/freq_task_sweep.sh).
  python scripts/figures.py bars --root=/tmp/sweep --out=docs/task1_bars.png

  # Any experiment: a metric against training steps for several runs (mean
  # over seeds, min-max band), e.g. task 2, the adding task or sMNIST.
  python scripts/figures.py curves --runs=/tmp/add_plstm,/tmp/add_lstm \
      --labels="Phased LSTM,LSTM" --metric=val_loss --out=docs/adding.png

  # Event MNIST: accuracy curves, and accuracy against state updates per
  # neuron per digit; runs in ROOT/{plstm,event_lstm,lstm}.
  python scripts/figures.py nmnist --root=results/nmnist \
      --out=docs/figures/nmnist_study.png

  # The tables, from the committed summaries under ROOT: the README's
  # headline (<!-- headline --> ... <!-- /headline -->: one row per claim of
  # the papers) and the studies of docs/results.md (the blocks task1,
  # task1_70, task1_bf16, task2, adding, adding_110, nmnist and references);
  # --readme and --results name other files. Then the figures:
  python scripts/figures.py table --root=results
  python scripts/figures.py bars --root=results/task1 \
      --longer=results/task1_70 --out=docs/figures/task1_study.png
  python scripts/figures.py curves --runs=results/adding/plstm,\
results/adding/lstm --labels="Phased LSTM,LSTM" --metric=val_mse \
      --out=docs/figures/adding_study.png

Each run's `results.json` (its `history` of evaluations, per seed) is the
source, so that the committed summaries under `results/` redraw every figure
on any machine; a run without one (still going) is read from its
`metrics.jsonl`.
"""

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import app, flags
from matplotlib.figure import Figure

_ROOT = flags.DEFINE_string(
  "root", None, "bars: the sweep's root directory; table: results/."
)
_LONGER = flags.DEFINE_string(
  "longer", "", "bars: runs of more epochs (results/task1_70), as diamonds."
)
_RUNS = flags.DEFINE_list("runs", [], "curves: workdirs, one curve each.")
_LABELS = flags.DEFINE_list("labels", [], "curves: one label per run.")
_METRIC = flags.DEFINE_string("metric", "val_accuracy", "curves: the metric.")
_OUT = flags.DEFINE_string("out", None, "bars, curves, nmnist: PNG to write.")
_README = flags.DEFINE_string(
  "readme", "README.md", "table: the file of the headline block."
)
_RESULTS = flags.DEFINE_string(
  "results", "docs/results.md", "table: the file of the study blocks."
)

# Where each reference number comes from (the `source` of `REFERENCES`).
FIGURE = "read off the paper's figure (approximate)"
NOTEBOOK = "the official notebook (exact)"
OFFICIAL_FIGURE = "read off the official notebook's figure (approximate)"
TUTORIAL = "the LSNN-official tutorial"
RECALLED = "recalled (unconfirmed)"

# Task 1, the paper's Fig. 3d at epoch 70, read off the image
# (paper-facts §1.1): accuracy [%] per condition and model.
FIG3D_TASK1 = {
  "regular": {"plstm": 99.0, "bn_lstm": 99.1, "lstm": 99.0},
  "highres": {"plstm": 99.5, "bn_lstm": 62.0, "lstm": 51.7},
  "async": {"plstm": 98.2, "bn_lstm": 65.5, "lstm": 63.2},
}
# Task 1, the official notebook's numbers: validation accuracy at epoch 70,
# mean and population std over 5 seeds (A_Freq_Task.ipynb; seeds-spec
# §1.8); the verdicts compare with these, which have a spread.
PAPER_TASK1 = {
  "regular": {
    "plstm": (99.258, 0.228),
    "bn_lstm": (98.945, 0.383),
    "lstm": (89.336, 18.890),
  },
  "highres": {
    "plstm": (99.609, 0.276),
    "bn_lstm": (62.383, 18.634),
    "lstm": (51.719, 0.714),
  },
  "async": {
    "plstm": (97.891, 0.571),
    "bn_lstm": (74.297, 17.728),
    "lstm": (69.023, 13.333),
  },
}
# The official notebook's colours: PLSTM green, BN-LSTM purple, LSTM blue.
COLORS = {"plstm": "#33a02c", "bn_lstm": "#6a3d9a", "lstm": "#1f78b4"}
NAMES = {"plstm": "Phased LSTM", "bn_lstm": "BN-LSTM", "lstm": "LSTM"}


def read_history(workdir: Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps [N], values [N, S]) of `metric` in a run's results.json (its
  `history` of evaluations: a finished run, or its summary committed under
  results/) or, for a validation metric not there or a run still going,
  its metrics.jsonl."""
  workdir = Path(workdir)
  records = []
  summary = workdir / "results.json"
  if summary.exists():
    records = json.loads(summary.read_text()).get("history", [])
  if not any(metric in r for r in records):
    path = workdir / "metrics.jsonl"
    if not path.exists():
      raise FileNotFoundError(
        f"{path} not found: is {workdir} a run's workdir?"
      )
    records = [json.loads(line) for line in path.read_text().splitlines()]
  steps, values = [], []
  for record in records:
    if metric in record:
      steps.append(record["step"])
      values.append(record.get(f"{metric}_per_seed", [record[metric]]))
  if not steps:
    raise ValueError(f"{path} has no {metric!r} records.")
  return np.array(steps), np.array(values)


def read_points(workdir: Path, metric: str) -> list[tuple[str, tuple]]:
  """(label, (steps [N], values [N, S])) per point of a packed run's
  results.json (`points`, and `metric`_per_model in its history)."""
  results = json.loads((Path(workdir) / "results.json").read_text())
  if "points" not in results:
    raise ValueError(f"{workdir}/results.json is not a packed run's.")
  records = [r for r in results["history"] if f"{metric}_per_model" in r]
  if not records:
    raise ValueError(f"{workdir}/results.json has no {metric!r} per model.")
  steps = np.array([r["step"] for r in records])
  seeds = len(results["seeds"])
  values = np.array([r[f"{metric}_per_model"] for r in records])
  values = values.reshape(len(records), -1, seeds)  # [N, P, S]
  return [
    (row["point"], (steps, values[:, i]))
    for i, row in enumerate(results["points"])
  ]


def _per_seed(final: dict, name: str) -> np.ndarray:
  """`name`'s value per seed in a run's `final` record (one seed: [value])."""
  return np.asarray(final.get(f"{name}_per_seed", [final[name]]))


def _band(ax, steps, values, label: str, scale: float = 1.0) -> str:
  """Draws the mean over seeds of `values` [N, S] against `steps`, with a
  min-max band if there are several seeds; returns the line's colour."""
  line = ax.plot(steps, scale * values.mean(1), label=label)[0]
  if values.shape[1] > 1:
    ax.fill_between(
      steps,
      scale * values.min(1),
      scale * values.max(1),
      color=line.get_color(),
      alpha=0.2,
    )
  return line.get_color()


def curves(runs: Sequence[Path], labels: Sequence[str], metric: str) -> Figure:
  """One line per run (or per point of a packed run): the mean over seeds,
  with a min-max band."""
  series = []
  for run, label in zip(runs, labels, strict=True):
    if "points" in _summary(run):
      series += [(f"{label} {p}", h) for p, h in read_points(run, metric)]
    else:
      series.append((label, read_history(run, metric)))
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  scale = 100 if "accuracy" in metric else 1
  for label, (steps, values) in series:
    _band(ax, steps, values, label, scale)
  ax.set_xlabel("training step")
  ax.set_ylabel(metric + (" [%]" if "accuracy" in metric else ""))
  if "mse" in metric:
    ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return fig


def _summary(run: Path) -> dict:
  path = Path(run) / "results.json"
  return json.loads(path.read_text()) if path.exists() else {}


def _has_run(run: Path) -> bool:
  return any((run / f).exists() for f in ("results.json", "metrics.jsonl"))


def task1_bars(root: Path, longer: Path | None = None) -> Figure:
  """Task 1 as the paper's Fig. 3d: final accuracy per condition and model,
  ours (solid, mean +- std over seeds) beside the official notebook's
  (hatched), the paper's Fig. 3d values read off as black ticks. With
  `longer` (runs of more epochs, laid out as `root`), their final
  accuracies as white diamonds (mean +- std) on our bars, and their mean
  curves dashed in the condition's panel."""
  conditions = ("regular", "highres", "async")
  models = ("plstm", "bn_lstm", "lstm")
  fig = Figure(figsize=(12, 4.4))
  bar_ax, *curve_axes = fig.subplots(1, 4, width_ratios=(1.6, 1, 1, 1))
  width = 0.13
  labelled = set()
  for j, model in enumerate(models):
    for i, condition in enumerate(conditions):
      x = i + (j - 1) * 2.2 * width
      paper_mean, paper_std = PAPER_TASK1[condition][model]
      bar_ax.bar(
        x + width / 2,
        paper_mean,
        width,
        yerr=paper_std,
        color="white",
        edgecolor=COLORS[model],
        hatch="//",
      )
      bar_ax.plot(
        x + width / 2,
        FIG3D_TASK1[condition][model],
        "_",
        color="black",
        markersize=9,
        label="paper's Fig. 3d (read off)" if (i, j) == (0, 0) else None,
      )
      if longer is not None and _has_run(longer / condition / model):
        steps, values = read_history(longer / condition / model, "val_accuracy")
        final = 100 * values[-1]
        bar_ax.errorbar(
          x - width / 2,
          final.mean(),
          yerr=final.std(),
          fmt="D",
          color="black",
          markerfacecolor="white",
          markersize=5,
          zorder=3,
          label="ours, 70 epochs" if "longer" not in labelled else None,
        )
        labelled.add("longer")
        curve_axes[i].plot(
          steps, 100 * values.mean(axis=1), "--", color=COLORS[model], lw=1
        )
      run = root / condition / model
      if not _has_run(run):
        continue
      steps, values = read_history(run, "val_accuracy")
      final = 100 * values[-1]
      bar_ax.bar(
        x - width / 2,
        final.mean(),
        width,
        yerr=final.std(),
        color=COLORS[model],
        label=NAMES[model] if model not in labelled else None,
      )
      labelled.add(model)
      ax = curve_axes[i]
      for seed_curve in values.T:
        ax.plot(steps, 100 * seed_curve, color=COLORS[model], lw=0.8)
  bar_ax.set_xticks(range(3), ["1 ms", "0.1 ms", "async"])
  bar_ax.set_ylim(50, 100)
  bar_ax.set_ylabel("final validation accuracy [%]")
  bar_ax.set_title(
    "ours (solid), official notebook (hatched)"
    + ("" if longer is None else "\nlonger runs dashed in the panels")
  )
  bar_ax.legend(
    loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=7
  )
  for ax, condition in zip(curve_axes, conditions, strict=True):
    ax.set_title(CONDITION_NAMES[condition])
    ax.set_xlabel("training step")
    ax.set_ylim(45, 100)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  return fig


CONDITION_NAMES = {"regular": "1 ms", "highres": "0.1 ms", "async": "async"}


def verdict(ours: float, paper: float) -> str:
  """reproduced: ours at least the paper's, or at most 1 point below;
  close: at most 5 points below; else not."""
  gap = paper - ours
  if gap <= 1.0:
    return "reproduced"
  return "close" if gap <= 5.0 else "not"


def task1_run(root: Path, condition: str, model: str) -> dict | None:
  """One task-1 run, ROOT/{condition}/{model}/results.json, against the
  paper: None if it has not run."""
  path = root / condition / model / "results.json"
  if not path.exists():
    return None
  results = json.loads(path.read_text())
  final = results["final"]
  per_seed = 100 * _per_seed(final, "val_accuracy")
  epochs = final["epoch"]
  paper, paper_std = PAPER_TASK1[condition][model]
  figure = FIG3D_TASK1[condition][model]
  word = verdict(per_seed.mean(), paper)
  why = []
  if word != "reproduced" and epochs < 70:
    why.append(f"{epochs} of 70 epochs")
  if word != "reproduced" and max(per_seed.std(), paper_std) >= 5:
    why.append(f"seeds spread ±{max(per_seed.std(), paper_std):.0f}")
  if why:
    word += f" ({'; '.join(why)})"
  overrides = (
    f"--config.data.condition={condition} --config.model.name={model}"
    f" --config.num_epochs={epochs} --config.num_seeds="
    f"{len(results['seeds'])} --config.seed={results['seeds'][0]}"
  )
  dtype = results.get("config", {}).get("model", {}).get("dtype", "float32")
  if dtype != "float32":
    overrides += f" --config.model.dtype={dtype}"
  return {
    "model": model,
    "results": results,
    "per_seed": per_seed,
    "epochs": epochs,
    "paper": f"{paper:.1f} ± {paper_std:.1f}%",
    "figure": f"≈{figure:.1f}%",
    "verdict": word,
    "flags": overrides,
  }


def task1_rows(root: Path) -> list[str]:
  """The task-1 rows, one per run under ROOT/{condition}/{model} with a
  results.json: command, budget, seeds, ours (final validation accuracy,
  mean ± std over seeds), the paper's, and a verdict."""
  rows = [
    "| task 1 (`freq_task.py:paper`) | model | budget | seeds | ours | "
    "paper's Fig. 3d (read off, epoch 70) | official notebook (epoch 70) | "
    "verdict (vs the notebook) |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for condition in ("regular", "highres", "async"):
    for model in ("plstm", "bn_lstm", "lstm"):
      run = task1_run(root, condition, model)
      if run is None:
        continue
      rows.append(
        f"| {CONDITION_NAMES[condition]}: `{run['flags']}` | {NAMES[model]} | "
        f"{run['epochs']} epochs, {run['results']['final']['step']} steps | "
        f"{len(run['per_seed'])} | {_mean_std(run['per_seed'])} | "
        f"{run['figure']} | {run['paper']} | {run['verdict']} |"
      )
  return rows


# Task 2 (freq_combo_task), the Phased LSTM of the official figure
# (B_Freq_Combo_Task.ipynb, read off the image): about 90% at epoch 50.
PAPER_TASK2 = {"plstm": (90.0, 50)}


def task2_run(root: Path, model: str) -> dict | None:
  """One task-2 run, ROOT/{model}/results.json, against the official
  figure's accuracy at epoch 50: None if it has not run."""
  path = root / model / "results.json"
  if not path.exists():
    return None
  paper, at = PAPER_TASK2[model]
  results = json.loads(path.read_text())
  final = results["final"]
  per_seed = 100 * _per_seed(final, "val_accuracy")
  epochs = final["epoch"]
  word = verdict(per_seed.mean(), paper)
  if word != "reproduced" and epochs < at:
    word += f" ({epochs} of {at} epochs)"
  overrides = (
    f"--config.model.name={model} --config.num_epochs={epochs} "
    f"--config.num_seeds={len(results['seeds'])} "
    f"--config.seed={results['seeds'][0]}"
  )
  return {
    "results": results,
    "per_seed": per_seed,
    "epochs": epochs,
    "paper": f"about {paper:.0f}% at epoch {at} (read off the official figure)",
    "verdict": word,
    "flags": overrides,
  }


def task2_rows(root: Path) -> list[str]:
  """The task-2 rows, one per model under ROOT/{model} with a
  results.json, compared with the official figure's accuracy at epoch 50."""
  rows = [
    "| task 2 (`freq_combo_task.py:paper`) | model | budget | seeds | ours "
    "| paper | |",
    "|---|---|---|---|---|---|---|",
  ]
  for model in PAPER_TASK2:
    run = task2_run(root, model)
    if run is None:
      continue
    rows.append(
      f"| 110 units: `{run['flags']}` | {NAMES[model]} | {run['epochs']} "
      f"epochs, {run['results']['final']['step']} steps | "
      f"{len(run['per_seed'])} | {_mean_std(run['per_seed'])} | "
      f"{run['paper']} | {run['verdict']} |"
    )
  return rows


def first_below(steps: np.ndarray, values: np.ndarray, level: float) -> list:
  """Per seed (column of `values` [N, S]), the first step whose value is at
  most `level`, or None if none is."""
  return [
    int(steps[np.argmax(column <= level)]) if (column <= level).any() else None
    for column in values.T
  ]


# The adding task (adding_task.py:paper): the steps to a validation MSE of
# 0.1 (clearly below the mean predictor's 1/6 ~ 0.167: the task is being
# learned) and of 0.01 (solved: an RMS error of 0.1 on sums in [-1, 1]).
MSE_LEVELS = (0.1, 0.01)


def _solved(steps_per_seed: list) -> tuple[str, float | None, int]:
  """'mean over seeds (all solved)' or 'mean (k of n seeds)', the mean step
  of the seeds that got there (None if none did), and how many did."""
  reached = [s for s in steps_per_seed if s is not None]
  count, seeds = len(reached), len(steps_per_seed)
  if not reached:
    return f"none of {seeds} seeds", None, 0
  mean = float(np.mean(reached))
  text = (
    f"{mean:.0f}"
    if count == seeds
    else f"{mean:.0f} ({count} of {seeds} seeds)"
  )
  return text, mean, count


def _against(level: float, mean: float, lstm: float | None) -> str:
  """How the steps to MSE <= level compare with the LSTM's (None: the LSTM
  never got there)."""
  if lstm is None:
    return f"reached MSE ≤ {level}; the LSTM did not"
  return f"{lstm / mean:.1f}x as fast to MSE ≤ {level}"


def _flag(results: dict, name: str):
  value = results["config"]
  for part in name.split("."):
    value = value[part]
  return value


def _units(results: dict) -> str:
  """The width of a run's model, as its flag."""
  return f"--config.model.hidden={_flag(results, 'model.hidden')}"


def adding_runs(root: Path) -> list[dict]:
  """The adding-task models: the LSTM (ROOT/lstm) first, then the Phased
  LSTM's period ranges (the points packed in ROOT/plstm), each with its
  final validation MSE per seed, the steps to each of MSE_LEVELS, and, at
  the lowest level it reached, how that compares with the LSTM."""
  entries = []
  lstm = root / "lstm" / "results.json"
  if lstm.exists():
    results = json.loads(lstm.read_text())
    entries.append(
      {
        "flags": f"--config.model.name=lstm {_units(results)}",
        "model": "LSTM",
        "results": results,
        "final": _per_seed(results["final"], "val_mse"),
        "history": read_history(root / "lstm", "val_mse"),
      }
    )
  plstm = root / "plstm" / "results.json"
  if plstm.exists():
    results = json.loads(plstm.read_text())
    for point, (_, history) in zip(
      results["points"], read_points(root / "plstm", "val_mse"), strict=True
    ):
      low, high = point["model.tau_range"]
      entries.append(
        {
          "flags": f'--config.model.tau_range="({low}, {high})" '
          + _units(results),
          "model": f"Phased LSTM, τ ~ exp(U({np.log(low):.0f}, "
          f"{np.log(high):.0f}))",
          "results": results,
          "final": np.asarray(point["val_mse_per_seed"]),
          "history": history,
        }
      )
  # level -> the LSTM's mean step to it (None: never), if there is an LSTM.
  baseline = {}
  if lstm.exists():
    for level in MSE_LEVELS:
      baseline[level] = _solved(first_below(*entries[0]["history"], level))[1]
  for entry in entries:
    solved = [
      _solved(first_below(*entry["history"], level)) for level in MSE_LEVELS
    ]
    entry["steps_to"] = [text for text, _, _ in solved]
    entry["verdict"] = (
      ""
      if entry["model"] == "LSTM"
      else _adding_verdict(solved, len(entry["final"]), baseline)
    )
  return entries


def _adding_verdict(solved: list, seeds: int, baseline: dict) -> str:
  """The verdict at the lowest of MSE_LEVELS that every seed reached
  ("reproduced" if it got there faster than the LSTM), then the lowest one
  that only some seeds reached ("partly" if that is the only one)."""
  levels = list(zip(MSE_LEVELS, solved, strict=True))
  every = [(lv, s) for lv, s in levels if s[2] == seeds]
  some = [(lv, s) for lv, s in levels if 0 < s[2] < seeds]
  if some and every and some[-1][0] > every[-1][0]:
    some = []  # all seeds reached a lower level than the partial one
  if every and not baseline:
    verdict = f"no LSTM run to compare at MSE ≤ {every[-1][0]}"
  elif every:
    level, (_, mean, _) = every[-1]
    lstm = baseline[level]
    word = "reproduced" if lstm is None or lstm > mean else "not"
    verdict = f"{word}: {_against(level, mean, lstm)}"
  elif not some:
    return f"not: not below {MSE_LEVELS[0]}"
  else:
    verdict = "partly"
  if some:
    level, (_, mean, count) = some[-1]
    part = f"{count} of {seeds} seeds reached MSE ≤ {level}"
    if baseline and baseline[level] is None:
      part += ", the LSTM did not"
    elif baseline:
      part += f", {baseline[level] / mean:.1f}x as fast as the LSTM"
    verdict += f": {part}" if verdict == "partly" else f"; {part}"
  return verdict


def adding_rows(root: Path) -> list[str]:
  """The adding-task rows (adding_runs): command, budget, seeds, final MSE
  (mean ± std over seeds), the steps to each of MSE_LEVELS and the
  comparison with the LSTM."""
  levels = " | ".join(f"steps to MSE ≤ {level}" for level in MSE_LEVELS)
  rows = [
    "| adding task (`adding_task.py:paper`) | model | budget | seeds | "
    f"final MSE | {levels} | the paper (recalled): faster than the LSTM |",
    "|---|---|---|---|---|" + "---|" * len(MSE_LEVELS) + "---|",
  ]
  for entry in adding_runs(root):
    results, final = entry["results"], entry["final"]
    rows.append(
      f"| `{entry['flags']}` | {entry['model']} | {results['steps']} steps | "
      f"{len(results['seeds'])} | {final.mean():.4f} ± {final.std():.4f} | "
      f"{' | '.join(entry['steps_to'])} | {entry['verdict']} |"
    )
  return rows


# Event MNIST (nmnist.py:paper): the paper's Phased LSTM on N-MNIST, as
# recalled (seeds-spec 1.8): about 97.3%, an order of magnitude fewer
# updates than its event-driven BN-LSTM.
PAPER_NMNIST = 97.3
NMNIST_MODELS = {
  "plstm": "Phased LSTM (events)",
  "event_lstm": "LSTM (events, t an input)",
  "lstm": "LSTM (5 ms frames)",
}
NMNIST_FLAGS = (
  "model.name",
  "data.max_events",
  "data.train_size",
  "num_epochs",
  "num_seeds",
  "seed",
)


def _count(n: int, one: str, many: str) -> str:
  return f"{n} {one if n == 1 else many}"


def _wall(results: dict) -> str:
  """ ", N s" of a run's wall time, where its summary has one."""
  wall = results.get("wall_time_s")
  return "" if wall is None else f", {wall:.0f} s"


def _mean_std(percent: np.ndarray) -> str:
  """Mean ± std over seeds, or the one seed's value."""
  if len(percent) == 1:
    return f"{percent[0]:.1f}%"
  return f"{percent.mean():.1f} ± {percent.std():.1f}%"


def nmnist_runs(root: Path) -> dict[str, dict]:
  """The event-MNIST runs, model -> its results, test accuracy per seed,
  flags, and for the Phased LSTM the paper's number and a verdict: against
  the paper's 97.3%, and its update saving against the event LSTM."""
  found = {}
  for model in NMNIST_MODELS:
    path = root / model / "results.json"
    if path.exists():
      found[model] = {"results": json.loads(path.read_text())}
  for model, run in found.items():
    results = run["results"]
    final = results["final"]
    accuracy = 100 * _per_seed(final, "val_accuracy")
    paper, word = "", ""
    if model == "plstm":
      paper = f"about {PAPER_NMNIST}% (recalled; real N-MNIST)"
      word = verdict(accuracy.mean(), PAPER_NMNIST)
      if word != "reproduced":
        word += f" ({_count(final['epoch'], 'pass', 'passes')} over the digits)"
      other = found.get("event_lstm")
      if other:
        theirs = 100 * _per_seed(other["results"]["final"], "val_accuracy")
        ratio = (
          other["results"]["final"]["val_updates_per_neuron"]
          / final["val_updates_per_neuron"]
        )
        gap = accuracy.mean() - theirs.mean()
        word += (
          f"; {gap:+.1f} points against the event LSTM with {ratio:.0f}x "
          "fewer updates"
        )
    run.update(
      accuracy=accuracy,
      paper=paper,
      verdict=word,
      flags=" ".join(f"--config.{f}={_flag(results, f)}" for f in NMNIST_FLAGS),
    )
  return found


def _earlier_passes(results: dict, key: str, scale: float, form: str) -> str:
  """The mean over seeds of `key` at the end of each pass before the last
  (the last evaluation of each epoch in the history), as 'passes 1-4: a,
  b, c, d; pass 5: ', or '' for a one-pass run."""
  last = {}
  for record in results["history"]:
    last[record["epoch"]] = record[key]
  final = results["final"]["epoch"]
  earlier = [scale * last[e] for e in sorted(last) if e < final]
  if not earlier:
    return ""
  span = "pass 1" if len(earlier) == 1 else f"passes 1-{len(earlier)}"
  values = ", ".join(format(v, form) for v in earlier)
  return f"{span}: {values}; pass {final}: "


def nmnist_rows(root: Path) -> list[str]:
  """The event-MNIST rows, one per model under ROOT/{model}: test
  accuracy (mean ± std over seeds) and state updates per neuron per digit
  at each pass, events per digit, the paper's number and the verdict
  (nmnist_runs)."""
  rows = [
    "| event MNIST (`nmnist.py:paper`) | model | budget | seeds | accuracy | "
    "updates per neuron per digit | events per digit | paper | |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for model, run in nmnist_runs(root).items():
    results = run["results"]
    final = results["final"]
    accuracy = _earlier_passes(results, "val_accuracy", 100, ".1f")
    updates = _earlier_passes(results, "val_updates_per_neuron", 1, ",.0f")
    rows.append(
      f"| `{run['flags']}` | {NMNIST_MODELS[model]} | "
      f"{_count(final['epoch'], 'epoch', 'epochs')}, {final['step']} steps"
      f"{_wall(results)} | "
      f"{len(run['accuracy'])} | {accuracy}{_mean_std(run['accuracy'])} | "
      f"{updates}{final['val_updates_per_neuron']:,.0f} | "
      f"{final['val_events_per_sample']:,.0f} | {run['paper']} | "
      f"{run['verdict']} |"
    )
  return rows


def nmnist_figure(root: Path) -> Figure:
  """Event MNIST: training accuracy (each logged window of batches, from
  the run's metrics.jsonl; mean over seeds, min-max band) with the test
  accuracy of each evaluation as dots, and final test accuracy against
  state updates per neuron per digit."""
  fig = Figure(figsize=(10, 3.8))
  curve_ax, cost_ax = fig.subplots(1, 2)
  for model, name in NMNIST_MODELS.items():
    run = root / model
    if not (run / "results.json").exists():
      continue
    color = _band(curve_ax, *read_history(run, "train_accuracy"), name, 100)
    steps, values = read_history(run, "val_accuracy")
    curve_ax.plot(steps, 100 * values.mean(1), "o", color=color)
    final = _summary(run)["final"]
    accuracy = 100 * _per_seed(final, "val_accuracy")
    cost_ax.errorbar(
      final["val_updates_per_neuron"],
      accuracy.mean(),
      yerr=accuracy.std(),
      fmt="o",
      color=color,
      label=name,
    )
  curve_ax.set_xlabel("training step")
  curve_ax.set_ylabel("accuracy [%]: training (lines), test (dots)")
  curve_ax.grid(alpha=0.3)
  curve_ax.legend(fontsize=8)
  cost_ax.set_xscale("log")
  cost_ax.set_xlabel("state updates per neuron per digit")
  cost_ax.set_ylabel("final test accuracy [%]")
  cost_ax.grid(alpha=0.3)
  fig.tight_layout()
  return fig


def _hardware(results: dict) -> str:
  """The machine a run's results.json records: the driver's (a dict:
  backend, cores, devices, versions) or a description written with it."""
  machine = results.get("machine")
  if isinstance(machine, str):
    versions = results.get("versions", {})
    text = machine
    if "devices" in results:
      text += ", " + _count(results["devices"], "device", "devices")
  elif isinstance(machine, dict):
    versions = machine.get("versions", {})
    devices = _count(machine["devices"], "device", "devices")
    if machine.get("backend") == "cpu":
      text = f"{machine['cpu_cores']}-core CPU, {devices}"
    else:
      text = f"{devices} ({machine['device_kind']})"
  else:
    return "not recorded"
  return text + (f", jax {versions['jax']}" if "jax" in versions else "")


def _seconds(results: dict) -> str:
  wall = results.get("wall_time_s")
  return "not recorded" if wall is None else f"{wall:.0f} s"


def _both(first: str, second: str) -> str:
  """One text if the two runs' are equal, else both."""
  return first if first == second else f"{first}; {second}"


def _budget(results: dict, epochs: int) -> str:
  seeds = _count(len(results["seeds"]), "seed", "seeds")
  return f"{seeds}, {_count(epochs, 'epoch', 'epochs')}"


def _task1_claims(root: Path, longer: Path) -> list[str]:
  """Per condition under ROOT: the Phased LSTM against the best of the
  baselines run (by our mean), both beside the paper's, and the Phased
  LSTM's run under LONGER (the paper's budget) where there is one, beside
  that baseline's there if it has one."""
  rows = []
  for condition in ("regular", "highres", "async"):
    plstm = task1_run(root, condition, "plstm")
    long = task1_run(longer, condition, "plstm")
    if plstm is None:
      plstm, long = long, None
    if plstm is None:
      continue
    runs = [task1_run(root, condition, m) for m in ("bn_lstm", "lstm")]
    runs = [r for r in runs if r is not None]
    best = max(runs, key=lambda r: r["per_seed"].mean(), default=None)
    budget = _budget(plstm["results"], plstm["epochs"])
    claim = f"task 1, {CONDITION_NAMES[condition]}: Phased LSTM"
    paper, ours = plstm["paper"], _mean_std(plstm["per_seed"])
    figure = plstm["figure"]
    config = f"`freq_task.py:paper {plstm['flags']}`"
    hardware, wall = _hardware(plstm["results"]), _seconds(plstm["results"])
    word = plstm["verdict"]
    if best is not None:
      name = NAMES[best["model"]]
      claim += f" vs the best baseline, {name}"
      paper += f" vs {best['paper']}"
      figure += f" vs {best['figure']}"
      theirs = _budget(best["results"], best["epochs"])
      ours = (
        f"{ours} vs {_mean_std(best['per_seed'])}"
        if theirs == budget
        else f"{ours} ({budget}) vs {_mean_std(best['per_seed'])} ({theirs})"
      )
      same = best["flags"].replace(
        f"model.name={best['model']}", "model.name=plstm"
      )
      config += (
        f"; `--config.model.name={best['model']}`"
        if same == plstm["flags"]
        else f"; `{best['flags']}`"
      )
      hardware = _both(hardware, _hardware(best["results"]))
      wall += f", {name} {_seconds(best['results'])}"
    if best is None or theirs == budget:
      ours += f" ({budget})"
    if long is not None:
      epochs = _count(long["epochs"], "epoch", "epochs")
      seeds = _count(len(long["per_seed"]), "seed", "seeds")
      long_best = (
        None if best is None else task1_run(longer, condition, best["model"])
      )
      if long_best is not None and long_best["epochs"] == long["epochs"]:
        ours += (
          f"; at {epochs}: {_mean_std(long['per_seed'])} vs "
          f"{_mean_std(long_best['per_seed'])} ({seeds})"
        )
        wall += (
          f", {epochs} {_seconds(long['results'])} and "
          f"{_seconds(long_best['results'])}"
        )
        hardware = _both(hardware, _hardware(long_best["results"]))
      else:
        ours += (
          f"; Phased LSTM at {epochs}: {_mean_std(long['per_seed'])} ({seeds})"
        )
        wall += f", {epochs} {_seconds(long['results'])}"
      config += f"; `--config.num_epochs={long['epochs']}`"
      hardware = _both(hardware, _hardware(long["results"]))
      word += f"; at {epochs} {long['verdict']}"
    rows.append(
      f"| {claim} | Fig. 3d {figure} (read off); notebook {paper} (epoch 70; "
      f"the verdict's) | {ours} | "
      f"{config} | {hardware} | {wall} | {word} |"
    )
  return rows


def _task2_claims(root: Path) -> list[str]:
  rows = []
  for model in PAPER_TASK2:
    run = task2_run(root, model)
    if run is None:
      continue
    units = _flag(run["results"], "model.hidden")
    rows.append(
      f"| task 2, {units} units: {NAMES[model]} | {run['paper']} | "
      f"{_mean_std(run['per_seed'])} "
      f"({_budget(run['results'], run['epochs'])}) | "
      f"`freq_combo_task.py:paper {run['flags']}` | "
      f"{_hardware(run['results'])} | {_seconds(run['results'])} | "
      f"{run['verdict']} |"
    )
  return rows


def _adding_claims(root: Path) -> list[str]:
  """The Phased LSTM's period range of the lowest final MSE against the
  LSTM."""
  runs = adding_runs(root)
  lstm = next((r for r in runs if r["model"] == "LSTM"), None)
  ranges = [r for r in runs if r["model"] != "LSTM"]
  if not ranges:
    return []
  best = min(ranges, key=lambda r: r["final"].mean())
  results = best["results"]
  data = results["config"]["data"]
  seeds = _count(len(results["seeds"]), "seed", "seeds")
  level = f"steps to MSE ≤ {MSE_LEVELS[0]}"
  ours = f"MSE {best['final'].mean():.4f} ± {best['final'].std():.4f}"
  reached = best["steps_to"][0]
  config = (
    f"`adding_task.py:paper {best['flags']} --config.num_epochs="
    f"{_flag(results, 'num_epochs')} --config.num_seeds="
    f"{len(results['seeds'])} --config.seed={results['seeds'][0]}`"
  )
  wall = f"{_seconds(results)} ({len(ranges)} ranges x {seeds} packed)"
  hardware = _hardware(results)
  if lstm is not None:
    final = lstm["final"]
    ours += f" vs the LSTM's {final.mean():.4f} ± {final.std():.4f}"
    reached += f" vs {lstm['steps_to'][0]}"
    config += "; `--config.model.name=lstm`"
    wall += f", LSTM {_seconds(lstm['results'])}"
    hardware = _both(hardware, _hardware(lstm["results"]))
  return [
    f"| adding task, T = {data['seq_len']} ± {data['jitter']}: Phased LSTM "
    f"({best['model'].split(', ', 1)[1]}, the best of {len(ranges)} period "
    f"ranges) faster than the LSTM | faster than the LSTM (recalled) | "
    f"{ours}; {level}: {reached} ({seeds}, {results['steps']} steps) | "
    f"{config} | {hardware} | {wall} | {best['verdict']} |"
  ]


def _nmnist_claims(root: Path) -> list[str]:
  runs = nmnist_runs(root)
  plstm = runs.get("plstm")
  if plstm is None:
    return []
  results, final = plstm["results"], plstm["results"]["final"]
  ours = (
    f"{_mean_std(plstm['accuracy'])} "
    f"({_budget(results, final['epoch'])}), "
    f"{final['val_updates_per_neuron']:,.0f} updates per neuron per digit"
  )
  config = f"`nmnist.py:paper {plstm['flags']}`"
  wall, hardware = _seconds(results), _hardware(results)
  other = runs.get("event_lstm")
  if other is not None:
    theirs = other["results"]
    ours += (
      f" vs the event LSTM's {_mean_std(other['accuracy'])}, "
      f"{theirs['final']['val_updates_per_neuron']:,.0f}"
    )
    config += "; `--config.model.name=event_lstm`"
    wall += f", event LSTM {_seconds(theirs)}"
    hardware = _both(hardware, _hardware(theirs))
  return [
    "| event MNIST: Phased LSTM, with fewer updates than an event-driven "
    f"LSTM | {plstm['paper']}, an order of magnitude fewer updates | "
    f"{ours} | {config} | {hardware} | {wall} | {plstm['verdict']} |"
  ]


def _store_recall_claims(root: Path) -> list[str]:
  """The LSNN tutorial's store-recall: it trains until the recall error,
  averaged over its last validation batches, is below the target."""
  path = root / "results.json"
  if not path.exists():
    return []
  results = json.loads(path.read_text())
  config = results["config"]
  model = config["model"]
  window, target = config["early_stop"]["window"], results["target"]
  final = results["final"]["val_recall_error"]
  seeds = _count(len(results["seeds"]), "seed", "seeds")
  if results["stopped_early"]:
    ours = (
      f"< {100 * target:g}% (mean of the last {window} validation batches) "
      f"after {results['steps']} steps; {100 * final:.1f}% on the last "
      f"batch ({seeds})"
    )
    word = "reproduced"
  else:
    ours = f"{100 * final:.1f}% after {results['steps']} steps ({seeds})"
    word = f"not (not below {100 * target:g}%)"
  command = results.get("command", "").split()
  overrides = [a for a in command if a.startswith("--config")]
  overrides = [
    a.removeprefix("--config=configs/")
    for a in overrides
    if "--workdir" not in a
  ]
  return [
    f"| LSNN store-recall ({model['n_regular']} LIF + {model['n_adaptive']} "
    f"ALIF): recall error below {100 * target:g}% | stops at < "
    f"{100 * target:g}% (LSNN-official tutorial, no number published; the "
    "task is from Bellec et al. 2019, arXiv 1901.09049v1, not the LSNN "
    f"paper) | {ours} | "
    f"`{' '.join(overrides) or config['experiment']}` | {_hardware(results)} | "
    f"{_seconds(results)} | {word} |"
  ]


def headline_rows(root: Path) -> list[str]:
  """The README's headline: one row per claim of the papers with a run
  under ROOT (results/): the claim, the paper's number and where it comes
  from, ours (mean ± std over seeds), the config and its flags, the
  machine and the wall time of each run (all its seeds, packed)."""
  return [
    "| claim | paper | ours | config | hardware | wall time | verdict |",
    "|---|---|---|---|---|---|---|",
    *_task1_claims(root / "task1", root / "task1_70"),
    *_task2_claims(root / "task2"),
    *_adding_claims(
      root / "adding_110" if (root / "adding_110").is_dir() else root / "adding"
    ),
    *_nmnist_claims(root / "nmnist"),
    *_store_recall_claims(root / "store_recall"),
  ]


def write_block(path: Path, name: str, lines: list[str]):
  """Replaces the lines between `<!-- NAME -->` and `<!-- /NAME -->` in
  the file at `path` with `lines`."""
  text = path.read_text()
  start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
  if start not in text or end not in text:
    raise ValueError(f"{path} has no {start} ... {end} block.")
  head, rest = text.split(start, 1)
  _, tail = rest.split(end, 1)
  body = "".join(line + "\n" for line in lines)
  path.write_text(head + start + "\n" + body + end + tail)


def reference_rows() -> list[str]:
  """Every reference number the tables compare with, and its source."""
  rows = [
    "| experiment | claim | model | reference | source |",
    "|---|---|---|---|---|",
  ]
  for condition, models in PAPER_TASK1.items():
    for model, (mean, std) in models.items():
      name = f"task 1, {CONDITION_NAMES[condition]}, epoch 70"
      figure = FIG3D_TASK1[condition][model]
      rows += [
        f"| {name} | accuracy | {NAMES[model]} | ≈{figure:.1f}% | "
        f"{FIGURE}, Fig. 3d |",
        f"| {name} | accuracy | {NAMES[model]} | {mean:.1f} ± {std:.1f}% "
        f"(5 seeds) | {NOTEBOOK}, A_Freq_Task.ipynb |",
      ]
  for model, (accuracy, epoch) in PAPER_TASK2.items():
    rows.append(
      f"| task 2, epoch {epoch} | accuracy | {NAMES[model]} | "
      f"≈{accuracy:.0f}% | {OFFICIAL_FIGURE}, B_Freq_Combo_Task.ipynb |"
    )
  rows += [
    "| adding task | converges faster than the LSTM | Phased LSTM | - | "
    f"{RECALLED}; the setting's markers (first in the first 10%, second in "
    "the last half) are confirmed by a later paper that copies it |",
    f"| event MNIST | accuracy | Phased LSTM | ≈{PAPER_NMNIST}% | "
    f"{RECALLED} (on real N-MNIST) |",
    "| event MNIST | state updates | Phased LSTM | an order of magnitude "
    f"fewer than the baseline | {RECALLED} |",
    "| store-recall | recall error, the tutorial's stopping rule | LSNN | "
    f"< 5% | {TUTORIAL}; the task is described in Bellec et al. 2019, "
    "arXiv 1901.09049v1, not in the LSNN paper |",
  ]
  return rows


def tables(root: Path) -> dict[str, list[str]]:
  """The study blocks of docs/results.md from the summaries under ROOT
  (results/): name -> lines, none for a study with no run yet."""
  rows = {
    "task1": task1_rows(root / "task1"),
    "task1_70": task1_rows(root / "task1_70"),
    "task1_bf16": task1_rows(root / "task1_bf16"),
    "references": reference_rows(),
    "task2": task2_rows(root / "task2"),
    "adding": adding_rows(root / "adding"),
    "adding_110": adding_rows(root / "adding_110"),
    "nmnist": nmnist_rows(root / "nmnist"),
  }
  return {name: r if len(r) > 2 else [] for name, r in rows.items()}


def write_tables(root: Path, readme: Path, results: Path) -> None:
  """The headline block into `readme` and the study blocks into
  `results`, each file checked for all its blocks before either is
  written."""
  headline = headline_rows(root)
  files = {
    readme: {"headline": headline if len(headline) > 2 else []},
    results: tables(root),
  }
  for path, blocks in files.items():
    text = path.read_text()
    for name in blocks:
      if f"<!-- {name} -->" not in text or f"<!-- /{name} -->" not in text:
        raise ValueError(f"{path} has no <!-- {name} --> ... block.")
  for path, blocks in files.items():
    for name, rows in blocks.items():
      write_block(path, name, rows)
      print(f"Wrote {max(len(rows) - 2, 0)} {name} rows into {path}")


def main(argv):
  try:
    draw(argv)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f"figures.py: error: {e}")
  except KeyError as e:
    sys.exit(
      f"figures.py: error: a results.json lacks {e}: is it a run of the "
      "experiment (and the build) that this figure or table expects?"
    )


def draw(argv):
  if len(argv) != 2 or argv[1] not in ("bars", "curves", "nmnist", "table"):
    raise app.UsageError(
      "Usage: figures.py bars|curves|nmnist --out=FILE.png ... | table "
      "[--root=results --readme=README.md --results=docs/results.md]"
    )
  if argv[1] == "table":
    if _OUT.value:
      raise app.UsageError("table writes --readme and --results, not --out.")
    write_tables(
      Path(_ROOT.value or "results"), Path(_README.value), Path(_RESULTS.value)
    )
    return
  if not _OUT.value:
    raise app.UsageError(f"{argv[1]} needs --out, the PNG to write.")
  if argv[1] in ("bars", "nmnist"):
    if not _ROOT.value:
      raise app.UsageError(f"{argv[1]} needs --root, the runs' directory.")
    if argv[1] == "bars":
      longer = Path(_LONGER.value) if _LONGER.value else None
      fig = task1_bars(Path(_ROOT.value), longer)
    else:
      fig = nmnist_figure(Path(_ROOT.value))
  else:
    labels = _LABELS.value or [Path(r).name for r in _RUNS.value]
    if not _RUNS.value or len(labels) != len(_RUNS.value):
      raise app.UsageError("curves needs --runs and one label per run.")
    fig = curves([Path(r) for r in _RUNS.value], labels, _METRIC.value)
  Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(_OUT.value, dpi=120)
  print(f"Wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
