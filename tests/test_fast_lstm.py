"""Tests of plstm.fast_lstm: equal values and gradients to plstm.scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plstm
from plstm import fast_lstm

B, T, I, H = 3, 24, 2, 5


def _data(seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(B, T, I)), jnp.float32)
  t = jnp.asarray(np.cumsum(rng.uniform(0.5, 1.5, (B, T)), 1), jnp.float32)
  mask = jnp.asarray(rng.uniform(size=(B, T)) > 0.2)
  carry = plstm.LSTMState(
    c=jnp.asarray(rng.normal(size=(B, H)), jnp.float32),
    h=jnp.asarray(np.tanh(rng.normal(size=(B, H))), jnp.float32),
  )
  return x, t, mask, carry


def _model(name):
  if name == "lstm":
    cell = plstm.LSTM(H, peepholes=True)
  else:
    cell = plstm.PhasedLSTM(H, tau_range=(1.0, 6.0), r_on=0.3)
  return cell, cell.init(jax.random.key(1), I)


def _loss(run, cell, timed, training):
  def loss(params, x, t, mask, carry):
    inputs = (x, t) if timed else x
    (c, h), hs = run(
      cell, params, inputs, mask=mask, carry=carry, training=training
    )
    weights = jnp.cos(jnp.arange(hs.size, dtype=jnp.float32)).reshape(hs.shape)
    return jnp.sum(weights * hs) + jnp.sum(jnp.sin(c)) + jnp.sum(h)

  return loss


@pytest.mark.parametrize(
  "name, training", [("lstm", False), ("phased", True), ("phased", False)]
)
def test_scan_equals_plstm_scan_values_and_gradients(name, training):
  cell, params = _model(name)
  x, t, mask, carry = _data()
  timed = name == "phased"
  inputs = (x, t) if timed else x
  for m in (None, mask):
    out = jax.jit(
      lambda p, m=m: fast_lstm.scan(
        cell, p, inputs, mask=m, carry=carry, training=training
      )
    )(params)
    ref = plstm.scan(
      cell, params, inputs, mask=m, carry=carry, training=training
    )
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  args = (params, x, t, mask, carry)
  argnums = (0, 1, 4)
  grads = jax.jit(
    jax.grad(_loss(fast_lstm.scan, cell, timed, training), argnums)
  )(*args)
  grads_ref = jax.jit(
    jax.grad(_loss(plstm.scan, cell, timed, training), argnums)
  )(*args)
  for a, b in zip(
    jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True
  ):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) > 0.1


def test_scan_runs_any_cell():
  """The loop is the cell's business: a spiking cell gives plstm.scan's
  spikes and gradients too."""
  cell = plstm.ALIF(6, n_delay=3, n_refractory=2, thr=0.05, tau_a=5.0)
  params = cell.init(jax.random.key(2), I)
  x = jnp.abs(_data()[0])

  def loss(run, params):
    _, out = run(cell, params, x)
    return jnp.sum(out.v) + jnp.sum(out.z)

  np.testing.assert_allclose(
    jax.jit(lambda p: loss(fast_lstm.scan, p))(params),
    jax.jit(lambda p: loss(plstm.scan, p))(params),
    rtol=1e-5,
  )
  grads = jax.jit(jax.grad(lambda p: loss(fast_lstm.scan, p)))(params)
  grads_ref = jax.jit(jax.grad(lambda p: loss(plstm.scan, p)))(params)
  for a, b in zip(
    jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True
  ):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, chunk", [("lstm", 4), ("phased", 6)])
def test_remat_scan_equals_scan_values_and_gradients(name, chunk):
  cell, params = _model(name)
  x, t, mask, carry = _data()
  timed = name == "phased"
  inputs = (x, t) if timed else x
  remat = lambda *a, **k: fast_lstm.remat_scan(*a, chunk=chunk, **k)
  out = jax.jit(lambda p: remat(cell, p, inputs, mask=mask, carry=carry))(
    params
  )
  ref = jax.jit(lambda p: plstm.scan(cell, p, inputs, mask=mask, carry=carry))(
    params
  )
  for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  args = (params, x, t, mask, carry)
  grads = jax.jit(jax.grad(_loss(remat, cell, timed, True), argnums=(0, 1, 4)))(
    *args
  )
  grads_ref = jax.jit(
    jax.grad(_loss(plstm.scan, cell, timed, True), argnums=(0, 1, 4))
  )(*args)
  for a, b in zip(
    jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True
  ):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) > 0.1


def test_remat_scan_keeps_less_in_memory():
  cell = plstm.LSTM(32)
  params = cell.init(jax.random.key(0), 1)
  x = jnp.ones((4, 2500, 1), jnp.float32)

  def peak(run):
    loss = lambda p: jnp.sum(run(p)[1][:, -1])
    stats = jax.jit(jax.grad(loss)).lower(params).compile().memory_analysis()
    return stats.temp_size_in_bytes

  plain = peak(lambda p: plstm.scan(cell, p, x))
  remat = peak(lambda p: fast_lstm.remat_scan(cell, p, x, chunk=50))
  # Plain keeps ~10 activations of [B, H] per step; remat ~50 steps of them
  # plus the outputs and a carry per chunk.
  assert remat < plain / 3


def test_remat_scan_needs_a_chunk_that_divides_t():
  cell, params = _model("lstm")
  x, *_ = _data()
  with pytest.raises(ValueError, match="divisor of T = 24"):
    fast_lstm.remat_scan(cell, params, x, chunk=5)
