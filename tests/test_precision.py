"""The precision policy: bfloat16 matrix products with float32 params,
carries and element-wise maths (`plstm.cell`, a cell's `dtype`).

Tolerances: bfloat16 keeps 8 significant bits (relative rounding 2^-8 ~
0.4%), so over T = 20 steps the outputs stay within 5% of their largest
magnitude of the float32 run's, and the gradients within 10% in norm
(relative to the float32 gradient's norm) and aligned (cosine > 0.99).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import plstm
from configs import freq_task as freq_config
from experiments import freq_task
from plstm import sparse
from plstm.train import task as task_lib

B, T, I, H = 4, 20, 3, 8
BF16 = jnp.bfloat16

CELLS = {
  "lstm": plstm.LSTM(H, peepholes=True),
  "phased_lstm": plstm.PhasedLSTM(H, tau_range=(2.0, 10.0), r_on=0.3),
  "rnn": plstm.RNN(H),
  "lif": plstm.LIF(H, thr=0.3, n_refractory=2),
  "alif": plstm.ALIF(H, thr=0.3, n_delay=3, n_refractory=1, tau_a=50.0),
  "phased_rnn": plstm.Phased(plstm.RNN(H), tau_range=(2.0, 10.0), r_on=0.3),
}


def _inputs(cell):
  kx, _ = jax.random.split(jax.random.key(1))
  x = jax.random.normal(kx, (B, T, I))
  if plstm.cell.timed(cell):
    t = jnp.tile(1000.0 + 0.7 * jnp.arange(T, dtype=jnp.float32), (B, 1))
    return x, t
  return x


def _readout(outputs):
  """One float array [B, T, H] of a cell's outputs (the LSNN's v, which
  the spikes' pseudo-derivative makes differentiable)."""
  return outputs.v if isinstance(outputs, plstm.LSNNOutput) else outputs


def _run(cell, params, inputs, training=True):
  return plstm.scan(cell, params, inputs, training=training)


def _loss(cell, inputs):
  def loss(trained, params):
    _, out = _run(cell, plstm.merge(trained, params), inputs)
    return jnp.mean(jnp.sin(3 * _readout(out)))

  return loss


@pytest.mark.parametrize("name", CELLS)
def test_bfloat16_products_are_close_to_float32(name):
  f32 = CELLS[name]
  bf16 = plstm.cell.with_precision(f32, dtype=BF16)
  params = f32.init(jax.random.key(0), I)
  assert jax.tree.map(lambda a: a.dtype, params) == jax.tree.map(
    lambda a: a.dtype, bf16.init(jax.random.key(0), I)
  )
  inputs = _inputs(f32)
  carry32, out32 = _run(f32, params, inputs)
  carry16, out16 = _run(bf16, params, inputs)
  for leaf in jax.tree.leaves((carry16, out16)):
    assert leaf.dtype == jnp.float32  # carries and outputs stay float32
  a, b = np.asarray(_readout(out32)), np.asarray(_readout(out16))
  assert np.abs(a - b).max() <= 0.05 * np.abs(a).max()
  assert not np.array_equal(a, b)  # the products did run in bfloat16

  trained = plstm.trainable(params)
  g32 = jax.grad(_loss(f32, inputs))(trained, params)
  g16 = jax.grad(_loss(bf16, inputs))(trained, params)
  for x, y in zip(jax.tree.leaves(g32), jax.tree.leaves(g16), strict=True):
    assert y.dtype == x.dtype == jnp.float32
  v32 = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g32)])
  v16 = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g16)])
  assert np.linalg.norm(v16 - v32) <= 0.1 * np.linalg.norm(v32)
  assert v16 @ v32 / (np.linalg.norm(v16) * np.linalg.norm(v32)) > 0.99


@pytest.mark.parametrize("name", ["phased_lstm", "phased_rnn"])
def test_the_time_gate_ignores_the_computation_dtype(name):
  """Timestamps near 1000 ms, 0.7 ms apart, which bfloat16 (spacing 4 at
  1000) could not tell apart: in evaluation a closed unit keeps h exactly,
  so the units each step updates are its open ones, and they are those of
  the float32 run."""
  f32 = CELLS[name]
  bf16 = plstm.cell.with_precision(f32, dtype=BF16)
  params = f32.init(jax.random.key(0), I)
  inputs = _inputs(f32)

  def updated(cell):
    _, h = _run(cell, params, inputs, training=False)
    return np.asarray(h[:, 1:] != h[:, :-1])

  open32 = updated(f32)
  assert 0.05 < open32.mean() < 0.95  # some open, some closed
  np.testing.assert_array_equal(updated(bf16), open32)


def test_float32_params_keep_float32_carries_and_bfloat16_params_bfloat16():
  cell = plstm.LSTM(H, dtype=BF16)
  params = cell.init(jax.random.key(0), I)
  assert params["w_x"].dtype == jnp.float32
  carry, _ = _run(cell, params, _inputs(cell))
  assert carry.c.dtype == jnp.float32
  half = plstm.LSTM(H, param_dtype=BF16)
  params = half.init(jax.random.key(0), I)
  assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype(BF16)}
  carry, h = _run(half, params, _inputs(half).astype(BF16))
  assert carry.c.dtype == h.dtype == BF16


def test_with_precision_sets_the_wrapped_cell_and_refuses_a_cell_without():
  phased = plstm.cell.with_precision(CELLS["phased_rnn"], dtype=BF16)
  assert phased.cell.dtype == BF16 and phased.alpha == CELLS["phased_rnn"].alpha
  assert plstm.cell.with_precision(CELLS["lstm"]) is CELLS["lstm"]

  @dataclasses.dataclass(frozen=True)
  class Plain:
    hidden_size: int

  with pytest.raises(ValueError, match=r"Plain\(3\) has no precision fields"):
    plstm.cell.with_precision(Plain(3), dtype=BF16)


def test_the_flax_wrappers_take_dtype_and_param_dtype():
  cell = plstm.PhasedLSTM(H)
  rnn = plstm.nn.NNXRNN(cell, I, rngs=nnx.Rngs(0), dtype=BF16)
  assert rnn.cell.dtype == BF16 and rnn.w_x.get_value().dtype == jnp.float32
  x, t = _inputs(cell)
  ours = rnn((x, t))
  theirs = _run(rnn.cell, rnn.params, (x, t), training=False)[1]
  np.testing.assert_array_equal(ours, theirs)
  linen = plstm.nn.LinenRNN(plstm.LSTM(H), param_dtype=BF16)
  variables = linen.init(jax.random.key(0), x.astype(BF16))
  assert variables["params"]["w_x"].dtype == BF16


def test_sparse_evaluation_follows_the_cells_dtype():
  cell = plstm.PhasedLSTM(H, r_on=0.2, dtype=BF16)
  params = cell.init(jax.random.key(0), I)
  x, t = _inputs(cell)
  _, dense = _run(cell, params, (x, t), training=False)
  units = sparse.open_units(cell, params, t)
  _, ours = sparse.scan(cell, params, (x, t), units)
  np.testing.assert_allclose(ours, dense, atol=1e-6)


def test_the_config_sets_the_experiments_dtype():
  config = freq_config.get_config("smoke")
  assert config.model.dtype == "float32"
  config.model.dtype = "bfloat16"
  task = freq_task.make_task(config)
  keys = task_lib.seed_keys(0)
  params = task.init(keys.init, keys.structure)
  batch = task.train_batch(keys.data, 0)
  loss, _ = task.loss(params, batch, keys.noise, training=True)
  config.model.dtype = "float32"
  loss32, _ = freq_task.make_task(config).loss(
    params, batch, keys.noise, training=True
  )
  assert loss != loss32 and abs(loss - loss32) < 0.02 * abs(loss32)
  config.model.dtype = "float16"
  with pytest.raises(ValueError, match="config.model.dtype must be one of"):
    freq_task.make_task(config)
