"""The MNIST loader (experiments/common/mnist_data.py) on IDX files."""

import gzip
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from experiments.common import mnist_data

SHARED = Path(__file__).parent.parent.parent / "shared/data/mnist"


def _idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 0x08, array.ndim])
  dims = np.array(array.shape, ">u4").tobytes()
  return header + dims + array.astype(np.uint8).tobytes()


def _write(directory: Path, prefix: str, images, labels, gz: bool):
  for kind, array, ndim in (("images", images, 3), ("labels", labels, 1)):
    name = f"{prefix}-{kind}-idx{ndim}-ubyte"
    data = _idx_bytes(array)
    if gz:
      (directory / f"{name}.gz").write_bytes(gzip.compress(data))
    else:
      (directory / name).write_bytes(data)


def _digits(n: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
  return images, rng.integers(0, 10, n).astype(np.uint8)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_reads_idx_files_raw_and_gzipped(tmp_path, gz):
  train, test = _digits(5), _digits(3, seed=1)
  _write(tmp_path, "train", *train, gz=gz)
  _write(tmp_path, "t10k", *test, gz=gz)
  for split, (want_images, want_labels) in (("train", train), ("test", test)):
    images, labels = mnist_data.load(split, tmp_path)
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)


def test_header_is_parsed_not_assumed(tmp_path):
  """A 2 x 3 x 4 array comes back in that shape and row-major order."""
  array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  path = tmp_path / "a-idx3-ubyte"
  path.write_bytes(_idx_bytes(array))
  np.testing.assert_array_equal(mnist_data.read_idx(path, 3), array)
  assert path.read_bytes()[:8] == b"\x00\x00\x08\x03\x00\x00\x00\x02"


def test_loads_once_and_read_only(tmp_path):
  _write(tmp_path, "train", *_digits(4), gz=True)
  first = mnist_data.load("train", tmp_path)
  assert mnist_data.load("train", str(tmp_path)) is first
  with pytest.raises(ValueError, match="read-only"):
    first[0][0, 0, 0] = 1


def _one_line(error) -> str:
  message = str(error.value)
  assert "\n" not in message
  return message


def test_bad_magic_is_reported(tmp_path):
  images, labels = _digits(2)
  _write(tmp_path, "train", images, labels, gz=False)
  path = tmp_path / "train-labels-idx1-ubyte"
  path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])
  with pytest.raises(ValueError) as error:
    mnist_data.load("train", tmp_path)
  message = _one_line(error)
  assert str(path) in message and "0x00000803" in message
  assert "--config.data.dir" in message


def _flip(data: bytes, i: int) -> bytes:
  return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


@pytest.mark.parametrize(
  "name,damage,match",
  [
    (
      "train-images-idx3-ubyte.gz",
      lambda gz: _flip(gz, len(gz) // 2),
      r"is damaged \(gzip.BadGzipFile: CRC check failed",
    ),
    (
      # The first deflate byte: block type 3, which does not exist.
      "train-images-idx3-ubyte.gz",
      lambda gz: gz[:10] + b"\xff" + gz[11:],
      r"is damaged \(zlib.error: Error -3 .* invalid block type\)",
    ),
    (
      "train-images-idx3-ubyte.gz",
      lambda gz: gz[: len(gz) // 2],
      r"is damaged \(EOFError: Compressed file ended",
    ),
    (
      "train-labels-idx1-ubyte.gz",
      lambda gz: b"not gzip",
      r"is damaged \(gzip.BadGzipFile: Not a gzipped file",
    ),
    (
      "train-images-idx3-ubyte.gz",
      lambda gz: gzip.compress(gzip.decompress(gz)[:-10]),
      r"holds 2342 values after its header, but .* need 2352",
    ),
    (
      "train-images-idx3-ubyte.gz",
      lambda gz: gzip.compress(gzip.decompress(gz)[:9]),
      r"ends inside its header \(9 of 16 bytes\)",
    ),
    (
      "train-labels-idx1-ubyte.gz",
      lambda gz: gzip.compress(b""),
      r"has magic 0x00000000",
    ),
    (
      # A damaged dimension: 2^32 - 1 cubed, more than an int64 holds.
      "train-images-idx3-ubyte.gz",
      lambda gz: gzip.compress(b"\0\0\x08\x03" + b"\xff" * 12),
      r"dimensions \(4294967295, 4294967295, 4294967295\) need 7922816",
    ),
  ],
  ids=[
    "flipped",
    "zlib",
    "cut-gzip",
    "not-gzip",
    "short",
    "cut-header",
    "empty",
    "huge-dims",
  ],
)
def test_damaged_file_is_named(tmp_path, name, damage, match):
  _write(tmp_path, "train", *_digits(3), gz=True)
  path = tmp_path / name
  path.write_bytes(damage(path.read_bytes()))
  with pytest.raises(ValueError, match=match) as error:
    mnist_data.load("train", tmp_path)
  message = _one_line(error)
  assert message.startswith(f"MNIST file {path} ")
  assert message.endswith(
    "replace it or pass --config.data.dir=DIR holding the MNIST IDX files."
  )


def test_mismatched_counts_are_reported(tmp_path):
  images, labels = _digits(3)
  _write(tmp_path, "train", images, labels[:2], gz=False)
  with pytest.raises(ValueError, match="3 images but 2 labels"):
    mnist_data.load("train", tmp_path)


def test_missing_directory_and_file_are_reported(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(FileNotFoundError) as error:
    mnist_data.load("test", missing)
  message = _one_line(error)
  assert str(missing) in message and "--config.data.dir" in message
  _write(tmp_path, "train", *_digits(2), gz=False)
  with pytest.raises(FileNotFoundError) as error:
    mnist_data.load("test", tmp_path)
  message = _one_line(error)
  assert "t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz" in message


def test_missing_tensorflow_datasets_is_reported(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
  mnist_data._load_tfds.cache_clear()
  with pytest.raises(ValueError) as error:
    mnist_data.load("train", "")
  message = _one_line(error)
  assert "install tensorflow-datasets" in message
  assert "--config.data.dir=../shared/data/mnist" in message


def test_tensorflow_datasets_arrays_are_reshaped(monkeypatch):
  """tfds gives images [N, 28, 28, 1] and int64 labels."""
  images, labels = _digits(3)

  def tfds_load(name, split, batch_size, as_supervised):
    assert (name, split, batch_size, as_supervised) == (
      "mnist",
      "test",
      -1,
      True,
    )
    return images[..., None], labels.astype(np.int64)

  fake = types.SimpleNamespace(load=tfds_load, as_numpy=lambda tree: tree)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
  mnist_data._load_tfds.cache_clear()
  got_images, got_labels = mnist_data.load("test")
  mnist_data._load_tfds.cache_clear()
  np.testing.assert_array_equal(got_images, images)
  assert got_labels.dtype == np.int32
  np.testing.assert_array_equal(got_labels, labels)


def test_failed_download_is_reported(monkeypatch):
  def tfds_load(*args, **kwargs):
    raise ConnectionError("Name or service\nnot known")

  fake = types.SimpleNamespace(load=tfds_load, as_numpy=lambda tree: tree)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
  mnist_data._load_tfds.cache_clear()
  with pytest.raises(ValueError) as error:
    mnist_data.load("train", None)
  mnist_data._load_tfds.cache_clear()
  message = _one_line(error)
  assert "ConnectionError: Name or service not known" in message
  assert "--config.data.dir=../shared/data/mnist" in message


def test_unknown_split():
  with pytest.raises(ValueError, match="split"):
    mnist_data.load("validation", "/tmp")


def test_synthetic_digits_are_fixed_and_classifiable():
  images, labels = mnist_data.synthetic("train")
  again, _ = mnist_data.synthetic("train")
  test_images, test_labels = mnist_data.synthetic("test", 64)
  np.testing.assert_array_equal(images, again)
  assert images.shape == (512, 28, 28) and images.dtype == np.uint8
  assert test_images.shape == (64, 28, 28)
  assert not np.array_equal(images[:64], test_images)
  assert set(labels) == set(range(10))
  # Nearest class mean (from the training split) labels the test split.
  means = np.stack([images[labels == k].mean(0) for k in range(10)])
  dist = ((test_images[:, None] - means[None]) ** 2).sum((2, 3))
  np.testing.assert_array_equal(dist.argmin(1), test_labels)


@pytest.mark.skipif(not SHARED.is_dir(), reason="no offline MNIST copy")
def test_offline_copy_is_the_documented_subset():
  images, labels = mnist_data.load("train", SHARED)
  assert images.shape == (22699, 28, 28) and labels.shape == (22699,)
  # The first training labels of MNIST.
  np.testing.assert_array_equal(labels[:8], [5, 0, 4, 1, 9, 2, 1, 3])
  test_images, test_labels = mnist_data.load("test", SHARED)
  assert test_images.shape == (10000, 28, 28)
  np.testing.assert_array_equal(test_labels[:8], [7, 2, 1, 0, 4, 1, 4, 9])
  assert np.bincount(test_labels).tolist()[:3] == [980, 1135, 1032]
