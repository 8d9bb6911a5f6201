"""Tests of plstm.rnn: the RNN step against NumPy, GatedInput by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import plstm
from plstm.rnn import RNN, GatedInput

I, H, B, T = 3, 4, 2, 5


def _random(shape, seed, scale=1.0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(scale * rng.normal(size=shape), jnp.float32)


def _random_params():
  return {
    "w_x": _random((I, H), 0),
    "w_h": _random((H, H), 1, 0.5),
    "b": _random((H,), 2),
  }


def _np_rnn_step(params, h, x, activation):
  """h' = f(x W_x + h W_h + b) in float64 NumPy."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  h, x = np.asarray(h, np.float64), np.asarray(x, np.float64)
  return activation(x @ p["w_x"] + h @ p["w_h"] + p["b"])


@pytest.mark.parametrize(
  "activation, np_activation",
  [(jnp.tanh, np.tanh), (jax.nn.relu, lambda z: np.maximum(z, 0.0))],
)
def test_rnn_step_matches_numpy(activation, np_activation):
  cell = RNN(H, activation=activation)
  params = _random_params()
  h, x = _random((B, H), 3), _random((B, I), 4)
  new_h, y = jax.jit(cell.step)(params, h, x)
  want = _np_rnn_step(params, h, x, np_activation)
  np.testing.assert_allclose(new_h, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(y, new_h)


def test_rnn_by_hand():
  # One unit: h' = tanh(2 x - 0.5 h + 0.1) = tanh(2 - 0.5 + 0.1) = tanh(1.6).
  cell = RNN(1)
  params = {
    "w_x": jnp.array([[2.0]]),
    "w_h": jnp.array([[-0.5]]),
    "b": jnp.array([0.1]),
  }
  h, _ = cell.step(params, jnp.array([[1.0]]), jnp.array([[1.0]]))
  np.testing.assert_allclose(h, [[math.tanh(1.6)]], rtol=1e-6)


def test_scan_equals_numpy_loop():
  cell = RNN(H)
  params = _random_params()
  x = _random((B, T, I), 5)
  carry, outputs = plstm.scan(cell, params, x)
  h = np.zeros((B, H))
  for t in range(T):
    h = _np_rnn_step(params, h, x[:, t], np.tanh)
    np.testing.assert_allclose(outputs[:, t], h, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry, h, rtol=1e-5, atol=1e-6)


def test_init_shapes_and_zero_carry():
  cell = RNN(H)
  params = cell.init(jax.random.key(0), I)
  assert {k: v.shape for k, v in params.items()} == {
    "w_x": (I, H),
    "w_h": (H, H),
    "b": (H,),
  }
  np.testing.assert_array_equal(params["b"], np.zeros(H))
  # The orthogonal recurrent kernel: W_h^T W_h = 1.
  np.testing.assert_allclose(
    params["w_h"].T @ params["w_h"], np.eye(H), atol=1e-5
  )
  carry = cell.initial_carry((B, 2))
  assert carry.shape == (B, 2, H) and carry.dtype == jnp.float32
  assert not carry.any()


def test_rnn_gradients():
  cell = RNN(H)
  params, x = _random_params(), _random((B, I), 6)
  step = lambda p, h: cell.step(p, h, x)[1]
  check_grads(step, (params, _random((B, H), 7)), order=1, modes=["rev"])


def test_hidden_size_must_be_positive():
  with pytest.raises(ValueError, match="hidden_size"):
    RNN(0)
  with pytest.raises(ValueError, match="hidden_size"):
    GatedInput(-1)


_GATE_PARAMS = {
  "w_x": jnp.array([[1.0], [2.0]]),
  "w_h": jnp.array([[-1.0]]),
  "b": jnp.array([0.5]),
}


def _sigmoid(z):
  return 1.0 / (1.0 + math.exp(-z))


def test_gated_input_by_hand():
  x = jnp.array([[1.0, -1.0], [0.5, 0.25]])
  h = jnp.array([[0.5], [-2.0]])
  # z = x w_x + h w_h + b: 1 - 2 - 0.5 + 0.5 = -1 and 0.5 + 0.5 + 2 + 0.5 = 3.5.
  g = [_sigmoid(-1.0), _sigmoid(3.5)]
  layer = GatedInput(1)
  np.testing.assert_allclose(
    layer.gate(_GATE_PARAMS, x, h), [[g[0]], [g[1]]], rtol=1e-6
  )
  np.testing.assert_allclose(
    layer.apply(_GATE_PARAMS, x, h),
    [[g[0], -g[0]], [0.5 * g[1], 0.25 * g[1]]],
    rtol=1e-6,
  )


def test_gated_input_gates_a_sequence_with_one_h():
  layer = GatedInput(H)
  params = layer.init(jax.random.key(1), I)
  assert {k: v.shape for k, v in params.items()} == {
    "w_x": (I, 1),
    "w_h": (H, 1),
    "b": (1,),
  }
  x, h = _random((B, T, I), 8), _random((B, H), 9)
  y = layer.apply(params, x, h[:, None, :])
  for t in range(T):
    np.testing.assert_allclose(
      y[:, t], layer.apply(params, x[:, t], h), rtol=1e-6
    )
