"""The Heidelberg spike datasets (SHD, SSC): their HDF5 files, read and binned.

Cramer, Stradmann, Schemmel & Zenke, "The Heidelberg spiking data sets for
the systematic evaluation of spiking neural networks", IEEE TNNLS 2020
(arXiv:1910.07407). Each spoken word is the spike trains of 700 input
channels (a cochlea model), about 1 s long:

  SHD: 20 classes (digits 0-9 in English and German), files
    shd_train.h5 (8,156 samples) and shd_test.h5 (2,264);
  SSC: 35 classes (speech commands), ssc_train.h5, ssc_valid.h5 and
    ssc_test.h5.

Layout of a file (the dataset's own): `spikes/times` and `spikes/units`,
one variable-length array per sample (times in seconds, float; units the
channels 0-699, integer), and `labels` [N] (integer). The files are read
from a directory (`config.data.dir`); with an empty directory and tonic
installed, `tonic.datasets.SHD`/`SSC` download them into
`config.data.cache` first. The downloads come compressed (`.h5.gz`,
`.h5.zip`): unpack them (h5py reads plain HDF5 only; tonic unpacks its own).

A sample becomes counts [T, C]: spike k of channel u at time t lands in bin
floor(t * 1000 / bin_ms) of channel u // channel_pool, C = 700 /
channel_pool; spikes after the last of the T bins are dropped.
"""

import functools
from pathlib import Path
from typing import NamedTuple

import numpy as np

N_CHANNELS = 700
CLASSES = {"shd": 20, "ssc": 35}
SPLITS = {"shd": ("train", "test"), "ssc": ("train", "valid", "test")}
_LAYOUT = ("spikes/times", "spikes/units", "labels")


class Spikes(NamedTuple):
  """One split, flat: sample i's spikes are times[offsets[i]:offsets[i+1]]
  (seconds, float32) and units[...] (int32), its class labels[i]."""

  times: np.ndarray
  units: np.ndarray
  offsets: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


def file_name(dataset: str, split: str) -> str:
  """`shd_train.h5` and the like.

  Raises:
    ValueError: an unknown dataset or split.
  """
  if dataset not in SPLITS:
    raise ValueError(
      f"config.data.dataset must be one of {sorted(SPLITS)}, got {dataset!r}."
    )
  if split not in SPLITS[dataset]:
    raise ValueError(
      f"{dataset.upper()} has the splits {SPLITS[dataset]}, not {split!r}."
    )
  return f"{dataset}_{split}.h5"


def read(path: str | Path) -> Spikes:
  """The spikes of one HDF5 file in the datasets' layout.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: it is not HDF5, lacks a dataset of the layout, or its
      arrays disagree (sample counts, a unit outside 0-699).
  """
  import h5py  # The `shd` extra; only this reader needs it.

  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist.")
  try:
    file = h5py.File(path, "r")
  except OSError:
    raise ValueError(
      f"{path} is not an HDF5 file (a download still compressed? unpack it)."
    ) from None
  with file:
    missing = [name for name in _LAYOUT if name not in file]
    if missing:
      raise ValueError(
        f"{path} lacks {', '.join(missing)}: not a file of the Heidelberg "
        f"spike datasets (which hold {', '.join(_LAYOUT)})."
      )
    times = list(file["spikes/times"])
    units = list(file["spikes/units"])
    labels = np.asarray(file["labels"], np.int32)
  if not len(times) == len(units) == len(labels):
    raise ValueError(
      f"{path}: spikes/times, spikes/units and labels hold {len(times)}, "
      f"{len(units)} and {len(labels)} samples; they must agree."
    )
  lengths = [len(t) for t in times]
  if lengths != [len(u) for u in units]:
    raise ValueError(
      f"{path}: a sample has different numbers of spike times and units."
    )
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  flat = lambda parts, dtype: (
    np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
  )
  spikes = Spikes(
    flat(times, np.float32), flat(units, np.int32), offsets, labels
  )
  if spikes.units.size and not (
    0 <= spikes.units.min() and spikes.units.max() < N_CHANNELS
  ):
    raise ValueError(
      f"{path}: spike units must be channels 0-{N_CHANNELS - 1}, got "
      f"{spikes.units.min()}-{spikes.units.max()}."
    )
  return spikes


def _download(dataset: str, split: str, cache: str) -> Path:
  """The file of `split`, downloaded by tonic into `cache`."""
  try:
    import tonic
  except ImportError:
    raise ValueError(
      "config.data.dir is empty and tonic is not installed: pass "
      f"--config.data.dir=DIR (a directory holding {file_name(dataset, split)}"
      ") or pip install tonic to download it."
    ) from None
  if dataset == "shd":
    tonic.datasets.SHD(save_to=cache, train=split == "train")
  else:
    tonic.datasets.SSC(save_to=cache, split=split)
  name = file_name(dataset, split)
  found = sorted(Path(cache).rglob(name))
  if not found:
    raise ValueError(f"tonic downloaded no {name} into {cache}.")
  return found[0]


@functools.cache
def load(dataset: str, split: str, directory: str, cache: str = "") -> Spikes:
  """`split` of `dataset` from `directory` (or, if that is empty, from
  tonic's download into `cache`), read once per process.

  Raises:
    FileNotFoundError: the directory, or the split's file in it, is missing.
    ValueError: see `read`; an unknown dataset or split.
  """
  name = file_name(dataset, split)
  if not directory:
    return read(_download(dataset, split, cache or "data"))
  root = Path(directory)
  if not root.is_dir():
    raise FileNotFoundError(
      f"config.data.dir {root} does not exist; pass the directory holding "
      f"{name} (or --config.data.dir='' to download it with tonic)."
    )
  path = root / name
  if not path.is_file():
    packed = [p.name for p in root.glob(f"{name}.*")]
    raise FileNotFoundError(
      f"config.data.dir {root} has no {name}"
      + (f" (unpack {packed[0]})" if packed else "")
      + "."
    )
  return read(path)


def binned(
  spikes: Spikes,
  idx: np.ndarray,
  n_bins: int,
  bin_ms: float,
  channel_pool: int = 1,
) -> np.ndarray:
  """Samples `idx` of `spikes` as counts [len(idx), n_bins, C], float32,
  C = N_CHANNELS // channel_pool (see the module docstring)."""
  n_channels = N_CHANNELS // channel_pool
  starts, ends = spikes.offsets[idx], spikes.offsets[np.asarray(idx) + 1]
  sel = np.concatenate(
    [np.arange(s, e) for s, e in zip(starts, ends, strict=True)]
    or [np.zeros(0, np.int64)]
  )
  row = np.repeat(np.arange(len(idx)), ends - starts)
  t = np.floor(spikes.times[sel] * (1000.0 / bin_ms)).astype(np.int64)
  keep = (t >= 0) & (t < n_bins)
  channel = np.minimum(spikes.units[sel] // channel_pool, n_channels - 1)
  flat = (row * n_bins + t) * n_channels + channel
  counts = np.bincount(flat[keep], minlength=len(idx) * n_bins * n_channels)
  return counts.reshape(len(idx), n_bins, n_channels).astype(np.float32)


def write(path: str | Path, times, units, labels) -> None:
  """Writes samples in the datasets' layout (for tests and small data of
  one's own): `times`, `units` lists of per-sample arrays (seconds; channels),
  `labels` [N]."""
  import h5py

  with h5py.File(path, "w") as f:
    spikes = f.create_group("spikes")
    t = spikes.create_dataset(
      "times", (len(times),), dtype=h5py.vlen_dtype(np.float32)
    )
    u = spikes.create_dataset(
      "units", (len(units),), dtype=h5py.vlen_dtype(np.uint16)
    )
    for i, (ti, ui) in enumerate(zip(times, units, strict=True)):
      t[i] = np.asarray(ti, np.float32)
      u[i] = np.asarray(ui, np.uint16)
    f.create_dataset("labels", data=np.asarray(labels, np.uint16))
