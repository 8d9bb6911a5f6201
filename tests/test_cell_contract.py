"""A new cell needs `init`, `initial_carry` and `step` only: a GRU defined
here runs through plstm.scan, in a stack with a Phased LSTM, and inside
`plstm.nn.NNXRNN`, touching no library file. And carries follow the params'
dtype (float64 under x64)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.test_util import check_grads

import plstm
from plstm.cell import timed
from plstm.nn import NNXRNN

B, T, I, H = 3, 7, 2, 5


@dataclasses.dataclass(frozen=True)
class GRU:
  r"""Cho et al. (2014), with z_t the update and r_t the reset gate:

  .. math::
    z_t = \sigma(x_t W_z + h_{t-1} U_z), r_t = \sigma(x_t W_r + h_{t-1} U_r),
    h_t = (1 - z_t) h_{t-1} + z_t \tanh(x_t W_h + (r_t h_{t-1}) U_h)
  """

  hidden_size: int

  def init(self, key, input_size):
    kw, ku = jax.random.split(key)
    h = self.hidden_size
    return {
      "w": jax.random.normal(kw, (input_size, 3 * h)) / np.sqrt(input_size),
      "u": jax.random.normal(ku, (h, 3 * h)) / np.sqrt(h),
    }

  def initial_carry(self, batch_size, dtype=jnp.float32):
    return jnp.zeros((batch_size, self.hidden_size), dtype)

  def step(self, params, h, x, *, training=False):
    del training
    wz, wr, wh = jnp.split(x @ params["w"], 3, axis=-1)
    uz, ur, uh = jnp.split(params["u"], 3, axis=-1)
    z = jax.nn.sigmoid(wz + h @ uz)
    r = jax.nn.sigmoid(wr + h @ ur)
    h = (1 - z) * h + z * jnp.tanh(wh + (r * h) @ uh)
    return h, h


def _python_loop(cell, params, x):
  h = cell.initial_carry(x.shape[0])
  outputs = []
  for t in range(x.shape[1]):
    h, y = cell.step(params, h, x[:, t])
    outputs.append(y)
  return h, jnp.stack(outputs, 1)


def test_gru_through_scan_equals_a_python_loop():
  cell = GRU(H)
  params = cell.init(jax.random.key(0), I)
  x = jax.random.normal(jax.random.key(1), (B, T, I))
  for hoist in (True, False):  # no `project`: both run the whole step
    carry, h = plstm.scan(cell, params, x, hoist=hoist)
    want_carry, want_h = _python_loop(cell, params, x)
    np.testing.assert_allclose(h, want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry, want_carry, rtol=1e-5, atol=1e-6)
  check_grads(
    lambda p: plstm.scan(cell, p, x)[1].sum(), (params,), order=1, eps=1e-2
  )


def test_gru_stacks_under_a_phased_lstm_which_alone_sees_time():
  gru, phased = GRU(H), plstm.PhasedLSTM(4)
  params = plstm.init_stack([gru, phased], jax.random.key(0), I)
  x = jax.random.normal(jax.random.key(1), (B, T, I))
  t = jnp.cumsum(jnp.ones((B, T)), axis=1)
  (c_gru, c_phased), h = plstm.scan([gru, phased], params, (x, t))
  _, h_gru = plstm.scan(gru, params[0], x)
  _, want = plstm.scan(phased, params[1], (h_gru, t))
  np.testing.assert_allclose(h, want, rtol=1e-5, atol=1e-6)
  assert h.shape == (B, T, 4) and c_gru.shape == (B, H)


def test_gru_in_an_nnx_module():
  model = NNXRNN(GRU(H), I, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (B, T, I))
  _, want = _python_loop(model.cell, model.params, x)
  np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-6)


def test_the_initial_carry_follows_float64_params():
  with jax.enable_x64(True):
    for cell in (plstm.LSTM(H), plstm.PhasedLSTM(H), GRU(H)):
      params = jax.tree.map(
        lambda p: p.astype(jnp.float64), cell.init(jax.random.key(0), I)
      )
      x = jnp.ones((B, T, I), jnp.float64)
      t = jnp.ones((B, T), jnp.float64)
      inputs = (x, t) if timed(cell) else x
      carry, h = plstm.scan(cell, params, inputs)
      assert h.dtype == jnp.float64
      assert all(c.dtype == jnp.float64 for c in jax.tree.leaves(carry))


def test_a_phased_gru_keeps_closed_units_and_updates_open_ones():
  """plstm.Phased around the GRU defined here: in evaluation a unit whose
  gate is closed keeps its state; a fully open one takes the GRU's step."""
  cell = plstm.Phased(GRU(H))
  params = cell.init(jax.random.key(0), I)
  params |= {
    "tau": jnp.full((H,), 10.0),
    "shift": jnp.zeros(H),
    "r_on": jnp.full((H,), 0.2),
  }
  # At t = 1 the phase is 0.1 = r_on / 2: every gate is fully open; at t = 5
  # it is 0.5 > r_on: every gate is closed.
  h0 = jax.random.normal(jax.random.key(1), (B, H))
  x = jax.random.normal(jax.random.key(2), (B, I))
  gru_h, _ = GRU(H).step(params["inner"], h0, x)
  opened, y = cell.step(params, h0, (x, jnp.full((B,), 1.0)))
  np.testing.assert_allclose(opened, gru_h, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(y, opened)
  closed, _ = cell.step(params, h0, (x, jnp.full((B,), 5.0)))
  np.testing.assert_array_equal(closed, h0)
  xs = jax.random.normal(jax.random.key(3), (B, T, I))
  ts = jnp.cumsum(jnp.ones((B, T)), axis=1)
  _, h = plstm.scan(cell, params, (xs, ts))
  assert h.shape == (B, T, H) and cell.timed
