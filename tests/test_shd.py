"""The Heidelberg spike datasets' reader and configs/shd.py on files made
here in the datasets' HDF5 layout."""

import importlib.util
import json
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import shd
from experiments.common import heidelberg, lsnn
from plstm import train

ROOT = Path(__file__).parent.parent


def _config(arg: str = "smoke"):
  path = ROOT / "configs" / "shd.py"
  spec = importlib.util.spec_from_file_location("shd_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _samples(n: int, seed: int, n_classes: int = 20):
  """n words: class c fires channels 30c..30c+29 at times rising with the
  channel, plus noise spikes, within 0.12 s."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, n_classes, n)
  times, units = [], []
  for c in labels:
    signal = 30 * c + np.arange(30)
    noise = rng.integers(0, heidelberg.N_CHANNELS, 20)
    u = np.concatenate([signal, noise])
    t = np.concatenate([np.linspace(0.0, 0.11, 30), rng.uniform(0, 0.119, 20)])
    order = np.argsort(t)
    times.append(t[order])
    units.append(u[order])
  return times, units, labels


@pytest.fixture
def shd_dir(tmp_path):
  for split, n, seed in (("train", 48, 0), ("test", 20, 1)):
    heidelberg.write(tmp_path / f"shd_{split}.h5", *_samples(n, seed))
  return tmp_path


def test_the_written_layout_is_the_datasets(shd_dir):
  with h5py.File(shd_dir / "shd_train.h5") as f:
    assert set(f) == {"spikes", "labels"}
    assert set(f["spikes"]) == {"times", "units"}
    assert f["labels"].shape == (48,)
    assert f["spikes/times"][0].dtype == np.float32
    assert f["spikes/units"][0].dtype == np.uint16


def test_read_round_trips(shd_dir):
  times, units, labels = _samples(48, 0)
  spikes = heidelberg.read(shd_dir / "shd_train.h5")
  assert len(spikes) == 48
  np.testing.assert_array_equal(spikes.labels, labels)
  for i in (0, 17, 47):
    a, b = spikes.offsets[i], spikes.offsets[i + 1]
    np.testing.assert_allclose(spikes.times[a:b], times[i], rtol=1e-6)
    np.testing.assert_array_equal(spikes.units[a:b], units[i])


def test_binning_counts_hand_placed_spikes(tmp_path):
  path = tmp_path / "shd_train.h5"
  heidelberg.write(
    path,
    times=[[0.0, 0.0149, 0.015, 0.0151, 0.2], [0.0095]],
    units=[[3, 3, 4, 699, 0], [10]],
    labels=[5, 7],
  )
  spikes = heidelberg.read(path)
  x = heidelberg.binned(spikes, np.array([1, 0]), n_bins=3, bin_ms=10.0)
  assert x.shape == (2, 3, 700) and x.dtype == np.float32
  expected = np.zeros((2, 3, 700), np.float32)
  expected[0, 0, 10] = 1  # sample 1 first
  expected[1, 0, 3] = 1
  expected[1, 1, [3, 4, 699]] = 1  # t = 0.2 s lies past the 3 bins
  np.testing.assert_array_equal(x, expected)
  pooled = heidelberg.binned(spikes, np.array([0]), 3, 10.0, channel_pool=5)
  assert pooled.shape == (1, 3, 140)
  assert pooled[0, 1, 0] == 2 and pooled[0, 1, 139] == 1  # 3 and 4 pool


def test_missing_and_malformed_files_are_one_line_naming_them(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    heidelberg.load("shd", "train", str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="has no shd_train.h5"):
    heidelberg.load("shd", "train", str(tmp_path))
  (tmp_path / "shd_train.h5.gz").write_bytes(b"\x1f\x8b")
  with pytest.raises(FileNotFoundError, match="no shd_train.h5 .unpack shd_"):
    heidelberg.load("shd", "train", str(tmp_path))
  (tmp_path / "shd_train.h5").write_bytes(b"\x1f\x8b not hdf5")
  with pytest.raises(ValueError, match="shd_train.h5 is not an HDF5 file"):
    heidelberg.read(tmp_path / "shd_train.h5")
  with h5py.File(tmp_path / "bad.h5", "w") as f:
    f.create_dataset("labels", data=np.zeros(3, np.uint16))
  with pytest.raises(ValueError, match="bad.h5 lacks spikes/times, spikes/"):
    heidelberg.read(tmp_path / "bad.h5")
  heidelberg.write(tmp_path / "short.h5", [[0.1]], [[1]], [0, 1])
  with pytest.raises(ValueError, match="1, 1 and 2 samples"):
    heidelberg.read(tmp_path / "short.h5")
  heidelberg.write(tmp_path / "wide.h5", [[0.1]], [[700]], [0])
  with pytest.raises(ValueError, match="channels 0-699"):
    heidelberg.read(tmp_path / "wide.h5")
  with pytest.raises(ValueError, match="one of \\['shd', 'ssc'\\]"):
    heidelberg.file_name("nmnist", "train")
  with pytest.raises(ValueError, match="splits \\('train', 'test'\\)"):
    heidelberg.file_name("shd", "valid")


def test_an_empty_dir_without_tonic_names_both_fixes(monkeypatch):
  monkeypatch.setitem(__import__("sys").modules, "tonic", None)
  with pytest.raises(ValueError, match="--config.data.dir=DIR .*pip install"):
    heidelberg.load("ssc", "valid", "", "/tmp/unused")


def test_batches_are_binned_weighted_and_walk_a_permutation(shd_dir):
  config = _config()
  config.data.dir = str(shd_dir)
  task = shd.make_task(config)
  key = jax.random.key(0)
  per_pass = 48 // 8
  seen = np.concatenate(
    [task.train_batch(key, s)["label"] for s in range(per_pass)]
  )
  np.testing.assert_array_equal(
    np.sort(seen), np.sort(heidelberg.read(shd_dir / "shd_train.h5").labels)
  )
  batch = task.train_batch(key, 0)
  assert batch["x"].shape == (8, 12, 70)
  evals = task.eval_batches(key, 3)
  assert len(evals) == 2  # 12 samples in batches of 8
  weights = np.concatenate([b["weight"] for b in evals])
  np.testing.assert_allclose(weights[:12], 16 / 12)
  np.testing.assert_array_equal(weights[12:], 0)
  with pytest.raises(IndexError):
    evals[2]


def test_bad_settings_are_one_line_errors(shd_dir):
  config = _config()
  config.data.dir = str(shd_dir)
  config.data.channel_pool = 3
  with pytest.raises(ValueError, match="channel_pool must divide"):
    shd.make_task(config)
  config = _config()
  config.data.dir = str(shd_dir)
  config.model.n_in = 700
  with pytest.raises(ValueError, match="700 / config.data.channel_pool = 70"):
    shd.make_task(config)
  config = _config()
  config.data.dir = str(shd_dir)
  config.data.eval_size = 50
  with pytest.raises(ValueError, match="exceeds the 20 samples"):
    shd.make_task(config)


def test_smoke_runs_on_files_in_the_datasets_layout(shd_dir, tmp_path):
  config = _config()
  config.data.dir = str(shd_dir)
  workdir = tmp_path / "run"
  results = train.train_and_evaluate(config, workdir)
  assert 0 <= results["final"]["val_accuracy"] <= 1
  assert np.isfinite(results["final"]["val_loss"])
  history = json.loads((workdir / "results.json").read_text())["history"]
  assert len(history) == config.num_epochs


def test_learned_delays_move_and_fixed_ones_are_not_params(shd_dir):
  config = _config()
  config.data.dir = str(shd_dir)
  net = lsnn.make_network(config, 70, 20, bias=True)
  keys = jax.random.split(jax.random.key(0))
  params = net.init(*keys)
  assert params["d_in"].dtype == jnp.float32
  task = shd.make_task(config)
  batch = task.train_batch(jax.random.key(1), 0)
  grads = jax.grad(lambda p: task.loss(p, batch, None, training=True)[0])(
    params
  )
  tx = net.optimizer(keys[1])
  with jax.numpy_dtype_promotion("standard"):  # optax.adam: float ** int.
    updates, _ = tx.update(grads, tx.init(params), params)
  # Adam's first step moves each delay with a gradient by lr x the scale.
  moved = np.abs(np.asarray(updates["d_in"]))
  lr = config.optimizer.learning_rate
  assert moved.max() == pytest.approx(
    lr * config.model.delay_lr_scale, rel=1e-3
  )
  assert np.abs(np.asarray(updates["w_in"])).max() == pytest.approx(
    lr, rel=1e-3
  )

  config.model.learn_delays = False
  fixed = lsnn.make_network(config, 70, 20, bias=True).init(*keys)
  assert fixed["d_in"].dtype == jnp.int32
  np.testing.assert_array_equal(fixed["d_in"], params["d_in"])


def test_deep_r_with_learned_delays_redraws_reconnected_ones(shd_dir):
  config = _config()
  config.data.dir = str(shd_dir)
  config.rewiring.connectivity = 0.3
  config.rewiring.l1 = 10.0  # kill synapses so that DEEP R reconnects
  net = lsnn.make_network(config, 70, 20, bias=True)
  keys = jax.random.split(jax.random.key(0))
  params = net.init(*keys)
  tx = net.optimizer(keys[1])
  grads = jax.tree.map(jnp.zeros_like, params)
  with jax.numpy_dtype_promotion("standard"):
    updates, _ = tx.update(grads, tx.init(params), params)
  new = {k: params[k] + updates[k] for k in params}
  reconnected = np.asarray((params["w_in"] == 0) & (new["w_in"] != 0))
  assert reconnected.any()
  d = np.asarray(new["d_in"])
  np.testing.assert_allclose(d, np.round(d), atol=1e-6)
  kept = ~reconnected
  np.testing.assert_array_equal(d[kept], np.asarray(params["d_in"])[kept])


@pytest.mark.slow
def test_a_small_lsnn_with_learned_delays_learns_synthetic_words(tmp_path):
  """Four classes of words, each sweeping its own 30 channels: after 40
  steps the network names them far above chance (25%)."""
  for split, n, seed in (("train", 256, 0), ("test", 64, 1)):
    heidelberg.write(
      tmp_path / f"shd_{split}.h5", *_samples(n, seed, n_classes=4)
    )
  config = _config()
  config.data.dir = str(tmp_path)
  config.data.eval_size = 0
  config.data.batch_size = 32
  config.model.n_regular = config.model.n_adaptive = 8
  config.model.n_delay = 4
  config.optimizer.learning_rate = 1e-2
  config.steps_per_epoch, config.num_epochs = 20, 2
  results = train.train_and_evaluate(config, tmp_path / "run")
  assert results["final"]["val_accuracy"] >= 0.9


def test_the_adaptive_lif_baseline_has_no_delays(shd_dir):
  config = _config()
  config.data.dir = str(shd_dir)
  config.model.n_regular, config.model.n_adaptive = 0, 8
  config.model.learn_delays, config.model.n_delay = False, 1
  task = shd.make_task(config)
  params = task.init(*jax.random.split(jax.random.key(0)))
  assert set(params) == {"w_in", "w_rec", "w_out", "b_out"}
  batch = task.train_batch(jax.random.key(1), 0)
  loss, metrics = task.loss(params, batch, None, training=True)
  assert np.isfinite(float(loss)) and 0 <= metrics["accuracy"] <= 1
