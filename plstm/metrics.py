"""A run's metrics: the mean over seeds, the written record, the epoch line.

A run has one headline metric, named with its direction in the config
(`config.metric`, e.g. `accuracy`, and `config.mode`: `max` if higher is
better, `min` if lower is): the epoch line, the target, early stopping,
the final plot and results.json speak of it.
"""

import json
import os
from pathlib import Path

import jax
import numpy as np
import tensorboardX
from matplotlib.figure import Figure

MODES = ("max", "min")


def mean_over_seeds(metrics: list[dict]) -> dict[str, float | list[float]]:
  """Averages [S]-valued metrics over the list; with S > 1 adds, for each
  metric m, `m_std` and `m_per_seed` across seeds (`m` is their mean)."""
  metrics = jax.device_get(metrics)
  out = {}
  for k in metrics[0]:
    # In float64: the same mean whether a step's metrics come from the
    # device (float32) or from a checkpoint's JSON (float64).
    per_seed = np.mean(np.asarray([m[k] for m in metrics], np.float64), axis=0)
    out[k] = float(np.mean(per_seed))
    if per_seed.size > 1:
      out[f"{k}_std"] = float(np.std(per_seed))
      out[f"{k}_per_seed"] = per_seed.tolist()
  return out


def first_non_finite(window: list[dict]) -> tuple[int, list[str]] | None:
  """(index, names) of the first host-side metrics of `window` (one dict per
  step) with a non-finite value, or None if all are finite."""
  for i, metrics in enumerate(window):
    bad = [k for k, v in metrics.items() if not np.all(np.isfinite(v))]
    if bad:
      return i, bad
  return None


def stop_early(config, history: list[dict]) -> bool:
  """Whether `config.early_stop`'s criterion holds for the history."""
  rule = config.get("early_stop")
  if rule is None or len(history) < rule.window:
    return False
  recent = [r[f"val_{rule.metric}"] for r in history[-rule.window :]]
  return float(np.mean(recent)) < rule.below


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


def epoch_line(record: dict, metric: str, num_seeds: int) -> str:
  """The line printed after an evaluation."""
  name = f"val_{metric}"
  spread = ""
  if f"{name}_std" in record:
    std = fmt(metric, record[f"{name}_std"]).rstrip("%")
    spread = f" ± {std} ({num_seeds} seeds)"
  loss = "" if metric == "loss" else f" val_loss {record['val_loss']:.4f}"
  return (
    f"epoch {record['epoch']} step {record['step']}: {name} "
    f"{fmt(metric, record[name])}{spread}{loss} "
    f"[{record['wall_time_s']:.0f} s]"
  )


def results(
  config, history: list[dict], seeds: list[int], stopped: bool, reached
) -> dict:
  """The summary of a run, as results.json holds it."""
  name = f"val_{config.metric}"
  return {
    "experiment": config.experiment,
    "steps": history[-1]["step"],
    "stopped_early": stopped,
    "seeds": seeds,
    "devices": jax.device_count(),
    "processes": jax.process_count(),
    "final": history[-1],
    "metric": config.metric,
    "mode": config.mode,
    f"best_{name}": best(config.mode, [r[name] for r in history]),
    "target": config.target,
    "target_reached_step": reached,
    "wall_time_s": history[-1]["wall_time_s"],
    "config": config.to_dict(),
  }


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

  def __init__(self, workdir: Path, resume_step: int):
    self._main = jax.process_index() == 0
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
    """Scalars, or per-seed lists (TensorBoard gets one tag per seed)."""
    if not self._main:
      return
    with self._path.open("a") as f:
      f.write(json.dumps({"step": step, **metrics}) + "\n")
    for name, value in metrics.items():
      if isinstance(value, list):
        for i, v in enumerate(value):
          self._tb.add_scalar(f"{name}/{i}", v, step)
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
