"""A run's metrics: the mean over seeds, the written record, the epoch line.

A run has one headline metric, named with its direction in the config
(`config.metric`, e.g. `accuracy`, and `config.mode`: `max` if higher is
better, `min` if lower is): the epoch line, the target, early stopping,
the final plot and results.json speak of it. The loop reads these once from
the config (`Headline`); this module sees plain values only.
"""

import csv
import importlib.metadata
import io
import json
import os
import platform
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import tensorboardX
from matplotlib.figure import Figure

from plstm.train import packing

MODES = ("max", "min")


class Headline(NamedTuple):
  """The headline metric: its name, direction (`MODES`) and target."""

  metric: str
  mode: str
  target: float

  def reached(self, record: dict) -> bool:
    """Whether an evaluation's `record` reaches the target."""
    return better(self.mode, record[f"val_{self.metric}"], self.target)


def summarize(
  steps: list[dict], models: packing.Models, metric: str, mode: str
) -> dict[str, float | int | list[float]]:
  """The record of `steps` (dicts of [K] per-model metrics): each metric
  averaged over the list, per model.

  With one point (seeds only), each metric `m` is the mean over seeds, with
  `m_std` and `m_per_seed` beside it when there are several. With several
  points, `m` and `m_std` are those of the best point by `metric` (its mean
  over seeds) and `m_per_model` lists every model's value.
  """
  steps = jax.device_get(steps)
  num_points, num_seeds = len(models.points), len(models.seeds)
  # In float64: the same mean whether a step's metrics come from the
  # device (float32) or from a checkpoint's JSON (float64).
  per_model = {
    k: np.mean(np.asarray([s[k] for s in steps], np.float64), axis=0)
    for k in steps[0]
  }
  means = {
    k: v.reshape(num_points, num_seeds).mean(1) for k, v in per_model.items()
  }
  best = 0
  if num_points > 1:
    pick = np.argmax if mode == "max" else np.argmin
    best = int(pick(means[metric]))
  out = {}
  for k, v in per_model.items():
    out[k] = float(means[k][best])
    seeds = v.reshape(num_points, num_seeds)[best]
    if num_seeds > 1:
      out[f"{k}_std"] = float(np.std(seeds))
    if num_points > 1:
      out[f"{k}_per_model"] = v.tolist()
    elif num_seeds > 1:
      out[f"{k}_per_seed"] = seeds.tolist()
  return out


def first_non_finite(window: list[dict]) -> tuple[int, list[str]] | None:
  """(index, names) of the first host-side metrics of `window` (one dict per
  step) with a non-finite value, or None if all are finite."""
  for i, metrics in enumerate(window):
    bad = [k for k, v in metrics.items() if not np.all(np.isfinite(v))]
    if bad:
      return i, bad
  return None


def stop_early(rule: dict | None, history: list[dict]) -> bool:
  """Whether the early-stopping `rule` (`config.early_stop` as a dict of
  `metric`, `window` and `below`; None: never) holds for the history."""
  if rule is None or len(history) < rule["window"]:
    return False
  recent = [r[f"val_{rule['metric']}"] for r in history[-rule["window"] :]]
  return float(np.mean(recent)) < rule["below"]


def better(mode: str, a: float, b: float) -> bool:
  """Whether `a` is at least as good as `b` under `mode`."""
  return a >= b if mode == "max" else a <= b


def best(mode: str, values) -> float:
  return max(values) if mode == "max" else min(values)


def in_percent(name: str) -> bool:
  """Whether metric `name` is a fraction (an accuracy or an error rate),
  shown in percent."""
  return name.endswith(("accuracy", "error"))


def fmt(name: str, value: float) -> str:
  """A metric for a line: fractions in percent (`in_percent`)."""
  if in_percent(name):
    return f"{100 * value:.1f}%"
  return f"{value:.4g}"


def epoch_line(record: dict, metric: str, models: packing.Models) -> str:
  """The line printed after an evaluation: the headline metric (of the best
  point, with its name and the range over points, if packed)."""
  name = f"val_{metric}"
  num_seeds = len(models.seeds)
  spread = ""
  if f"{name}_std" in record:
    std = fmt(metric, record[f"{name}_std"]).rstrip("%")
    spread = f" ± {std} ({num_seeds} seeds)"
  if f"{name}_per_model" in record:
    points = np.reshape(record[f"{name}_per_model"], (-1, num_seeds)).mean(1)
    label = models.names()[int(np.argmin(np.abs(points - record[name])))]
    spread += (
      f", best of {len(points)} points: {label}; points "
      f"{fmt(metric, min(points))} to {fmt(metric, max(points))}"
    )
  loss = "" if metric == "loss" else f" val_loss {record['val_loss']:.4f}"
  return (
    f"epoch {record['epoch']} step {record['step']}: {name} "
    f"{fmt(metric, record[name])}{spread}{loss} "
    f"[{record['wall_time_s']:.0f} s]"
  )


def results(
  history: list[dict],
  models: packing.Models,
  headline: Headline,
  *,
  experiment: str,
  config: dict,
  stopped: bool,
  reached: int | None,
) -> dict:
  """The summary of a run, as results.json holds it: the final and best
  validation metrics, the `config` (as JSON), every evaluation's record
  (`history`, per seed or per model) and the machine; a packed run's adds
  `points` (`point_table`)."""
  name = f"val_{headline.metric}"
  extra = {}
  if len(models.points) > 1:
    extra["points"] = point_table(history, models, headline)
  return {
    "experiment": experiment,
    "steps": history[-1]["step"],
    "stopped_early": stopped,
    "seeds": models.seeds,
    "devices": jax.device_count(),
    "processes": jax.process_count(),
    "final": history[-1],
    "metric": headline.metric,
    "mode": headline.mode,
    f"best_{name}": best(headline.mode, [r[name] for r in history]),
    "target": headline.target,
    "target_reached_step": reached,
    "wall_time_s": history[-1]["wall_time_s"],
    "config": config,
    **extra,
    "history": history,
    "machine": machine(),
  }


def machine() -> dict:
  """Where a run ran: the platform, cores, devices and library versions."""
  versions = {"python": platform.python_version()}
  for package in (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "numpy",
  ):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  return {
    "platform": platform.platform(),
    "cpu_cores": os.cpu_count(),
    "backend": jax.default_backend(),
    "device_kind": jax.devices()[0].device_kind,
    "devices": jax.device_count(),
    "versions": versions,
  }


def point_table(
  history: list[dict], models: packing.Models, headline: Headline
) -> list:
  """One row per point of a packed run: its name and values, then the
  final and the best (over evaluations) mean over seeds of the headline
  metric, with the final std and per-seed values."""
  name = f"val_{headline.metric}"
  num_seeds = len(models.seeds)
  curves = np.array([r[f"{name}_per_model"] for r in history])
  curves = curves.reshape(len(history), -1, num_seeds)  # [epochs, P, S]
  rows = []
  for i, (label, point) in enumerate(
    zip(models.names(), models.points, strict=True)
  ):
    final = curves[-1, i]
    rows.append(
      {
        "point": label,
        **point,
        name: float(final.mean()),
        f"{name}_std": float(final.std()),
        f"{name}_per_seed": final.tolist(),
        f"best_{name}": best(headline.mode, curves[:, i].mean(1).tolist()),
      }
    )
  return rows


def write_table(rows: list[dict], directory: Path):
  """`directory`/summary.csv and summary.md: one row per dict, a column per
  key (in order of appearance) but per-seed lists."""
  columns = [
    k
    for k in dict.fromkeys(k for row in rows for k in row)
    if not k.endswith("_per_seed")
  ]
  directory.mkdir(parents=True, exist_ok=True)
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
  writer.writeheader()
  for row in rows:
    writer.writerow({k: _cell(v, "") for k, v in row.items()})
  write_atomically(directory / "summary.csv", buffer.getvalue())
  lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
  for row in rows:
    lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
  write_atomically(directory / "summary.md", "\n".join(lines) + "\n")


def _cell(value, spec: str = ".4g") -> str:
  """A table cell: floats as `spec`, pairs as (a,b), None blank."""
  if value is None:
    return ""
  if isinstance(value, float):
    return format(value, spec)
  if isinstance(value, tuple | list):
    return "(" + ",".join(_cell(v, spec) for v in value) + ")"
  return str(value)


def write_atomically(path: Path, text: str):
  """Writes `text` to `path` through a temporary file and `os.replace`, so
  that a kill leaves the old file or the new one, never a part."""
  tmp = path.with_name(f".{path.name}.tmp")
  with tmp.open("w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


class MetricWriter:
  """Appends metrics to `metrics.jsonl` and to TensorBoard event files (on
  process 0; elsewhere it does nothing)."""

  def __init__(self, workdir: Path, resume_step: int, labels: list[str]):
    self._main = jax.process_index() == 0
    self._labels = labels
    if not self._main:
      return
    self._path = workdir / "metrics.jsonl"
    # Drop records a previous run wrote after its last checkpoint (they will
    # be written again, identically, from the resumed state) and a last line
    # cut short by a kill.
    if self._path.exists():
      kept = []
      for line in self._path.read_text().splitlines():
        try:
          step = json.loads(line)["step"]
        except json.JSONDecodeError:
          continue
        if step <= resume_step:
          kept.append(line + "\n")
      write_atomically(self._path, "".join(kept))
    self._tb = tensorboardX.SummaryWriter(
      str(workdir / "tb"), purge_step=resume_step + 1
    )

  def write(self, step: int, metrics: dict[str, float | list[float]]):
    """Scalars, or per-model lists (TensorBoard gets one tag per model,
    `name/label` with the model's label)."""
    if not self._main:
      return
    with self._path.open("a") as f:
      f.write(json.dumps({"step": step, **metrics}) + "\n")
    for name, value in metrics.items():
      if isinstance(value, list):
        for label, v in zip(self._labels, value, strict=True):
          self._tb.add_scalar(f"{name}/{label}", v, step)
      else:
        self._tb.add_scalar(name, value, step)

  def close(self):
    if self._main:
      self._tb.close()


def plot_history(history: list[dict], metric: str, path: Path, title: str):
  """The validation `metric` against training steps, seeds in grey."""
  name = f"val_{metric}"
  scale = 100 if in_percent(metric) else 1
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  steps = [r["step"] for r in history]
  if f"{name}_per_seed" in history[0]:
    per_seed = np.array([r[f"{name}_per_seed"] for r in history])
    ax.plot(steps, scale * per_seed, color="0.7", lw=0.8)
  ax.plot(steps, [scale * r[name] for r in history], marker=".", color="C0")
  ax.set_xlabel("training step")
  ax.set_ylabel(f"validation {metric}" + (" [%]" if scale == 100 else ""))
  ax.set_title(title)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def plot_sweep(rows: list[dict], fields: tuple[str, ...], metric: str, path):
  """The final validation `metric` (mean ± std over seeds) of a packed run's
  points (`point_table` rows) against each swept field, one panel per
  field, a line per combination of the other fields' values."""
  name = f"val_{metric}"
  scale = 100 if in_percent(metric) else 1
  fig = Figure(figsize=(4.5 * len(fields), 3.6))
  axes = np.atleast_1d(fig.subplots(1, len(fields)))
  for ax, field in zip(axes, fields, strict=True):
    others = [f for f in fields if f != field]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
      groups.setdefault(tuple(str(row[f]) for f in others), []).append(row)
    values = [row[field] for row in rows]
    numeric = all(np.ndim(v) == 0 for v in values)
    for key, group in groups.items():
      x = [r[field] if numeric else str(r[field]) for r in group]
      label = ", ".join(
        f"{f.rsplit('.', 1)[-1]}={v}" for f, v in zip(others, key, strict=True)
      )
      ax.errorbar(
        x,
        [scale * r[name] for r in group],
        yerr=[scale * r[f"{name}_std"] for r in group],
        marker="o",
        capsize=3,
        label=label or None,
      )
    if numeric and min(values) > 0 and max(values) >= 10 * min(values):
      ax.set_xscale("log")
    ax.set_xlabel(field)
    ax.set_ylabel(f"final {name}" + (" [%]" if scale == 100 else ""))
    ax.grid(alpha=0.3)
    if others:
      ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
