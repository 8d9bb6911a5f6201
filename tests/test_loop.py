"""Tests of plstm.scan's loop arrangements: hoisted or not, in remat chunks
or not, they give the same values and gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plstm

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
  if name in ("lstm", "plain"):
    cell = plstm.LSTM(H, peepholes=name == "lstm")
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


def _unhoisted(*args, **kwargs):
  return plstm.scan(*args, hoist=False, **kwargs)


def _hoisted(*args, **kwargs):
  return plstm.scan(*args, hoist=True, **kwargs)


def _assert_trees_close(a, b, **tolerances):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, **tolerances)


def _matches_autodiff(name, training, mask):
  """The unhoisted loop gives the values and the gradients (params, inputs,
  initial carry) of the hoisted one."""
  cell, params = _model(name)
  x, t, full_mask, carry = _data()
  mask = full_mask if mask else None
  timed = name == "phased"
  argnums = (0, 1, 2, 4) if timed else (0, 1, 4)

  def value_and_grad(run):
    loss = _loss(run, cell, timed, training)
    f = jax.jit(jax.value_and_grad(loss, argnums))
    return f(params, x, t, mask, carry)

  out = value_and_grad(_unhoisted)
  ref = value_and_grad(_hoisted)
  _assert_trees_close(out, ref, rtol=1e-4, atol=1e-5)
  # Every gradient is far from zero, so a dropped term would show.
  for g in jax.tree.leaves(out[1]):
    assert float(jnp.max(jnp.abs(g))) > 1e-2


@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize(
  "name, training",
  [("lstm", False), ("plain", False), ("phased", True), ("phased", False)],
)
def test_unhoisted_equals_hoisted_values_and_gradients(name, training, mask):
  cell, params = _model(name)
  x, t, full_mask, carry = _data()
  m = full_mask if mask else None
  inputs = (x, t) if name == "phased" else x
  options = dict(mask=m, carry=carry, training=training)
  out = jax.jit(lambda p: _unhoisted(cell, p, inputs, **options))(params)
  ref = _hoisted(cell, params, inputs, **options)
  _assert_trees_close(out, ref, rtol=1e-5, atol=1e-6)
  _matches_autodiff(name, training, mask)


@pytest.mark.parametrize("name", ["plain", "phased"])
def test_unhoisted_under_vmap_over_params(name):
  """Two param sets at once, as the driver vmaps over seeds."""
  cell, _ = _model(name)
  params = jax.vmap(lambda k: cell.init(k, I))(
    jax.random.split(jax.random.key(4))
  )
  x, t, mask, carry = _data()
  timed = name == "phased"

  def grads(run):
    loss = _loss(run, cell, timed, True)
    g = jax.grad(loss, argnums=(0, 1, 4))
    return jax.jit(jax.vmap(g, in_axes=(0, None, None, None, None)))(
      params, x, t, mask, carry
    )

  out = grads(_unhoisted)
  _assert_trees_close(out, grads(_hoisted), rtol=1e-4, atol=1e-5)
  # The two param sets get their own gradients.
  w_h = out[0]["w_h"]
  assert float(jnp.max(jnp.abs(w_h[0] - w_h[1]))) > 1e-2


def test_unhoisted_runs_any_cell():
  """A spiking cell gives the same spikes and gradients either way too."""
  cell = plstm.ALIF(6, n_delay=3, n_refractory=2, thr=0.05, tau_a=5.0)
  params = cell.init(jax.random.key(2), I)
  x = jnp.abs(_data()[0])

  def loss(run, params):
    _, out = run(cell, params, x)
    return jnp.sum(out.v) + jnp.sum(out.z)

  np.testing.assert_allclose(
    jax.jit(lambda p: loss(_unhoisted, p))(params),
    jax.jit(lambda p: loss(_hoisted, p))(params),
    rtol=1e-5,
  )
  # The floating leaves: the delays are integer params, not trained.
  trained = plstm.trainable(params)
  merge = functools.partial(plstm.merge, params=params)
  grads = jax.jit(jax.grad(lambda t: loss(_unhoisted, merge(t))))(trained)
  grads_ref = jax.jit(jax.grad(lambda t: loss(_hoisted, merge(t))))(trained)
  for a, b in zip(
    jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True
  ):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
  "name, chunk, hoist",
  [("lstm", 4, False), ("phased", 6, False), ("phased", 8, True)],
)
def test_remat_chunks_equal_the_plain_loop_values_and_gradients(
  name, chunk, hoist
):
  cell, params = _model(name)
  x, t, mask, carry = _data()
  timed = name == "phased"
  inputs = (x, t) if timed else x
  remat = functools.partial(plstm.scan, remat_chunk=chunk, hoist=hoist)
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


def test_remat_keeps_less_in_memory():
  cell = plstm.LSTM(32)
  params = cell.init(jax.random.key(0), 1)
  x = jnp.ones((4, 2500, 1), jnp.float32)

  def peak(**options):
    loss = lambda p: jnp.sum(plstm.scan(cell, p, x, **options)[1][:, -1])
    stats = jax.jit(jax.grad(loss)).lower(params).compile().memory_analysis()
    return stats.temp_size_in_bytes

  hoisted = peak(hoist=True)
  unhoisted = peak(hoist=False)
  # The hoisted loop keeps ~10 activations of [B, H] per step; the
  # unhoisted one rematerialises each step and keeps its carry and inputs.
  assert unhoisted < hoisted / 3
  # Chunks keep a carry per chunk, one chunk's activations, and the outputs
  # and their cotangents [T, B, H]: 2.6 MB here, against 3.9 MB unhoisted
  # and 27 MB hoisted.
  for hoist, plain in ((True, hoisted), (False, unhoisted)):
    assert peak(hoist=hoist, remat_chunk=50) < plain / 1.3


def test_remat_chunk_must_divide_t():
  cell, params = _model("lstm")
  x, *_ = _data()
  for chunk in (5, 0):
    with pytest.raises(ValueError, match="remat_chunk must be a positive "):
      plstm.scan(cell, params, x, remat_chunk=chunk)


def test_remat_chunks_in_a_stack():
  cells = (plstm.LSTM(H), plstm.PhasedLSTM(H, tau_range=(1.0, 6.0)))
  params = plstm.init_stack(cells, jax.random.key(3), I)
  x, t, mask, _ = _data()
  out = plstm.scan(cells, params, (x, t), mask=mask, remat_chunk=6)
  ref = plstm.scan(cells, params, (x, t), mask=mask)
  for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
