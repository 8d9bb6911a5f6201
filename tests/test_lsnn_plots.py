"""experiments/common/lsnn_plots.py writes the LSNN tutorials' figures as
PNGs."""

import numpy as np
import pytest
from matplotlib import image

from experiments.common import lsnn_plots

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _smnist_args(rng, T=56, n_in=8, n_regular=6, n_adaptive=4):
  R = n_regular + n_adaptive
  thr = np.full((T, R), 0.01, np.float32)
  thr[:, n_regular:] += np.cumsum(rng.random((T, n_adaptive)), 0) * 1e-3
  return dict(
    inputs=(rng.random((T, n_in)) < 0.1).astype(np.float32),
    z=(rng.random((T, R)) < 0.1).astype(np.float32),
    thr=thr,
    out=rng.dirichlet(np.ones(10), T).astype(np.float32),
    n_regular=n_regular,
    rec_sign=np.r_[-np.ones(2), np.ones(R - 2)].astype(np.float32),
    label=3,
    prediction=5,
  )


def _store_recall_args(rng, L=4, slot_ms=10, n_in=12, R=6):
  T = L * slot_ms
  channels = np.zeros((L, 4), np.float32)
  channels[np.arange(L), [2, 0, 3, 1]] = 1  # store, value 0, recall, value 1
  p1 = rng.random(T).astype(np.float32)
  return dict(
    inputs=(rng.random((T, n_in)) < 0.1).astype(np.float32),
    z=(rng.random((T, R)) < 0.1).astype(np.float32),
    thr=0.01 + np.cumsum(rng.random((T, R)), 0).astype(np.float32) * 1e-3,
    out=np.stack([1 - p1, p1], axis=1),
    channels=channels,
    target=np.array([0, 0, 1, 0], np.int32),
    is_recall=channels[:, 3] > 0,
    slot_ms=slot_ms,
    n_regular=R // 2,
  )


def _read_png(path, figsize, dpi):
  """The decoded RGBA image, after checking the file is a PNG of that size."""
  data = path.read_bytes()
  assert data[:8] == _PNG_SIGNATURE
  pixels = image.imread(path)
  width, height = figsize
  assert pixels.shape == (round(height * dpi), round(width * dpi), 4)
  return pixels


@pytest.mark.parametrize(
  "plot, make_args, figsize",
  [
    (lsnn_plots.plot_smnist, _smnist_args, (6, 7.5)),
    (lsnn_plots.plot_store_recall, _store_recall_args, (5.9, 6)),
  ],
)
def test_writes_a_png_whose_pixels_show_the_spikes(
  tmp_path, plot, make_args, figsize
):
  args = make_args(np.random.default_rng(0))
  plot(tmp_path / "spikes.png", dpi=40, **args)
  with_spikes = _read_png(tmp_path / "spikes.png", figsize, 40)
  assert with_spikes.std() > 0.05  # not a blank canvas
  args["z"] = np.zeros_like(args["z"])
  plot(tmp_path / "silent.png", dpi=40, **args)
  silent = _read_png(tmp_path / "silent.png", figsize, 40)
  # Only the recurrent raster changed, so the images differ but little.
  changed = np.any(with_spikes != silent, axis=-1).mean()
  assert 0.0 < changed < 0.2


def test_smnist_handles_a_network_without_adaptive_neurons(tmp_path):
  args = _smnist_args(np.random.default_rng(1), n_regular=10, n_adaptive=0)
  lsnn_plots.plot_smnist(tmp_path / "lif.png", dpi=30, **args)
  _read_png(tmp_path / "lif.png", (6, 7.5), 30)


@pytest.mark.parametrize(
  "name, bad",
  [
    ("z", lambda a: a["z"][:-1]),
    ("thr", lambda a: a["thr"][:, 1:]),
    ("out", lambda a: a["out"][:, :9]),
    ("rec_sign", lambda a: a["rec_sign"][:-1]),
    ("rec_sign", lambda a: np.zeros_like(a["rec_sign"])),
    ("n_regular", lambda a: 11),
    ("inputs", lambda a: a["inputs"][0]),
  ],
)
def test_smnist_wrong_argument_is_named(tmp_path, name, bad):
  args = _smnist_args(np.random.default_rng(0))
  args[name] = bad(args)
  with pytest.raises(ValueError, match=rf"^{name} "):
    lsnn_plots.plot_smnist(tmp_path / "x.png", **args)
  assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
  "name, bad",
  [
    ("z", lambda a: a["z"][:-1]),
    ("inputs", lambda a: a["inputs"][:-1]),
    ("inputs", lambda a: a["inputs"][:, :3]),
    ("thr", lambda a: a["thr"][:, 1:]),
    ("out", lambda a: np.ones((a["out"].shape[0], 3), np.float32)),
    ("channels", lambda a: a["channels"][:, :3]),
    ("target", lambda a: a["target"][:-1]),
    ("is_recall", lambda a: a["is_recall"][:, None]),
    ("slot_ms", lambda a: 0),
    ("n_regular", lambda a: -1),
  ],
)
def test_store_recall_wrong_argument_is_named(tmp_path, name, bad):
  args = _store_recall_args(np.random.default_rng(0))
  args[name] = bad(args)
  with pytest.raises(ValueError, match=rf"^{name} "):
    lsnn_plots.plot_store_recall(tmp_path / "x.png", **args)
  assert not (tmp_path / "x.png").exists()
