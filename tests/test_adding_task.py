"""The adding problem (experiments/adding_task.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import adding_task as adding_config
from experiments import adding_task as adding
from experiments.common import models


def _batch(batch_size=256, seq_len=100, seed=0):
  return jax.device_get(
    adding.sample(jax.random.key(seed), batch_size, seq_len)
  )


@pytest.mark.parametrize("seq_len", [2, 7, 100, 1000])
def test_one_marker_in_each_half(seq_len):
  b = _batch(seq_len=seq_len)
  assert b["x"].shape == (256, seq_len, 2)
  assert b["t"].shape == (256, seq_len) and b["target"].shape == (256,)
  marker = b["x"][..., 1]
  assert set(np.unique(marker)) <= {0.0, 1.0}
  half = seq_len // 2
  np.testing.assert_array_equal(marker[:, :half].sum(1), 1)
  np.testing.assert_array_equal(marker[:, half:].sum(1), 1)
  if seq_len >= 100:  # Both halves are covered, not just a few positions.
    first = marker[:, :half].argmax(1)
    second = half + marker[:, half:].argmax(1)
    assert first.min() < 0.1 * half and first.max() > 0.9 * half
    assert second.min() < half + 0.1 * half and second.max() > 0.9 * seq_len


def test_values_times_and_target():
  b = _batch()
  v, m = b["x"][..., 0], b["x"][..., 1]
  assert np.all((0 <= v) & (v < 1))
  assert 0.45 < v.mean() < 0.55
  np.testing.assert_array_equal(b["t"], np.tile(np.arange(100.0), (256, 1)))
  rows = np.arange(256)
  first, second = m[:, :50].argmax(1), 50 + m[:, 50:].argmax(1)
  expected = v[rows, first] + v[rows, second]
  np.testing.assert_allclose(b["target"], expected, rtol=1e-6)


def _setup(config):
  """(task, cell, params) of `config`."""
  task = adding.make_task(config)
  key = jax.random.key(0)
  return task, models.make_cell(config.model), task.init(key, key)


def test_predicting_the_mean_scores_one_sixth():
  """The baseline to beat: MSE Var(v_a + v_b) = 1/6."""
  config = adding_config.get_config("smoke")
  config.data.seq_len = 4
  task, _, params = _setup(config)
  params["head"] = {"w": jnp.zeros((8, 1)), "b": jnp.ones((1,))}
  batch = adding.sample(jax.random.key(1), 16384, 4)
  loss, metrics = _loss_fn(task)(params, batch)
  # Standard error: 0.0015.
  np.testing.assert_allclose(loss, 1 / 6, rtol=0.03)
  np.testing.assert_allclose(metrics["mse"], 1 / 6, rtol=0.03)


def _loss_fn(task):
  return jax.jit(
    lambda params, batch: task.loss(
      params, batch, jax.random.key(0), training=False
    )
  )


def test_mse_is_the_mean_squared_error():
  config = adding_config.get_config("smoke")
  task, cell, params = _setup(config)
  batch = task.train_batch(jax.random.key(0), 0)
  prediction = adding.predict(cell, params, batch, training=False)
  error = np.asarray(prediction - batch["target"])
  loss_fn = _loss_fn(task)
  for shift in (0.0, 0.03, -0.03, 0.05):
    shifted = {**batch, "target": batch["target"] + error + shift}
    loss, metrics = loss_fn(params, shifted)
    np.testing.assert_allclose(loss, shift**2, atol=1e-6)
    np.testing.assert_allclose(metrics["mse"], shift**2, atol=1e-6)
    assert set(metrics) == {"loss", "mse"}


@pytest.mark.parametrize("name", ["plstm", "lstm"])
def test_models_take_value_and_marker_and_plstm_the_time(name):
  config = adding_config.get_config("smoke")
  config.model.name = name
  task, cell, params = _setup(config)
  assert params["rnn"]["w_x"].shape == (2, 4 * config.model.hidden)
  batch = task.train_batch(jax.random.key(0), 0)
  prediction = adding.predict(cell, params, batch, training=False)
  assert prediction.shape == (config.data.batch_size,)
  later = {**batch, "t": batch["t"] + 0.5}
  moved = adding.predict(cell, params, later, training=False)
  # Only the Phased LSTM's time gate sees the timestamps.
  assert (np.abs(np.asarray(moved - prediction)).max() > 1e-4) == (
    name == "plstm"
  )


def test_data_is_a_function_of_key_and_step():
  task = adding.make_task(adding_config.get_config("smoke"))
  key = jax.random.key(0)
  a = task.train_batch(key, 3)
  jax.tree.map(np.testing.assert_array_equal, a, task.train_batch(key, 3))
  assert not np.array_equal(a["x"], task.train_batch(key, 4)["x"])
  other = jax.random.key(1)
  assert not np.array_equal(a["x"], task.train_batch(other, 3)["x"])


def test_paper_variant_is_the_recalled_setting():
  config = adding_config.get_config("paper")
  assert (config.data.form, config.data.seq_len, config.data.jitter) == (
    "paper",
    500,
    10,
  )
  np.testing.assert_allclose(config.model.tau_range, (1, np.e**2))
  assert config.model.shift_range[1] >= np.e**8 - 1e-3


def _paper_batch(batch_size=512, seq_len=500, jitter=10, seed=0):
  return jax.device_get(
    adding.sample_paper(jax.random.key(seed), batch_size, seq_len, jitter)
  )


def test_paper_form_lengths_values_and_markers():
  b = _paper_batch()
  x, t, mask = b["x"], b["t"], b["mask"]
  assert x.shape == (512, 510, 2) and t.shape == mask.shape == (512, 510)
  n = mask.sum(1)
  assert n.min() == 490 and n.max() == 510  # U{490, ..., 510}, both ends
  # Left padding: the real steps are the last n, their times 0, ..., n - 1.
  for i in (0, 1, 2):
    np.testing.assert_array_equal(mask[i], np.arange(510) >= 510 - n[i])
    np.testing.assert_array_equal(t[i, 510 - n[i] :], np.arange(n[i]))
  assert np.all(np.diff(t, axis=1)[mask[:, 1:] & mask[:, :-1]] == 1)
  v, m = x[..., 0], x[..., 1]
  assert np.all(v[mask] >= -0.5) and np.all(v[mask] < 0.5)
  assert abs(v[mask].mean()) < 0.01 and np.all(v[~mask] == 0)
  assert np.all(m.sum(1) == 2) and np.all(m[~mask] == 0)
  pos = np.argsort(-m, axis=1, kind="stable")[:, :2]
  first, second = np.sort(pos, axis=1).T - (510 - n)
  assert np.all(first < np.ceil(n / 10)) and np.all(first >= 0)
  assert np.all(second >= n // 2) and np.all(second < n)
  # The positions cover their ranges, not a few of them.
  assert first.min() == 0 and first.max() >= 48
  assert second.min() <= 250 and second.max() >= 495
  rows = np.arange(512)
  pad = 510 - n
  expected = v[rows, pad + first] + v[rows, pad + second]
  np.testing.assert_allclose(b["target"], expected, rtol=1e-6, atol=1e-7)


def test_paper_form_trains_on_the_real_steps_only():
  """Padding leaves the carry unchanged: the prediction of a sequence is
  that of its unpadded steps alone."""
  config = adding_config.get_config("smoke")
  config.data.form = "paper"
  config.data.seq_len, config.data.jitter = 30, 5
  task, cell, params = _setup(config)
  batch = jax.device_get(task.train_batch(jax.random.key(3), 0))
  full = adding.predict(cell, params, batch, training=False)
  i = int(np.argmin(batch["mask"].sum(1)))
  real = batch["mask"][i]
  alone = {k: v[i : i + 1, real] for k, v in batch.items() if v.ndim == 2}
  alone["x"] = batch["x"][i : i + 1, real]
  one = adding.predict(cell, params, alone, training=False)
  np.testing.assert_allclose(full[i], one[0], rtol=1e-5, atol=1e-6)


def test_bad_form_and_jitter_are_reported():
  config = adding_config.get_config("smoke")
  config.data.form = "hochreiter"
  with pytest.raises(ValueError, match="config.data.form must be one of"):
    adding.make_task(config)
  config = adding_config.get_config("smoke")
  config.data.form, config.data.seq_len, config.data.jitter = "paper", 30, 15
  with pytest.raises(ValueError, match="config.data.jitter must be in"):
    adding.make_task(config)


def test_bad_seq_len_and_model_are_reported():
  config = adding_config.get_config("smoke")
  config.data.seq_len = 1
  with pytest.raises(ValueError, match="config.data.seq_len must be at least"):
    adding.make_task(config)
  config = adding_config.get_config("smoke")
  config.model.name = "gru"
  with pytest.raises(
    ValueError, match=r"config.model.name must be one of \('plstm', 'lstm'"
  ):
    adding.make_task(config)
