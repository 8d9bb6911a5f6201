"""Event-based MNIST: encoding, batches, models and update counts."""

import importlib.util
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import nmnist as nmnist_config
from experiments import nmnist
from experiments.common import events, models

KEY = jax.random.key(0)


def _stream(n: int, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  s = np.zeros(n, events.EVENT_DTYPE)
  s["x"], s["y"] = rng.integers(0, 34, n), rng.integers(0, 34, n)
  s["t"] = np.sort(rng.integers(0, 300_000, n))
  s["p"] = rng.integers(0, 2, n)
  return s


def _config(name: str = "plstm"):
  config = nmnist_config.get_config("smoke")
  config.model.name = name
  return config


def _cell(config):
  return models.make_cell(config.model)


def test_encode_pads_on_the_left_and_masks():
  s = _stream(3)
  e = nmnist.encode(s, 5)
  np.testing.assert_array_equal(e["mask"], [0, 0, 1, 1, 1])
  np.testing.assert_array_equal(
    e["address"],
    [0, 0, *(s["p"].astype(int) * 1156 + s["y"].astype(int) * 34 + s["x"])],
  )
  np.testing.assert_allclose(e["t"], [0, 0, *(s["t"] / 1000)], rtol=1e-6)
  assert e["t"].dtype == np.float32 and e["address"].max() < 2312


def test_encode_keeps_an_even_stride_of_long_streams():
  s = _stream(100)
  e = nmnist.encode(s, 10)
  assert e["mask"].all()
  np.testing.assert_allclose(e["t"], s["t"][5::10] / 1000, rtol=1e-6)


def test_subsample_draws_ordered_subsets_and_keeps_short_rows():
  pool = {
    "address": np.arange(20).reshape(2, 10),
    "t": np.float32(np.arange(20).reshape(2, 10)),
    "mask": np.arange(10) >= np.array([[0], [7]]),  # 10 and 3 real events
    "label": np.array([3, 4]),
  }
  rng = np.random.default_rng(0)
  draws = [nmnist.subsample(pool, 4, rng) for _ in range(20)]
  for d in draws:
    assert d["mask"][0].all() and len(set(d["t"][0])) == 4
    assert np.all(np.diff(d["t"][0]) > 0)  # in time order
    np.testing.assert_array_equal(d["address"], d["t"])  # rows move together
    # The short row keeps its 3 events, after one padding slot.
    np.testing.assert_array_equal(d["mask"][1], [0, 1, 1, 1])
    np.testing.assert_array_equal(d["t"][1, 1:], [17, 18, 19])
    np.testing.assert_array_equal(d["label"], [3, 4])
  # Different draws cover the whole pool of the long row.
  assert set(np.concatenate([d["t"][0] for d in draws])) == set(range(10))


def test_padding_does_not_change_the_prediction():
  """Left padding leaves the Phased LSTM's carry, hence the logits, as is."""
  config = _config()
  params = nmnist.make_task(config).init(KEY, KEY)
  cell, frame_ms = _cell(config), config.data.frame_ms
  s = _stream(20)
  logits = []
  for length in (20, 27):
    batch = {k: v[None] for k, v in nmnist.encode(s, length).items()}
    batch["address"] = batch["address"].astype(np.int32)
    logits.append(nmnist.logits(cell, frame_ms, params, batch, training=False))
  np.testing.assert_allclose(logits[0], logits[1], rtol=1e-5, atol=1e-6)


def _metrics_batch():
  rng = np.random.default_rng(1)
  lengths = np.array([6, 3, 1, 4])
  mask = np.arange(6) >= 6 - lengths[:, None]
  return {
    "address": rng.integers(0, 2312, (4, 6)).astype(np.int32),
    "t": np.where(mask, rng.uniform(0, 300, (4, 6)), 0).astype(np.float32),
    "mask": mask,
    "label": np.array([1, 2, 3, 4], np.int32),
    "weight": np.array([1, 1, 2, 0], np.float32),
  }


def test_update_fraction_equals_a_numpy_recount():
  config = _config()
  h = config.model.hidden
  params = nmnist.make_task(config).init(KEY, KEY)
  rng = np.random.default_rng(2)
  tau = np.float32(rng.uniform(2, 20, h))
  shift = np.float32(rng.uniform(0, 20, h))
  params["rnn"].update(
    tau=jnp.asarray(tau),
    shift=jnp.asarray(shift),
    r_on=jnp.full(h, 0.3, jnp.float32),
  )
  batch = _metrics_batch()
  metrics = nmnist.update_metrics(
    _cell(config), config.data.frame_ms, params, batch
  )
  # The gate is open (k > 0) for 0 < phi < r_on, with alpha = 0.
  t = batch["t"].astype(np.float64)[..., None]
  phi = np.mod(t - shift, tau) / tau
  opened = ((phi > 0) & (phi < 0.3)).sum(-1) * batch["mask"]
  w, m = batch["weight"], batch["mask"]
  expected = (w[:, None] * opened).sum() / (h * (w[:, None] * m).sum())
  assert 0.1 < expected < 0.5
  np.testing.assert_allclose(metrics["update_fraction"], expected, rtol=1e-5)
  np.testing.assert_allclose(
    metrics["updates_per_sample"], np.mean(w * opened.sum(1)), rtol=1e-5
  )
  np.testing.assert_allclose(
    metrics["updates_per_neuron"], np.mean(w * opened.sum(1)) / h, rtol=1e-5
  )
  np.testing.assert_allclose(
    metrics["events_per_sample"], np.mean(w * m.sum(1)), rtol=1e-6
  )


def test_the_frame_lstm_updates_every_unit_every_frame():
  config = _config("lstm")
  task = nmnist.make_task(config)
  params = task.init(KEY, KEY)
  batch = {**_metrics_batch(), "weight": np.ones(4, np.float32)}
  _, metrics = task.loss(params, batch, KEY, training=False)
  assert metrics["update_fraction"] == 1
  assert metrics["updates_per_sample"] == 60 * config.model.hidden
  assert metrics["updates_per_neuron"] == 60
  assert set(metrics) >= {"loss", "accuracy", "events_per_sample"}


def test_frames_sum_the_events_of_each_time_bin():
  config = _config("lstm")
  x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
  t = np.float32([[0.0, 4.9, 5.0, 299.0, 310.0], [0, 0, 12.0, 13.0, 14.0]])
  mask = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]], bool)
  got = np.asarray(nmnist.frames(x, t, mask, config.data.frame_ms))
  expected = np.zeros((2, 60, 3), np.float32)
  for b in range(2):
    for i in range(5):
      if mask[b, i]:
        expected[b, min(int(t[b, i] // 5), 59)] += x[b, i]
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_train_batches_are_a_function_of_key_and_step():
  train_batch = nmnist.make_task(_config()).train_batch  # 32 digits, B = 8
  a = train_batch(KEY, 5)
  b = train_batch(KEY, 5)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(train_batch(jax.random.key(1), 5)["t"], a["t"])
  # One data epoch (4 batches) visits every digit once.
  epoch = np.concatenate([train_batch(KEY, s)["t"] for s in range(4)])
  assert len(np.unique(epoch, axis=0)) == 32
  assert a["address"].dtype == np.int32 and a["mask"].shape == (8, 32)


def test_eval_batches_weigh_padding_zero_and_give_exact_means():
  config = _config()  # 12 test digits, batches of 8
  eval_batches = nmnist.make_task(config).eval_batches
  batches = eval_batches(KEY, 1)
  assert len(batches) == 2
  weight = np.concatenate([b["weight"] for b in batches])
  np.testing.assert_allclose(weight[:12], 16 / 12)
  np.testing.assert_array_equal(weight[12:], 0)
  labels = nmnist.dataset(config.data, "test")["label"]
  mean = np.mean([np.mean(b["weight"] * b["label"]) for b in batches])
  assert mean == pytest.approx(labels.mean())
  again = eval_batches(jax.random.key(1), 2)
  np.testing.assert_array_equal(again[1]["address"], batches[1]["address"])


def test_converted_digits_fill_the_event_budget():
  config = _config()  # 32 events a digit, from a pool of 2 x 32 in training
  assert nmnist.dataset(config.data, "test")["mask"].shape == (12, 32)
  data = nmnist.dataset(config.data, "train")
  assert data["address"].shape == (32, 64) and data["mask"].all()
  assert np.all(np.diff(data["t"], axis=1) >= 0)
  assert 0 < data["t"].min() and data["t"].max() <= 300
  assert set(np.unique(data["label"])) <= set(range(10))


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("model.name", "gru", "config.model.name"),
    ("data.source", "dvs", "config.data.source"),
    ("data.max_events", 0, "config.data.max_events"),
    ("data.pool", 0, "config.data.pool"),
    ("data.frame_ms", -5.0, "config.data.frame_ms"),
    ("model.embed", 0, "config.model.embed"),
    ("data.eval_size", -1, "config.data.eval_size"),
  ],
)
def test_bad_config_values_are_named(field, value, match):
  config = _config()
  section, key = field.split(".")
  config[section][key] = value
  with pytest.raises(ValueError, match=match):
    nmnist.make_task(config)


def test_too_large_a_subset_is_named():
  config = _config()
  config.data.eval_size = 10_000
  with pytest.raises(ValueError, match="config.data.eval_size"):
    nmnist.make_task(config).eval_batches(KEY, 1)


@pytest.mark.skipif(
  importlib.util.find_spec("tonic") is not None, reason="tonic is installed"
)
def test_real_nmnist_without_tonic_is_one_clear_error(tmp_path):
  config = _config()
  config.data.source, config.data.dir = "nmnist", str(tmp_path)
  with pytest.raises(ValueError, match="pip install tonic"):
    nmnist.make_task(config).train_batch(KEY, 0)


def test_a_damaged_nmnist_recording_is_named(tmp_path, monkeypatch):
  """tonic reads each recording's file when it is indexed."""

  class Recordings:
    def __len__(self):
      return 3

    def __getitem__(self, i):
      if i == 1:
        raise ValueError("cannot reshape array\nof size 7 into shape (5)")
      return _stream(10), 4

  datasets = types.SimpleNamespace(NMNIST=lambda save_to, train: Recordings())
  monkeypatch.setitem(
    sys.modules, "tonic", types.SimpleNamespace(datasets=datasets)
  )
  config = _config()
  config.data.source, config.data.dir = "nmnist", str(tmp_path)
  config.data.train_size, config.data.batch_size = 3, 2
  with pytest.raises(ValueError) as error:
    nmnist.make_task(config).train_batch(KEY, 0)
  assert str(error.value) == (
    f"tonic could not read N-MNIST train recording 1 in {str(tmp_path)!r} "
    "(ValueError: cannot reshape array of size 7 into shape (5)); replace "
    "the damaged file, or set config.data.dir to tonic's N-MNIST directory."
  )


def test_a_few_steps_fit_one_batch():
  """Adam on one repeated batch: the embedding and cell can memorise it."""
  import optax

  task = nmnist.make_task(_config())
  batch = jax.tree.map(jnp.asarray, task.train_batch(KEY, 0))
  params = task.init(KEY, KEY)
  tx = optax.adam(3e-2)
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    grads, metrics = jax.grad(
      lambda p: task.loss(p, batch, None, training=True),
      has_aux=True,
    )(params)
    with jax.numpy_dtype_promotion("standard"):
      updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, metrics["loss"]

  losses = []
  for _ in range(25):
    params, state, loss = step(params, state)
    losses.append(float(loss))
  assert losses[-1] < 0.3 * losses[0]


def test_the_event_lstm_steps_through_every_event_with_its_time():
  """One step per real event, with t / 100 ms as a feature: the padding
  changes nothing, and every unit updates at every event."""
  config = _config("event_lstm")
  task = nmnist.make_task(config)
  params = task.init(KEY, KEY)
  e = config.model.embed
  assert params["rnn"]["w_x"].shape[0] == e + 1  # embedding + time
  cell = _cell(_config("lstm"))  # the event LSTM's cell
  s = _stream(20)
  scores = []
  for length in (20, 27):
    batch = {k: v[None] for k, v in nmnist.encode(s, length).items()}
    batch["address"] = batch["address"].astype(np.int32)
    scores.append(nmnist.logits(cell, None, params, batch, training=False))
  np.testing.assert_allclose(scores[0], scores[1], rtol=1e-5, atol=1e-6)
  # A later time changes the input: time is read.
  batch["t"] = batch["t"] + 50.0
  moved = nmnist.logits(cell, None, params, batch, training=False)
  assert not np.allclose(moved, scores[1])

  batch = _metrics_batch()
  metrics = nmnist.update_metrics(cell, None, params, batch)
  w, m = batch["weight"], batch["mask"]
  h = config.model.hidden
  np.testing.assert_allclose(
    metrics["updates_per_sample"], np.mean(w * m.sum(1) * h), rtol=1e-6
  )
  np.testing.assert_allclose(
    metrics["updates_per_neuron"], np.mean(w * m.sum(1)), rtol=1e-6
  )
  assert metrics["update_fraction"] == 1
  _, out = task.loss(params, batch, KEY, training=True)
  assert set(out) >= {"loss", "accuracy", "updates_per_sample"}
