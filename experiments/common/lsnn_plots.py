"""Figures of one LSNN example for the two tutorials: sMNIST and store-recall.

After LSNN-official `bin/tutorial_sequential_mnist_plot.py`
(`update_mnist_plot`) and `update_plot` in
`bin/tutorial_storerecall_with_LSNN.py`: the same panels, drawn with
matplotlib's object API (`matplotlib.figure.Figure`, no pyplot state, no
window) and written to a PNG.

Arguments are NumPy arrays of ONE example (the caller picks it out of the
batch). One step is 1 ms (dt = 1 in both tutorials), so the step index is
the time in ms. Legend: T steps, I inputs, R recurrent neurons (the first
`n_regular` are LIF, the rest ALIF), L character slots of `slot_ms` steps.
  inputs [T, I]  input spikes (0/1)
  z      [T, R]  recurrent spikes (0/1)
  thr    [T, R]  the adaptive threshold A_t = thr0 + beta * b_t of every
                 neuron (the third ALIF output)
  out    [T, C]  softmax of the readout at every step

Notes:
  The original caps a raster at its first 10000 spikes; here every spike
    of the chosen neurons is drawn (one `vlines` collection per colour).
  sMNIST: inhibitory neurons are read from `rec_sign`, not from the
    original's count int(0.25 * R) = 55, one more than the 54 it builds.
    "thresholds of A" picks among the adaptive neurons only (the original
    passes all R, whose LIF thresholds stay at thr0 and so never pass the
    1.5x test), and falls back to all of them when none passes.
  Store-recall: the input bands shade each channel group only in the slots
    where that channel is on (from `channels`); the original shades the
    four groups' rows over the whole sequence. The 20 input rows are chosen
    evenly within each of the four groups (5 each), where the original
    takes 20 evenly over all 100 neurons. Hidden LIF and ALIF neurons get
    different colours; the original draws both black.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

_N_SMNIST_RASTER = 300  # neurons per raster at most (the original's cap)
_N_STORE_RECALL_RASTER = 20
_N_STORE_RECALL_THR = 10  # n_alif in the store-recall tutorial
_GROUPS = ("Value 0", "Value 1", "Store", "Recall")
_GROUP_COLORS = ("red", "blue", "yellow", "green")


def _checked(
  name: str, x, shape: Sequence[int | None], dims: Sequence[str]
) -> np.ndarray:
  """`x` as an array, or a ValueError naming `name` and the expected shape.

  `shape` gives each axis' size, None for any; `dims` names the axes.
  """
  x = np.asarray(x)
  if x.ndim != len(shape) or any(
    s is not None and s != n for s, n in zip(shape, x.shape, strict=False)
  ):
    want = ", ".join(
      d if s is None else f"{d}={s}" for d, s in zip(dims, shape, strict=True)
    )
    raise ValueError(f"{name} must have shape [{want}], got {list(x.shape)}")
  return x


def _check_n_regular(n_regular: int, n_rec: int) -> None:
  if not 0 <= n_regular <= n_rec:
    raise ValueError(f"n_regular must be in [0, R={n_rec}], got {n_regular}")


def _evenly(n: int, n_max: int) -> np.ndarray:
  """Up to `n_max` indices spread evenly over range(n), ends included."""
  return np.linspace(0, n - 1, min(n, n_max)).astype(int)


def _raster(ax: Axes, spikes: np.ndarray, row: np.ndarray, **kwargs) -> None:
  """Tick marks at the spike times of `spikes` [T, N], neuron k on row[k]."""
  t, k = np.nonzero(spikes)
  ax.vlines(t, row[k] - 0.4, row[k] + 0.4, linewidth=0.6, **kwargs)


def _raster_axis(ax: Axes, n: int, name: str) -> None:
  """Rows 0..n-1 labelled by neuron count, 1 and n, as the original."""
  ticks = sorted({0, n - 1}) if n else []
  ax.set_ylim(-0.5, max(n, 1) - 0.5)
  ax.set_yticks(ticks, [str(k + 1) for k in ticks])
  ax.set_ylabel(name)


def _strip(ax: Axes) -> None:
  ax.spines[["top", "right"]].set_visible(False)


def plot_smnist(
  path: str | Path,
  *,
  inputs,
  z,
  thr,
  out,
  n_regular: int,
  rec_sign,
  label: int,
  prediction: int,
  dpi: int = 100,
) -> None:
  """Write the sMNIST tutorial's 5-panel figure of one example to `path`.

  Panels, top to bottom: the input raster; "R", the LIF neurons
  z[:, :n_regular] (excitatory black, inhibitory red by `rec_sign`); "A",
  the ALIF neurons z[:, n_regular:]; "thresholds of A", the A_t traces of
  the ALIF neurons whose max over time exceeds 1.5x the mean of those maxima
  (all of them if none does); "output Y", the softmax `out` over time with
  a colour bar. The title gives `label` and `prediction`.

  Args:
    path: the PNG to write.
    inputs: [T, I] input spikes.
    z: [T, R] recurrent spikes.
    thr: [T, R] A_t of every neuron.
    out: [T, 10] softmax probabilities.
    n_regular: the number of LIF neurons, which come first.
    rec_sign: [R] +1 (excitatory) or -1 (inhibitory) per neuron.
    label, prediction: the digit and the network's answer.
    dpi: the PNG's dots per inch.

  Raises:
    ValueError: naming the argument whose shape or values do not fit.
  """
  inputs = _checked("inputs", inputs, (None, None), ("T", "I"))
  T = inputs.shape[0]
  z = _checked("z", z, (T, None), ("T", "R"))
  R = z.shape[1]
  thr = _checked("thr", thr, (T, R), ("T", "R"))
  out = _checked("out", out, (T, 10), ("T", "C"))
  rec_sign = _checked("rec_sign", rec_sign, (R,), ("R",))
  if not np.all(np.abs(rec_sign) == 1):
    raise ValueError("rec_sign must hold only +1 and -1")
  _check_n_regular(n_regular, R)

  fig = Figure(figsize=(6, 7.5), layout="constrained")
  axes = fig.subplots(5, 1, sharex=True)
  for ax in axes:
    _strip(ax)
  axes[0].set_title(f"label {label}, prediction {prediction}")

  ax = axes[0]
  pick = _evenly(inputs.shape[1], _N_SMNIST_RASTER)
  _raster(ax, inputs[:, pick], np.arange(pick.size), colors="black")
  _raster_axis(ax, pick.size, "Input")

  ax = axes[1]
  pick = _evenly(n_regular, _N_SMNIST_RASTER)
  row = np.arange(pick.size)
  inhibitory = rec_sign[pick] < 0
  for mask, color in ((~inhibitory, "black"), (inhibitory, "red")):
    _raster(ax, z[:, pick[mask]], row[mask], colors=color)
  _raster_axis(ax, pick.size, "R")

  ax = axes[2]
  pick = n_regular + _evenly(R - n_regular, _N_SMNIST_RASTER)
  _raster(ax, z[:, pick], np.arange(pick.size), colors="black")
  _raster_axis(ax, pick.size, "A")

  ax = axes[3]
  thr_a = thr[:, n_regular:]
  if thr_a.shape[1]:
    peak = thr_a.max(axis=0)
    high = peak > 1.5 * peak.mean()
    ax.plot(thr_a[:, high if high.any() else slice(None)], color="r", lw=0.8)
  ax.set_ylabel("thresholds of A")

  ax = axes[4]
  image = ax.imshow(
    out.T,
    origin="lower",
    aspect="auto",
    cmap="viridis",
    interpolation="none",
    vmin=0.0,
    vmax=1.0,
    extent=(0, T, -0.5, out.shape[1] - 0.5),
  )
  # An inset colour bar keeps this panel's time axis aligned with the rest.
  bar = fig.colorbar(
    image, cax=ax.inset_axes((0.01, 0.1, 0.015, 0.8)), ticks=[0, 0.5, 1]
  )
  bar.ax.tick_params(labelsize=7, colors="white")
  bar.outline.set_edgecolor("white")
  ax.set_yticks([0, 2, 4, 6, 8])
  ax.set_ylabel("output Y")
  ax.set_xlabel("time in ms")
  ax.set_xlim(0, T)
  fig.savefig(path, dpi=dpi)


def plot_store_recall(
  path: str | Path,
  *,
  inputs,
  z,
  thr,
  out,
  channels,
  target,
  is_recall,
  slot_ms: int,
  n_regular: int,
  dpi: int = 100,
) -> None:
  """Write the store-recall tutorial's 4-panel figure of one example.

  Panels, top to bottom:
    "Input": up to 20 input neurons, evenly chosen within the four groups
      of `np.array_split(range(I), 4)` (value 0, value 1, store, recall),
      each group's rows shaded in the slots where its channel is on (red,
      blue, yellow, green).
    "Hidden": up to 20 recurrent neurons, LIF black and ALIF red.
    "Output": in each recall slot l, the target bit (green) and the slot's
      mean output (p1 - p0 + 1) / 2 (blue), p = mean of out over the slot
      (the original's softmax downsampled to L slots); the softmax p1 of
      every ms (purple).
    "Threshold": A_t of the (up to 10) ALIF neurons of highest variance
      over time.

  Args:
    path: the PNG to write.
    inputs: [T, I] input spikes, T = L * slot_ms, I >= 4.
    z: [T, R] recurrent spikes.
    thr: [T, R] A_t of every neuron.
    out: [T, 2] softmax probabilities.
    channels: [L, 4] the one-hot (or inverted-value) channel of each slot.
    target: [L] the bit to recall; read at recall slots only.
    is_recall: [L] whether each slot is a recall.
    slot_ms: the steps per character slot (tau_char = 200 in the tutorial).
    n_regular: the number of LIF neurons, which come first.
    dpi: the PNG's dots per inch.

  Raises:
    ValueError: naming the argument whose shape or values do not fit.
  """
  channels = _checked("channels", channels, (None, 4), ("L", "4"))
  L = channels.shape[0]
  if slot_ms < 1:
    raise ValueError(f"slot_ms must be a positive step count, got {slot_ms}")
  target = _checked("target", target, (L,), ("L",))
  is_recall = _checked("is_recall", is_recall, (L,), ("L",)).astype(bool)
  T = L * slot_ms
  inputs = _checked("inputs", inputs, (T, None), ("T=L*slot_ms", "I"))
  if inputs.shape[1] < 4:
    raise ValueError(f"inputs needs I >= 4 (four groups), got {inputs.shape}")
  z = _checked("z", z, (T, None), ("T", "R"))
  R = z.shape[1]
  thr = _checked("thr", thr, (T, R), ("T", "R"))
  out = _checked("out", out, (T, 2), ("T", "C"))
  _check_n_regular(n_regular, R)

  fig = Figure(figsize=(5.9, 6), layout="constrained")
  axes = fig.subplots(4, 1, sharex=True)
  for ax in axes:
    _strip(ax)
    ax.grid(color="black", alpha=0.15, linewidth=0.4)
  slot_start = np.arange(L) * slot_ms

  ax = axes[0]
  groups = np.array_split(np.arange(inputs.shape[1]), 4)
  per_group = _N_STORE_RECALL_RASTER // 4
  picks = [g[_evenly(g.size, per_group)] for g in groups]
  first_row = np.cumsum([0] + [p.size for p in picks])
  pick = np.concatenate(picks)
  _raster(ax, inputs[:, pick], np.arange(pick.size), colors="black")
  for c, color in enumerate(_GROUP_COLORS):
    on = slot_start[channels[:, c] > 0]
    ax.broken_barh(
      [(s, slot_ms) for s in on],
      (first_row[c] - 0.5, first_row[c + 1] - first_row[c]),
      facecolors=color,
      alpha=0.2,
    )
  ax.set_ylim(-0.5, pick.size - 0.5)
  ax.set_yticks((first_row[:-1] + first_row[1:] - 1) / 2, _GROUPS, fontsize=7)
  ax.set_ylabel("Input")

  ax = axes[1]
  pick = _evenly(R, _N_STORE_RECALL_RASTER)
  row = np.arange(pick.size)
  alif = pick >= n_regular
  for mask, color, name in ((~alif, "black", "LIF"), (alif, "red", "ALIF")):
    if mask.any():
      _raster(ax, z[:, pick[mask]], row[mask], colors=color, label=name)
  ax.legend(loc="upper right", fontsize=7)
  _raster_axis(ax, pick.size, "Hidden")

  ax = axes[2]
  p = out.reshape(L, slot_ms, 2).mean(axis=1)
  segments = lambda y: [
    [(s, v), (s + slot_ms, v)]
    for s, v in zip(slot_start[is_recall], y[is_recall], strict=True)
  ]
  handles = [
    ax.add_collection(
      LineCollection(segments(y), colors=color, linewidths=2, label=name)
    )
    for y, color, name in (
      (target.astype(float), "green", "Target"),
      ((p[:, 1] - p[:, 0] + 1) / 2, "blue", "Output"),
    )
  ]
  handles += ax.plot(out[:, 1], color="purple", alpha=0.7, label="softmax")
  ax.set_ylim(-0.3, 1.1)
  ax.set_yticks([0, 0.5, 1])
  ax.legend(
    handles=handles,
    loc="lower center",
    fontsize=7,
    bbox_to_anchor=(0.5, -0.05),
    ncol=3,
  )
  ax.set_ylabel("Output")

  ax = axes[3]
  thr_a = thr[:, n_regular:]
  top = np.argsort(thr_a.var(axis=0))[::-1][:_N_STORE_RECALL_THR]
  ax.plot(thr_a[:, top], color="r", alpha=0.4, linewidth=1)
  ax.set_ylabel("Threshold")
  ax.set_xlabel("Time in ms")
  ax.set_xlim(0, T)
  fig.savefig(path, dpi=dpi)
