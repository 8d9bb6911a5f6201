"""plstm.train.optimizers against NumPy re-derivations of theano_lstm."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from plstm.train import optimizers, packing

STEPS = 3
EPS = 1e-6  # theano_lstm's eps, for clipping and the optimisers.


def _tree(seed, scale=1.0):
  rng = np.random.default_rng(seed)
  return {
    "w": scale * rng.normal(size=(3, 2)),
    "b": scale * rng.normal(size=(2,)),
  }


def _np_clip(g, max_norm):
  """theano_lstm: g * min(max_norm, |g|) / (|g| + eps), per tensor."""
  norm = np.sqrt((g**2).sum())
  return g * min(max_norm, norm) / (norm + EPS)


def _np_run(name, params, grads, lr, max_norm=None, rho=0.95):
  """`create_optimization_updates` in float64 NumPy, accumulators at 0."""
  params = {k: v.copy() for k, v in params.items()}
  g_sum = {k: np.zeros_like(v) for k, v in params.items()}
  x_sum = {k: np.zeros_like(v) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in params.items()}
  for step, step_grads in enumerate(grads, start=1):
    for k, g in step_grads.items():
      if max_norm is not None:
        g = _np_clip(g, max_norm)
      if name == "adadelta":
        g_sum[k] = rho * g_sum[k] + (1 - rho) * g**2
        dx = -np.sqrt((x_sum[k] + EPS) / (g_sum[k] + EPS)) * g
        x_sum[k] = rho * x_sum[k] + (1 - rho) * dx**2
        params[k] = params[k] + dx
      elif name == "adagrad":
        g_sum[k] = g_sum[k] + g**2
        params[k] = params[k] - lr * g / np.sqrt(g_sum[k] + EPS)
      elif name == "sgd":
        params[k] = params[k] - lr * g
      else:  # Adam (Kingma & Ba, Algorithm 1) with optax's defaults.
        m[k] = 0.9 * m[k] + 0.1 * g
        g_sum[k] = 0.999 * g_sum[k] + 0.001 * g**2
        m_hat, v_hat = m[k] / (1 - 0.9**step), g_sum[k] / (1 - 0.999**step)
        params[k] = params[k] - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
  return params


def _run(config, params, grads):
  tx = optimizers.make(config)
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  state = tx.init(params)
  for step_grads in grads:
    g = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), step_grads)
    # optax's Adam mixes its int32 step count with floats.
    with jax.numpy_dtype_promotion("standard"):
      updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


@pytest.mark.parametrize("name", ["sgd", "adagrad", "adadelta", "adam"])
def test_first_steps_match_the_original_rules(name):
  config = optimizers.default_config(name)
  config.clip = "none"
  params = _tree(0)
  grads = [_tree(s, scale=0.1 * s) for s in range(1, STEPS + 1)]
  got = _run(config, params, grads)
  want = _np_run(name, params, grads, config.learning_rate)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
    got,
    want,
  )
  # The steps moved the params, so the comparison has teeth.
  assert not np.allclose(got["w"], params["w"], atol=1e-4)


@pytest.mark.parametrize("name", ["adadelta", "adagrad"])
def test_default_clipping_is_applied_before_the_step(name):
  config = optimizers.default_config(name)
  assert (config.clip, config.clip_value) == ("tensor", 5.0)
  params = _tree(0)
  # Large gradients, so the max_norm 5 clip is active.
  grads = [_tree(s, scale=10.0 * s) for s in range(1, STEPS + 1)]
  got = _run(config, params, grads)
  want = _np_run(name, params, grads, config.learning_rate, max_norm=5.0)
  unclipped = _np_run(name, params, grads, config.learning_rate)
  np.testing.assert_allclose(got["w"], want["w"], rtol=1e-5, atol=1e-7)
  assert not np.allclose(want["w"], unclipped["w"], rtol=1e-3)


def test_clip_by_tensor_norm_by_hand():
  # Norms 5 and 13; max_norm 6.5 shrinks only the second, to norm 6.5.
  grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([5.0, 12.0])}
  tx = optimizers.clip_by_tensor_norm(6.5)
  clipped, _ = tx.update(grads, tx.init(grads))
  np.testing.assert_allclose(
    clipped["a"], np.array([3.0, 4.0]) * 5 / (5 + EPS), rtol=1e-7
  )
  np.testing.assert_allclose(
    clipped["b"], np.array([5.0, 12.0]) * 6.5 / (13 + EPS), rtol=1e-7
  )
  np.testing.assert_allclose(clipped["b"], [2.5, 6.0], rtol=1e-6)


def _clipped(clip, clip_value, grads):
  config = optimizers.default_config("sgd")
  config.learning_rate = 1.0
  config.clip, config.clip_value = clip, clip_value
  tx = optimizers.make(config)
  updates, _ = tx.update(grads, tx.init(grads))
  return jax.tree.map(lambda u: -u, updates)


def test_global_and_elementwise_clipping_by_hand():
  grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.0, 12.0])}
  # Global norm 13 clipped to 6.5 halves every tensor.
  g = _clipped("global", 6.5, grads)
  np.testing.assert_allclose(g["a"], [1.5, 2.0], rtol=1e-6)
  np.testing.assert_allclose(g["b"], [0.0, 6.0], rtol=1e-6)
  g = _clipped("elementwise", 3.5, grads)
  np.testing.assert_allclose(g["a"], [3.0, 3.5])
  np.testing.assert_allclose(g["b"], [0.0, 3.5])
  g = _clipped("none", 0.0, grads)
  np.testing.assert_allclose(g["b"], [0.0, 12.0])


def test_defaults_are_the_originals():
  config = optimizers.default_config()
  assert config.name == "adadelta" and config.learning_rate == 1.0
  assert (config.adadelta.rho, config.adadelta.eps) == (0.95, 1e-6)
  assert config.adagrad.initial_accumulator_value == 0.0
  assert config.adagrad.eps == 1e-6
  assert optimizers.default_config("sgd").learning_rate == 0.01
  with pytest.raises(AttributeError):
    config.clip_norm = 1.0  # Locked: a mistyped field fails at once.


def test_unknown_names_raise():
  with pytest.raises(ValueError, match="optimizer.name.*rmsprop"):
    optimizers.default_config("rmsprop")
  config = optimizers.default_config()
  config.name = "rmsprop"
  with pytest.raises(ValueError, match="optimizer.name"):
    optimizers.make(config)
  config = optimizers.default_config()
  config.clip = "norm"
  with pytest.raises(ValueError, match="optimizer.clip must"):
    optimizers.make(config)
  config = optimizers.default_config()
  config.clip_value = 0.0
  with pytest.raises(ValueError, match="optimizer.clip_value"):
    optimizers.make(config)


def test_fields_override_the_defaults_and_a_mistyped_one_raises():
  config = optimizers.default_config(
    "adam", learning_rate=3e-3, clip="global", clip_value=10.0
  )
  assert (config.name, config.learning_rate) == ("adam", 3e-3)
  assert (config.clip, config.clip_value) == ("global", 10.0)
  assert config.adam.b2 == 0.999 and config.decay_every == 0
  with pytest.raises(KeyError, match="clip_norm"):
    optimizers.default_config("adam", clip_norm=10.0)


def test_adam_with_global_clipping_is_optax_chain():
  """The schema's Adam, clipped at a global norm of 10: optax's chain of
  `clip_by_global_norm(10)` and `adam(lr)`, update for update."""
  config = optimizers.default_config(
    "adam", learning_rate=1e-2, clip="global", clip_value=10.0
  )
  ours, theirs = (
    optimizers.make(config),
    optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-2)),
  )
  params = jax.tree.map(jnp.asarray, _tree(0))
  states = [tx.init(params) for tx in (ours, theirs)]
  for step in range(STEPS):
    grads = jax.tree.map(jnp.asarray, _tree(step + 1, scale=30.0))
    with jax.numpy_dtype_promotion("standard"):  # Adam's int32 count
      (a, states[0]), (b, states[1]) = (
        tx.update(grads, s, params)
        for tx, s in zip((ours, theirs), states, strict=True)
      )
    jax.tree.map(np.testing.assert_array_equal, a, b)


FIELDS = ("learning_rate", "decay_every", "decay_rate")


@pytest.mark.parametrize("traced", [False, True])
def test_staircase_decay_by_hand(traced):
  """lr x rate ** floor(step / every): 0.1 for steps 0-2, 0.05 for 3-5,
  0.025 from 6; traced (a packed sweep's values) as concrete."""
  config = optimizers.default_config(
    "adam", learning_rate=0.1, decay_every=3, decay_rate=0.5
  )
  steps = jnp.arange(8)
  if traced:
    outer = ml_collections.ConfigDict({"optimizer": config})
    values = {f"optimizer.{k}": config[k] for k in FIELDS}

    def rates(values):
      packed = packing.substitute(outer, values).optimizer
      return jax.vmap(optimizers.learning_rate(packed))(steps)

    got = jax.jit(rates)(values)
  else:
    got = jax.vmap(optimizers.learning_rate(config))(steps)
  expected = [0.1] * 3 + [0.05] * 3 + [0.025] * 2
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_no_decay_is_the_constant_learning_rate():
  config = optimizers.default_config("adam", learning_rate=0.1)
  assert optimizers.learning_rate(config) == 0.1
  config.decay_every, config.decay_rate = 5, 1.0
  assert optimizers.learning_rate(config) == 0.1
