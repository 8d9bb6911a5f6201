"""MNIST as NumPy arrays: IDX files from a directory, or tensorflow-datasets.

  images, labels = mnist_data.load("train", data_dir)

`images` are uint8 [N, 28, 28] (0 white to 255 black, as stored) and `labels`
int32 [N] in 0..9. Both are read-only and loaded once per (split, directory):
the driver asks for a batch every step.

Sources:
  data_dir given: the IDX files of LeCun's MNIST page, gzipped or not,
    `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
    `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`. A relative
    directory is relative to the current one. The offline copy in
    `../shared/data/mnist` holds the full test set and only the first 22,699
    training images (its README); report results made with it as "MNIST,
    first 22,699 training images".
  data_dir empty: tensorflow-datasets `mnist` (optional: `pip install
    tensorflow-datasets tensorflow`; it downloads to ~/tensorflow_datasets).

IDX layout: a 4-byte magic (two zero bytes, the type code 0x08 for unsigned
bytes, the number of dimensions), one big-endian uint32 per dimension, then
the values in row-major order.

`synthetic(split)` is a deterministic digit-like stand-in for tests and smoke
runs that have no MNIST at hand.
"""

import functools
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
_PREFIX = {"train": "train", "test": "t10k"}
_HINT = "pass --config.data.dir=DIR holding the MNIST IDX files"
_UBYTE = 0x08


def load(split: str, data_dir: str | os.PathLike | None = None):
  """(images uint8 [N, 28, 28], labels int32 [N]) of `split`, cached."""
  if split not in SPLITS:
    raise ValueError(f"MNIST split must be one of {SPLITS}, got {split!r}.")
  if not data_dir:
    return _load_tfds(split)
  return _load_idx(split, str(Path(data_dir).absolute()))


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
  """The uint8 array of shape [N, ...] (`ndim` dims) in one IDX file.

  A damaged file (gzip, header or size) is a one-line ValueError naming it.
  """
  path = Path(path)
  opener = gzip.open if path.suffix == ".gz" else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (gzip.BadGzipFile, EOFError, zlib.error) as e:
    kind = f"{type(e).__module__}.{type(e).__name__}".removeprefix("builtins.")
    raise ValueError(
      f"MNIST file {path} is damaged ({kind}: {' '.join(str(e).split())}); "
      f"replace it or {_HINT}."
    ) from None
  magic = int.from_bytes(data[:4], "big")
  expected = (_UBYTE << 8) | ndim
  if magic != expected:
    raise ValueError(
      f"MNIST file {path} has magic {magic:#010x}, not the {expected:#010x} "
      f"of an IDX file of {ndim}-d unsigned bytes; replace it or {_HINT}."
    )
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(
      f"MNIST file {path} ends inside its header ({len(data)} of {header} "
      f"bytes); replace it or {_HINT}."
    )
  shape = tuple(int(d) for d in np.frombuffer(data[4:header], ">u4"))
  size = math.prod(shape)  # Python ints: a damaged header cannot overflow.
  if len(data) - header != size:
    raise ValueError(
      f"MNIST file {path} holds {len(data) - header} values after its "
      f"header, but its dimensions {shape} need {size}; replace it or "
      f"{_HINT}."
    )
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


@functools.cache
def synthetic(split: str, size: int = 512):
  """Digit-like data for tests, the same on every call: (images, labels).

  Ten fixed class patterns (random 7x7 binary grids, each cell a 4x4 block of
  ink 200), plus independent uniform noise in [0, 55] on every pixel; labels
  uniform over 0..9. A nearest-pattern rule classifies them perfectly.
  """
  if split not in SPLITS:
    raise ValueError(f"MNIST split must be one of {SPLITS}, got {split!r}.")
  patterns = np.kron(
    np.random.default_rng(0).random((10, 7, 7)) < 0.3, np.ones((4, 4))
  )
  rng = np.random.default_rng(SPLITS.index(split) + 1)
  labels = rng.integers(0, 10, size).astype(np.int32)
  images = 200 * patterns[labels] + rng.integers(0, 56, (size, 28, 28))
  return _frozen(images.astype(np.uint8), labels)


def _frozen(images: np.ndarray, labels: np.ndarray):
  images, labels = np.array(images, np.uint8), np.array(labels, np.int32)
  images.flags.writeable = labels.flags.writeable = False
  return images, labels


def _find(directory: Path, name: str) -> Path:
  for candidate in (directory / name, directory / f"{name}.gz"):
    if candidate.is_file():
      return candidate
  raise FileNotFoundError(
    f"MNIST directory {directory} has no {name} or {name}.gz; {_HINT}."
  )


@functools.cache
def _load_idx(split: str, data_dir: str):
  directory = Path(data_dir)
  if not directory.is_dir():
    raise FileNotFoundError(
      f"MNIST directory {directory} does not exist; {_HINT} (the offline "
      "copy is ../shared/data/mnist), or pass --config.data.dir='' to "
      "download it with tensorflow-datasets."
    )
  prefix = _PREFIX[split]
  images_path = _find(directory, f"{prefix}-images-idx3-ubyte")
  labels_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
  images = read_idx(images_path, 3)
  labels = read_idx(labels_path, 1)
  if images.shape[1:] != (28, 28):
    raise ValueError(
      f"MNIST file {images_path} holds images of {images.shape[1:]} pixels, "
      f"not 28 x 28; {_HINT}."
    )
  if len(images) != len(labels):
    raise ValueError(
      f"MNIST files {images_path} and {labels_path} hold {len(images)} "
      f"images but {len(labels)} labels; {_HINT}."
    )
  if labels.size and labels.max() > 9:
    raise ValueError(
      f"MNIST file {labels_path} holds label {labels.max()}, not a digit; "
      f"{_HINT}."
    )
  return _frozen(images, labels)


@functools.cache
def _load_tfds(split: str):
  hint = (
    "install tensorflow-datasets and tensorflow, or pass "
    "--config.data.dir=../shared/data/mnist (MNIST IDX files)"
  )
  try:
    import tensorflow_datasets as tfds  # An optional dependency.
  except ImportError:
    raise ValueError(
      f"config.data.dir is empty, so MNIST comes from tensorflow-datasets, "
      f"which is not installed; {hint}."
    ) from None
  try:
    images, labels = tfds.as_numpy(
      tfds.load("mnist", split=split, batch_size=-1, as_supervised=True)
    )
  except Exception as e:  # Network, disk and TF errors all end here.
    reason = " ".join(str(e).split())[:200]
    raise ValueError(
      f"tensorflow-datasets could not load mnist ({type(e).__name__}: "
      f"{reason}); {hint}."
    ) from e
  return _frozen(np.reshape(images, (-1, 28, 28)), labels)
