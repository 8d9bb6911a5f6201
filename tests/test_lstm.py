"""Tests of plstm.LSTM: hand-computed values and a NumPy re-derivation."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plstm

I, H = 3, 4


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _np_lstm_step(params, c_prev, h_prev, x, peepholes):
  """The LSTM step of the docstring, in float64 NumPy, gate order i, f, g, o."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  c_prev = np.asarray(c_prev, np.float64)
  h_prev = np.asarray(h_prev, np.float64)
  x = np.asarray(x, np.float64)
  hs = p["w_h"].shape[0]
  z = x @ p["w_x"] + h_prev @ p["w_h"] + p["b"]
  z_i, z_f, z_g, z_o = (z[..., n * hs : (n + 1) * hs] for n in range(4))
  if peepholes:
    z_i = z_i + p["p_i"] * c_prev
    z_f = z_f + p["p_f"] * c_prev
  c = _sigmoid(z_f) * c_prev + _sigmoid(z_i) * np.tanh(z_g)
  if peepholes:
    z_o = z_o + p["p_o"] * c
  h = _sigmoid(z_o) * np.tanh(c)
  return c, h


def _random_params(peepholes, scale=1.0, seed=0):
  """Params with every entry ~ N(0, scale^2), so every term matters."""
  rng = np.random.default_rng(seed)
  shapes = {"w_x": (I, 4 * H), "w_h": (H, 4 * H), "b": (4 * H,)}
  if peepholes:
    shapes.update(p_i=(H,), p_f=(H,), p_o=(H,))
  return {
    name: jnp.asarray(scale * rng.normal(size=shape), jnp.float32)
    for name, shape in shapes.items()
  }


def _random_carry(batch, seed=1):
  rng = np.random.default_rng(seed)
  return plstm.LSTMState(
    c=jnp.asarray(rng.normal(size=(*batch, H)), jnp.float32),
    h=jnp.asarray(np.tanh(rng.normal(size=(*batch, H))), jnp.float32),
  )


def _random_x(batch, seed=2):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=(*batch, I)), jnp.float32)


def _step(cell, training=False):
  return jax.jit(functools.partial(cell.step, training=training))


@functools.cache
def _init(cell, seed=0):
  return cell.init(jax.random.key(seed), I)


def _zero_params(peepholes):
  params = {
    "w_x": jnp.zeros((I, 4 * H)),
    "w_h": jnp.zeros((H, 4 * H)),
    "b": jnp.zeros(4 * H),
  }
  if peepholes:
    params.update(p_i=jnp.zeros(H), p_f=jnp.zeros(H), p_o=jnp.zeros(H))
  return params


@pytest.mark.parametrize("peepholes", [False, True])
def test_init_names_and_shapes(peepholes):
  params = _init(plstm.LSTM(H, peepholes=peepholes))
  expected = {"w_x": (I, 4 * H), "w_h": (H, 4 * H), "b": (4 * H,)}
  if peepholes:
    expected.update(p_i=(H,), p_f=(H,), p_o=(H,))
  assert {k: v.shape for k, v in params.items()} == expected
  assert all(v.dtype == jnp.float32 for v in params.values())


def test_init_biases_from_forget_and_input_bias():
  b = _init(plstm.LSTM(H, forget_bias=2.5, input_bias=-0.7))["b"]
  np.testing.assert_array_equal(b[:H], np.full(H, -0.7, np.float32))
  np.testing.assert_array_equal(b[H : 2 * H], np.full(H, 2.5, np.float32))
  np.testing.assert_array_equal(b[2 * H :], np.zeros(2 * H, np.float32))


def test_init_default_biases():
  b = _init(plstm.LSTM(H))["b"]
  np.testing.assert_array_equal(b[:H], np.zeros(H))
  np.testing.assert_array_equal(b[H : 2 * H], np.ones(H))
  np.testing.assert_array_equal(b[2 * H :], np.zeros(2 * H))


def test_init_recurrent_kernel_is_one_orthogonal_block_per_gate():
  w_h = np.asarray(_init(plstm.LSTM(H))["w_h"])
  for n in range(4):
    block = w_h[:, n * H : (n + 1) * H]
    np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)
  assert not np.allclose(w_h[:, :H], w_h[:, H : 2 * H])


def test_init_is_deterministic_in_key():
  cell = plstm.LSTM(H)
  a = cell.init(jax.random.key(0), I)
  b = _init(cell, 0)
  c = _init(cell, 1)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name])
  assert not np.allclose(b["w_x"], c["w_x"])


@pytest.mark.parametrize("hidden_size", [0, -3])
def test_nonpositive_hidden_size_raises(hidden_size):
  with pytest.raises(ValueError, match="hidden_size"):
    plstm.LSTM(hidden_size)


def test_initial_carry_shapes():
  cell = plstm.LSTM(H)
  carry = cell.initial_carry(5)
  assert isinstance(carry, plstm.LSTMState)
  assert carry.c.shape == carry.h.shape == (5, H)
  assert carry.c.dtype == jnp.float32
  np.testing.assert_array_equal(carry.c, np.zeros((5, H)))
  np.testing.assert_array_equal(carry.h, np.zeros((5, H)))
  assert cell.initial_carry((2, 3)).c.shape == (2, 3, H)


@pytest.mark.parametrize("peepholes", [False, True])
def test_step_matches_numpy(peepholes):
  cell = plstm.LSTM(H, peepholes=peepholes)
  params = _random_params(peepholes)
  carry = _random_carry((5,))
  x = _random_x((5,))
  new_carry, y = _step(cell)(params, carry, x)
  c, h = _np_lstm_step(params, carry.c, carry.h, x, peepholes)
  assert isinstance(new_carry, plstm.LSTMState)
  assert y.shape == (5, H)
  np.testing.assert_allclose(new_carry.c, c, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(new_carry.h, h, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(y, new_carry.h)
  # The peepholes matter at these values, so the comparison can tell.
  if peepholes:
    c_plain, _ = _np_lstm_step(params, carry.c, carry.h, x, False)
    assert np.max(np.abs(c - c_plain)) > 1e-2


def test_gate_order_is_i_f_g_o():
  # With zero weights each bias slice drives one gate on its own.
  cell = plstm.LSTM(H)
  params = _zero_params(False)
  b_i, b_f, b_g, b_o = 0.3, -1.2, 0.8, 1.7
  params["b"] = jnp.repeat(jnp.array([b_i, b_f, b_g, b_o]), H)
  c_prev = 0.6
  carry = plstm.LSTMState(jnp.full((1, H), c_prev), jnp.zeros((1, H)))
  new_carry, y = cell.step(params, carry, jnp.zeros((1, I)))
  sig = lambda z: 1.0 / (1.0 + math.exp(-z))
  c = sig(b_f) * c_prev + sig(b_i) * math.tanh(b_g)
  h = sig(b_o) * math.tanh(c)
  np.testing.assert_allclose(new_carry.c, np.full((1, H), c), rtol=1e-6)
  np.testing.assert_allclose(y, np.full((1, H), h), rtol=1e-6)


def test_peepholes_by_hand():
  # Input and forget peepholes see c_{t-1}; the output peephole sees c_t.
  cell = plstm.LSTM(H, peepholes=True)
  params = _zero_params(True)
  params["b"] = jnp.repeat(jnp.array([0.0, 0.0, 0.5, 0.0]), H)
  p_i, p_f, p_o = 1.0, 2.0, -1.0
  params.update(
    p_i=jnp.full(H, p_i), p_f=jnp.full(H, p_f), p_o=jnp.full(H, p_o)
  )
  c_prev = 1.5
  carry = plstm.LSTMState(jnp.full((1, H), c_prev), jnp.zeros((1, H)))
  new_carry, y = cell.step(params, carry, jnp.zeros((1, I)))
  sig = lambda z: 1.0 / (1.0 + math.exp(-z))
  c = sig(p_f * c_prev) * c_prev + sig(p_i * c_prev) * math.tanh(0.5)
  h = sig(p_o * c) * math.tanh(c)
  h_wrong = sig(p_o * c_prev) * math.tanh(c)  # Output peephole on c_{t-1}.
  assert abs(h - h_wrong) > 1e-2
  np.testing.assert_allclose(new_carry.c, np.full((1, H), c), rtol=1e-6)
  np.testing.assert_allclose(y, np.full((1, H), h), rtol=1e-6)


def test_any_leading_batch_shape():
  cell = plstm.LSTM(H, peepholes=True)
  params = _random_params(True)
  carry = _random_carry((2, 3))
  x = _random_x((2, 3))
  new_carry, y = _step(cell)(params, carry, x)
  assert y.shape == new_carry.c.shape == new_carry.h.shape == (2, 3, H)
  c, h = _np_lstm_step(params, carry.c, carry.h, x, True)
  np.testing.assert_allclose(new_carry.c, c, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-5)


def test_step_is_project_then_recur_and_ignores_training():
  cell = plstm.LSTM(H, peepholes=True)
  params = _random_params(True)
  carry = _random_carry((5,))
  x = _random_x((5,))
  z_x = cell.project(params, x)
  assert z_x.shape == (5, 4 * H)
  np.testing.assert_allclose(
    z_x, np.asarray(x) @ np.asarray(params["w_x"]) + params["b"], atol=1e-5
  )
  _, y_recur = jax.jit(cell.recur)(params, carry, z_x)
  _, y_eval = _step(cell, training=False)(params, carry, x)
  _, y_train = _step(cell, training=True)(params, carry, x)
  np.testing.assert_allclose(y_recur, y_eval, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(y_eval, y_train)


def test_initial_carry_matches_param_dtype_under_x64():
  cell = plstm.LSTM(H)
  params = _random_params(False)
  with jax.enable_x64(True):
    carry = cell.initial_carry(2)
    assert carry.c.dtype == params["w_h"].dtype == jnp.float32
    cell.step(params, carry, jnp.zeros((2, I), jnp.float32))
