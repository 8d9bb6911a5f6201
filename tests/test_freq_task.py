"""The frequency-discrimination data and models (experiments/freq_task.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plstm
from configs import freq_task as freq_config
from experiments import freq_task
from experiments.common import models


def _batch(condition, batch_size=64, seed=0):
  return jax.device_get(
    freq_task.sample(jax.random.key(seed), batch_size, condition)
  )


@pytest.mark.parametrize("condition", ["async", "regular", "highres"])
def test_batches_are_left_padded_sorted_and_in_range(condition):
  b = _batch(condition)
  length = {"async": 125, "regular": 125, "highres": 1250}[condition]
  assert b["x"].shape == (64, length, 1)
  assert b["t"].shape == b["mask"].shape == (64, length)
  m, t = b["mask"], b["t"]
  # Left-padded: once a row turns real it stays real to the end.
  assert np.all(m[:, -1])
  assert np.all(np.diff(m.astype(int), axis=1) >= 0)
  assert np.all(t[~m] == 0) and np.all(b["x"][..., 0][~m] == 0)
  for row_t, row_m in zip(t, m, strict=True):
    real = row_t[row_m]
    assert np.all(np.diff(real) >= 0)  # Time runs forward.
    assert 0 <= real[0] and real[-1] <= 125
    assert 15 <= len(real) <= (124 if condition == "async" else length)


@pytest.mark.parametrize("condition,res", [("regular", 1.0), ("highres", 0.1)])
def test_regular_conditions_sample_on_a_grid(condition, res):
  b = _batch(condition, batch_size=8)
  for row_t, row_m in zip(b["t"], b["mask"], strict=True):
    np.testing.assert_allclose(np.diff(row_t[row_m]), res, rtol=1e-3)


def test_async_sampling_is_irregular():
  b = _batch("async", batch_size=8)
  gaps = np.diff(b["t"][0][b["mask"][0]])
  assert gaps.std() > 0.1 * gaps.mean()


def test_labels_follow_the_period():
  """Half of every batch is special; the other half mostly is not."""
  b = _batch("async", batch_size=512)
  labels = b["label"]
  assert np.all(labels[:256] == 1)
  # P(period in [5, 6]) = ln(6/5) / ln(100) ~ 4% for the second half.
  assert labels[256:].mean() < 0.12
  # A special sine (P in [5, 6]) crosses zero about 2 * duration / P times.
  real = b["mask"][0]
  x, t = b["x"][0, real, 0], b["t"][0, real]
  crossings = np.sum(np.diff(np.sign(x)) != 0)
  expected = 2 * (t[-1] - t[0]) / 5.5
  assert abs(crossings - expected) <= 0.2 * expected + 2


def test_data_is_a_function_of_key_and_step():
  task = freq_task.make_task(freq_config.get_config("smoke"))
  key = jax.random.key(0)
  a = task.train_batch(key, 3)
  b = task.train_batch(key, 3)
  c = task.train_batch(key, 4)
  d = task.train_batch(jax.random.key(1), 3)
  np.testing.assert_array_equal(a["x"], b["x"])
  assert not np.array_equal(a["x"], c["x"])
  assert not np.array_equal(a["x"], d["x"])


def test_lstm_models_see_time_as_a_feature_and_bn_normalises():
  config = freq_config.get_config("smoke")
  key = jax.random.key(0)
  batch = freq_task.make_task(config).train_batch(key, 0)
  for name, input_size in (("plstm", 1), ("lstm", 2), ("bn_lstm", 2)):
    config.model.name = name
    params = freq_task.make_task(config).init(key, key)
    assert params["rnn"]["w_x"].shape == (input_size, 4 * config.model.hidden)
    cell = models.make_cell(config.model)
    logits = models.logits(config.model, cell, params, batch, training=False)
    assert logits.shape == (config.data.batch_size, 2)
    assert isinstance(cell, plstm.PhasedLSTM if name == "plstm" else plstm.LSTM)
  x = jnp.concatenate([batch["x"], batch["t"][..., None]], -1)
  y = models.batch_norm(params["bn"], x, batch["mask"])
  real = np.asarray(y)[np.asarray(batch["mask"])]
  np.testing.assert_allclose(real.mean(0), 0, atol=1e-4)
  np.testing.assert_allclose(real.std(0), 1, atol=1e-2)


def test_bad_condition_and_model_name_are_reported():
  config = freq_config.get_config("smoke")
  config.data.condition = "sync"
  with pytest.raises(ValueError, match="config.data.condition"):
    freq_task.make_task(config)
  config = freq_config.get_config("smoke")
  config.model.name = "gru"
  with pytest.raises(ValueError, match="config.model.name"):
    freq_task.make_task(config)
