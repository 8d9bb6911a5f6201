"""The Flax wrappers compute what the pure cells do, and train."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx

import plstm
from plstm.cell import timed
from plstm.nn import NNXRNN, LinenCell, LinenRNN, NNXCell

B, T, IN, H = 3, 7, 2, 5
CELLS = [
  plstm.LSTM(H, peepholes=True),
  plstm.PhasedLSTM(H, alpha=0.1),
  plstm.RNN(H),
  # A low threshold and delays, so that spikes and the buffers take part.
  plstm.ALIF(H, thr=0.05, beta=1.0, n_delay=3, n_refractory=2),
  plstm.LIF(H, thr=0.05),
  plstm.Phased(plstm.RNN(H), alpha=0.1),  # nested params
]
IDS = ["lstm", "plstm", "rnn", "alif", "lif", "phased_rnn"]


def sequences(cell):
  """(inputs for plstm.scan, one-array inputs, left-padded mask [B, T])."""
  k_x, k_dt = jax.random.split(jax.random.key(1))
  x = jax.random.normal(k_x, (B, T, IN))
  mask = jnp.arange(T) >= jnp.array([0, 2, 4])[:, None]
  if not timed(cell):
    return x, x, mask
  t = jnp.cumsum(jax.random.uniform(k_dt, (B, T), maxval=3.0), axis=1)
  return (x, t), jnp.concatenate([x, t[..., None]], axis=-1), mask


def at(inputs, step):
  return jax.tree.map(lambda a: a[:, step], inputs)


def nnx_params(model):
  return {k: v[...] for k, v in nnx.state(model, nnx.Param).items()}


def cell_params(variables):
  """The cell's params from linen variables: the trained "params" and the
  integer entries of "structure" (the ALIF's delays)."""
  return {**variables["params"], **variables.get("structure", {})}


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_linen_cell_matches_step_and_time_channel(cell):
  inputs, packed, _ = sequences(cell)
  module = LinenCell(cell)
  carry = module.initialize_carry(None, at(packed, 0).shape)
  variables = module.init(jax.random.key(0), carry, at(inputs, 0))
  want = cell.step(cell_params(variables), carry, at(inputs, 0))
  np.testing.assert_allclose(
    module.apply(variables, carry, at(inputs, 0))[1], want[1]
  )
  np.testing.assert_allclose(
    module.apply(variables, carry, at(packed, 0))[1], want[1]
  )


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_linen_rnn_matches_scan_with_mask(cell):
  inputs, packed, mask = sequences(cell)
  module = LinenRNN(cell)
  variables = module.init(jax.random.key(0), inputs, mask=mask)
  _, want = plstm.scan(cell, cell_params(variables), inputs, mask=mask)
  np.testing.assert_allclose(module.apply(variables, inputs, mask=mask), want)
  np.testing.assert_allclose(module.apply(variables, packed, mask=mask), want)


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_linen_nn_rnn_matches_scan(cell):
  inputs, packed, _ = sequences(cell)
  # The ALIF's delays are a "structure" collection: broadcast it too.
  rnn = linen.RNN(LinenCell(cell), variable_broadcast=("params", "structure"))
  variables = rnn.init(jax.random.key(0), packed)
  cell_variables = {k: v["cell"] for k, v in variables.items()}
  _, want = plstm.scan(cell, cell_params(cell_variables), inputs)
  np.testing.assert_allclose(
    rnn.apply(variables, packed), want, rtol=1e-6, atol=1e-6
  )


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_nnx_cell_matches_step_and_time_channel(cell):
  inputs, packed, _ = sequences(cell)
  module = NNXCell(cell, IN, rngs=nnx.Rngs(0))
  carry = module.initialize_carry(at(packed, 0).shape)
  want = cell.step(module.params, carry, at(inputs, 0))
  np.testing.assert_allclose(module(carry, at(inputs, 0))[1], want[1])
  np.testing.assert_allclose(module(carry, at(packed, 0))[1], want[1])


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_nnx_rnn_matches_scan_with_mask(cell):
  inputs, packed, mask = sequences(cell)
  module = NNXRNN(cell, IN, rngs=nnx.Rngs(0))
  _, want = plstm.scan(cell, module.params, inputs, mask=mask)
  np.testing.assert_allclose(module(inputs, mask=mask), want)
  np.testing.assert_allclose(module(packed, mask=mask), want)


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_nnx_rnn_of_cell_matches_scan(cell):
  inputs, packed, _ = sequences(cell)
  rnn = nnx.RNN(NNXCell(cell, IN, rngs=nnx.Rngs(0)))
  _, want = plstm.scan(cell, rnn.cell.params, inputs)
  np.testing.assert_allclose(rnn(packed), want, rtol=1e-6, atol=1e-6)


def test_param_names_are_the_cells():
  cell = CELLS[1]
  inputs, packed, _ = sequences(cell)
  names = set(cell.init(jax.random.key(0), IN))
  linen_params = LinenRNN(cell).init(jax.random.key(0), inputs)["params"]
  rnn_params = linen.RNN(LinenCell(cell)).init(jax.random.key(0), packed)
  assert set(linen_params) == names
  assert set(rnn_params["params"]["cell"]) == names
  assert set(nnx_params(NNXRNN(cell, IN, rngs=nnx.Rngs(0)))) == names
  assert set(nnx_params(NNXCell(cell, IN, rngs=nnx.Rngs(0)))) == names


def test_delays_are_structure_not_params():
  """The ALIF's integer delays: a linen "structure" variable and a plain
  nnx.Variable, so gradients see only the floating params."""
  cell = CELLS[3]
  inputs, _, mask = sequences(cell)
  variables = LinenRNN(cell).init(jax.random.key(0), inputs, mask=mask)
  assert set(variables["structure"]) == {"d_in", "d_rec"}
  assert not {"d_in", "d_rec"} & set(variables["params"])
  assert variables["structure"]["d_rec"].dtype == jnp.int32
  model = NNXRNN(cell, IN, rngs=nnx.Rngs(0))
  assert not {"d_in", "d_rec"} & set(nnx_params(model))
  grads = nnx.grad(lambda m: jnp.sum(m(inputs, mask=mask).v))(model)
  assert set(grads) == set(nnx_params(model))


def test_deterministic_false_turns_on_the_leak():
  cell = CELLS[1]
  inputs, _, _ = sequences(cell)
  variables = LinenRNN(cell).init(jax.random.key(0), inputs)
  evaluated = LinenRNN(cell).apply(variables, inputs)
  trained = LinenRNN(cell, deterministic=False).apply(variables, inputs)
  _, leaky = plstm.scan(cell, variables["params"], inputs, training=True)
  np.testing.assert_allclose(trained, leaky)
  assert not np.allclose(trained, evaluated, atol=1e-4)

  model = NNXRNN(cell, IN, rngs=nnx.Rngs(0))
  evaluated = model(inputs)
  model.train()
  np.testing.assert_allclose(
    model(inputs), plstm.scan(cell, nnx_params(model), inputs, training=True)[1]
  )
  model.eval()
  np.testing.assert_allclose(model(inputs), evaluated)


def sum_task(n=256, steps=12):
  """x [n, steps, 1] ~ N(0, 1); the label is whether the sequence sums > 0."""
  x = jax.random.normal(jax.random.key(2), (n, steps, 1))
  return x, (x.sum(axis=(1, 2)) > 0).astype(jnp.float32)


def bce(logits, y):
  return optax.sigmoid_binary_cross_entropy(logits[:, 0], y).mean()


class LinenClassifier(linen.Module):
  @linen.compact
  def __call__(self, x):
    return linen.Dense(1)(LinenRNN(plstm.LSTM(16))(x)[:, -1])


def test_linen_model_trains():
  x, y = sum_task()
  model = LinenClassifier()
  params = model.init(jax.random.key(0), x)
  tx = optax.adam(1e-2)
  opt_state = tx.init(params)

  def loss_fn(params):
    return bce(model.apply(params, x), y)

  @jax.jit
  def train_step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    with jax.numpy_dtype_promotion("standard"):  # optax.adam: float ** int.
      updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  first = loss_fn(params)
  for _ in range(100):
    params, opt_state, _ = train_step(params, opt_state)
  assert loss_fn(params) < 0.5 * first


class NNXClassifier(nnx.Module):
  def __init__(self, rngs):
    self.rnn = nnx.RNN(NNXCell(plstm.LSTM(16), 1, rngs=rngs))
    self.head = nnx.Linear(16, 1, rngs=rngs)

  def __call__(self, x):
    return self.head(self.rnn(x)[:, -1])


def test_nnx_model_trains():
  x, y = sum_task()
  model = NNXClassifier(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer):
    loss, grads = nnx.value_and_grad(lambda m: bce(m(x), y))(model)
    with jax.numpy_dtype_promotion("standard"):  # optax.adam: float ** int.
      optimizer.update(model, grads)
    return loss

  first = bce(model(x), y)
  for _ in range(100):
    train_step(model, optimizer)
  assert bce(model(x), y) < 0.5 * first
