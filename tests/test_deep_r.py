"""Tests of plstm.deep_r: the budget, signs, L1 and noise, schedules, masks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plstm.deep_r import deep_r


def _n_active(tree) -> int:
  return sum(int(np.count_nonzero(w)) for w in jax.tree.leaves(tree))


def _sparse(key, shape, density, scale=0.03):
  k_w, k_m = jax.random.split(key)
  w = scale * jax.random.normal(k_w, shape)
  return jnp.where(jax.random.uniform(k_m, shape) < density, w, 0.0)


def _scan(tx, params, grads_fn, num_steps):
  """Steps `tx` with grads_fn(step); returns the last carry, params per step."""

  def body(carry, step):
    params, state = carry
    # optax's Adam mixes its int32 count with floats (strict promotion).
    with jax.numpy_dtype_promotion("standard"):
      updates, state = tx.update(grads_fn(step), state, params)
    params = optax.apply_updates(params, updates)
    return (params, state), params

  return jax.lax.scan(body, (params, tx.init(params)), jnp.arange(num_steps))


def _run(tx, params, grads_fn, num_steps):
  run = jax.jit(lambda p: _scan(tx, p, grads_fn, num_steps))
  return jax.device_get(run(params))


def _step(tx, w, u):
  """The params after one update `u` from the initial state (jitted)."""
  step = lambda w, u: optax.apply_updates(w, tx.update(u, tx.init(w), w)[0])
  return jax.device_get(jax.jit(step)(w, u))


def _rewired():
  keys = jax.random.split(jax.random.key(0), 2)
  return {
    "w_in": _sparse(keys[0], (8, 12), 0.1),
    "w_rec": _sparse(keys[1], (12, 12), 0.1),
    "b": jnp.zeros(12),
  }


MASK = {"w_in": True, "w_rec": True, "b": False}
BUDGET = int(96 * 0.2 + 144 * 0.2)


def _random_grads(step):
  key = jax.random.fold_in(jax.random.key(1), step)
  return jax.tree.map(lambda w: jax.random.normal(key, w.shape), _rewired())


def _rewire_history(**seed_or_key):
  """200 steps of Adam and DEEP R (p = 0.2) on `_rewired()`, random grads."""
  tx = optax.chain(
    optax.adam(1e-2),
    # MASK as a callable.
    deep_r(
      1e-2,
      0.2,
      l1=1e-2,
      temperature=1e-5,
      mask=lambda params: {k: k != "b" for k in params},
      **seed_or_key,
    ),
  )
  (_, state), history = _scan(tx, _rewired(), _random_grads, 200)
  return state[1].inner_state.signs, history


_rewire_run = jax.jit(lambda seed: _rewire_history(seed=seed))
_rewire_run_key = jax.jit(lambda key: _rewire_history(key=key))


def test_budget_is_exact_every_step_and_signs_never_flip():
  params = _rewired()
  assert _n_active({"a": params["w_in"], "b": params["w_rec"]}) < BUDGET
  signs, history = jax.device_get(_rewire_run(0))
  rewired = [history["w_in"], history["w_rec"]]
  counts = sum(np.sum(w != 0, axis=(1, 2)) for w in rewired)
  np.testing.assert_array_equal(counts, BUDGET)
  for w, s in zip(rewired, (signs["w_in"], signs["w_rec"]), strict=True):
    assert np.all(s * w >= 0), "a sign flipped"
    active = w != 0
    # Synapses died (left at exactly 0) and were born again.
    assert np.sum(active[:-1] & ~active[1:]) > 50
    assert np.sum(~active[:-1] & active[1:]) > 50


def test_mask_leaves_other_params_to_the_optimiser():
  _, history = jax.device_get(_rewire_run(0))
  b = {"b": jnp.zeros(12)}
  grads_fn = lambda step: {"b": _random_grads(step)["b"]}
  _, adam_only = _run(optax.adam(1e-2), b, grads_fn, 200)
  # Equal up to the rounding of differently fused programs.
  np.testing.assert_allclose(history["b"], adam_only["b"], rtol=1e-5, atol=1e-6)
  assert np.any(history["b"] < 0)


def test_deterministic_for_a_seed():
  a, b, c = jax.device_get((_rewire_run(0), _rewire_run(0), _rewire_run(1)))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a[1]["w_rec"][-1], c[1]["w_rec"][-1])


def test_a_key_rewires_as_its_seed_and_two_keys_differ():
  by_seed, by_key, other = jax.device_get(
    (
      _rewire_run(3),
      _rewire_run_key(jax.random.key(3)),
      _rewire_run_key(jax.random.key(4)),
    )
  )
  jax.tree.map(np.testing.assert_array_equal, by_seed, by_key)
  assert not np.array_equal(by_key[1]["w_rec"][-1], other[1]["w_rec"][-1])
  with pytest.raises(ValueError, match="seed or key, not both"):
    deep_r(0.1, 0.5, seed=0, key=jax.random.key(0))


def test_reconnections_split_in_proportion_to_the_sizes():
  params = {"a": jnp.zeros((10, 10)), "b": jnp.zeros((10, 30))}
  new = jax.tree.map(np.count_nonzero, _step(deep_r(0.1, 0.5), params, params))
  # 200 draws with P(b) = 3/4: a gets 50 +- 6.1.
  assert new["a"] + new["b"] == 200
  assert abs(new["a"] - 50) < 25


def test_dormant_stay_dormant_under_a_reviving_gradient():
  s = jnp.array([[1.0, 1.0, -1.0, -1.0]])
  params = {"w": jnp.array([[0.5, 0.0, -0.3, 0.0]])}
  tx = optax.chain(optax.adam(0.1), deep_r(0.1, 0.5, signs={"w": s}))
  # Adam moves every entry by +0.1 s: towards activity, dormant ones too.
  _, history = _run(tx, params, lambda _: {"w": -s}, 10)
  w = history["w"][:, 0]
  np.testing.assert_array_equal(w[:, [1, 3]], 0.0)
  np.testing.assert_allclose(w[-1, [0, 2]], [1.5, -1.3], rtol=1e-5)


def test_l1_shrinks_by_lr_l1_and_a_crossing_synapse_is_zero():
  w = jnp.array([0.5, -0.25, 0.01, 0.0, 0.0, 0.0])
  s = jnp.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])
  tx = deep_r(0.1, 0.5, l1=0.2, signs=s)
  w = _step(tx, w, jnp.zeros(6))
  np.testing.assert_allclose(w[:2], [0.48, -0.23], rtol=1e-6)
  assert w[2] == 0.0
  # The death is refilled at one of the synapses dormant before the step.
  np.testing.assert_array_equal(w[3:] * s[3:] > 0, w[3:] != 0)
  np.testing.assert_array_equal(
    np.sort(np.abs(w[3:])), [0.0, 0.0, np.float32(1e-12)]
  )


def test_noise_has_std_sqrt_2_lr_t():
  lr, temperature, l1 = 0.01, 0.5, 1.0
  w = jnp.ones((100, 100))
  tx = deep_r(lr, 1.0, l1=l1, temperature=temperature)
  dw = _step(tx, w, jnp.zeros_like(w)) - 1.0
  # The mean's standard error is 1e-3.
  np.testing.assert_allclose(np.mean(dw), -lr * l1, atol=4e-3)
  np.testing.assert_allclose(
    np.std(dw), np.sqrt(2 * lr * temperature), rtol=0.03
  )


def test_schedule_sets_the_l1_step():
  schedule = optax.exponential_decay(0.1, 2, 0.5, staircase=True)
  _, history = _run(
    deep_r(schedule, 1.0, l1=0.1),
    jnp.array([1.0, -1.0]),
    lambda _: jnp.zeros(2),
    5,
  )
  expected = 1.0 - np.cumsum([0.01, 0.01, 0.005, 0.005, 0.0025])
  np.testing.assert_allclose(history[:, 0], expected, rtol=1e-6)
  np.testing.assert_allclose(history[:, 1], -expected, rtol=1e-6)


def test_inject_hyperparams_learning_rate_sets_the_l1_step():
  tx = optax.inject_hyperparams(deep_r, static_args=("connectivity", "mask"))(
    learning_rate=0.1, connectivity=1.0, l1=0.1
  )
  w = jnp.array([1.0, -1.0])
  update = jax.jit(tx.update)
  state = tx.init(w)
  updates, state = update(jnp.zeros(2), state, w)
  np.testing.assert_allclose(updates, [-0.01, 0.01], rtol=1e-5)
  state.hyperparams["learning_rate"] = jnp.asarray(0.5)
  updates, _ = update(jnp.zeros(2), state, w)
  np.testing.assert_allclose(updates, [-0.05, 0.05], rtol=1e-5)


def test_traced_connectivity_is_refused_clearly():
  with pytest.raises(ValueError, match="static_args"):
    optax.inject_hyperparams(deep_r)(0.1, 0.5).init(jnp.ones(4))


def test_errors_name_the_fix():
  tx = deep_r(0.1, 0.5)
  with pytest.raises(ValueError, match="needs the params"):
    tx.update(jnp.ones(4), tx.init(jnp.ones(4)))
  with pytest.raises(ValueError, match="check `mask`"):
    deep_r(0.1, 0.5, mask={"w": False}).init({"w": jnp.ones(4)})


def test_given_signs_hold_in_rows_that_start_empty():
  # Dale's law: presynaptic rows 0-7 excitatory, 8-9 inhibitory.
  row_sign = jnp.array([1.0] * 8 + [-1.0] * 2)
  signs = row_sign[:, None] * jnp.ones((10, 10))
  w = jnp.abs(_sparse(jax.random.key(3), (10, 10), 0.3))
  w = (signs * w).at[5:].set(0.0)
  tx = optax.chain(optax.adam(1e-2), deep_r(1e-2, 0.5, l1=1e-2, signs=signs))

  def grads_fn(step):
    return jax.random.normal(
      jax.random.fold_in(jax.random.key(4), step), w.shape
    )

  _, history = _run(tx, w, grads_fn, 20)
  assert np.all(np.asarray(signs) * history >= 0)
  # The inhibitory rows started empty and were reconnected.
  assert np.sum(history[-1, 8:] < 0) > 5


def test_default_signs_are_the_init_signs_and_random_at_zeros():
  w = jnp.zeros(200).at[:4].set(jnp.array([0.5, -0.5, 1e-3, -1e-3]))
  signs = np.asarray(jax.jit(deep_r(0.1, 0.1, seed=5).init)(w).signs)
  np.testing.assert_array_equal(signs[:4], [1.0, -1.0, 1.0, -1.0])
  assert set(np.unique(signs[4:]).tolist()) == {-1.0, 1.0}


def _numpy_step(w, u, s, lr, l1, p, epsilon):
  """One DEEP R step in NumPy where reconnection is forced (few candidates)."""
  theta = np.where(s * w > 0, s * (w + u), 0.0)
  theta = np.maximum(np.where(theta > 0, theta - lr * l1, 0.0), 0.0)
  n = max(0, int(w.size * p) - int(np.sum(theta > 0)))
  candidates = w == 0
  assert n >= np.sum(candidates), "reconnection would be random"
  return np.where(candidates, s * epsilon, s * theta)


def test_one_step_matches_numpy():
  """Unjitted, which the other tests are not."""
  w = np.array([[0.3, 0.0, -0.2], [0.004, -0.5, 0.1]], np.float32)
  s = np.array([[1, -1, -1], [1, -1, 1]], np.float32)
  u = np.array([[0.02, -0.7, 0.05], [-0.01, -0.03, 0.2]], np.float32)
  tx = deep_r(0.1, 0.85, l1=0.05, signs=s)
  updates, _ = tx.update(
    jnp.asarray(u), tx.init(jnp.asarray(w)), jnp.asarray(w)
  )
  new_w = optax.apply_updates(jnp.asarray(w), updates)
  expected = _numpy_step(w, u, s, 0.1, 0.05, 0.85, 1e-12)
  np.testing.assert_allclose(new_w, expected, rtol=1e-6, atol=0)
  assert _n_active(new_w) == 5


def test_adam_on_w_is_the_originals_adam_on_theta():
  """Sign equivariance: NumPy Adam on theta, no reconnection."""
  lr, l1, b1, b2, eps = 0.05, 0.01, 0.9, 0.999, 1e-8
  k_w, k_s = jax.random.split(jax.random.key(6))
  s = np.asarray(jax.random.rademacher(k_s, (4, 5), jnp.float32))
  theta = np.abs(np.asarray(0.1 * jax.random.normal(k_w, (4, 5)), np.float64))
  grads = np.asarray(jax.random.normal(jax.random.key(7), (30, 4, 5)))
  # The budget, int(20 * 0.05) = 1, is never reached from above.
  tx = optax.chain(optax.adam(lr), deep_r(lr, 0.05, l1=l1, signs=s))
  _, history = _run(
    tx, jnp.asarray(s * theta, jnp.float32), lambda t: jnp.asarray(grads)[t], 30
  )
  m = v = np.zeros_like(theta)
  for t in range(30):
    # The original: dL/dtheta = dL/dw * s for every synapse, dormant too.
    g = grads[t] * s
    active = theta > 0
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
    m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
    theta = np.where(active, theta - lr * m_hat / (np.sqrt(v_hat) + eps), 0.0)
    theta = np.where(theta > 0, theta - lr * l1, theta)  # negative stays
    w = np.where(theta > 0, s * theta, 0.0)
    np.testing.assert_allclose(history[t], w, rtol=1e-4, atol=1e-6)
  assert 1 < _n_active(history[-1]) < 15


def test_a_survivor_that_rounds_to_zero_counts_as_dormant():
  # theta = ulp(t) > 0 survives, but apply_updates gives 1 + (ulp - 1) = 0.
  t = np.float32(1.0) + np.float32(-0.999)
  l1 = float(np.nextafter(t, np.float32(0.0)))
  w = jnp.array([1.0, 0.0])
  tx = deep_r(1.0, 0.5, l1=l1, signs=jnp.ones(2))
  new_w = _step(tx, w, jnp.array([-0.999, 0.0]))
  np.testing.assert_array_equal(new_w, [0.0, np.float32(1e-12)])


def test_vmap_over_seeds_matches_a_loop():
  tx = optax.chain(optax.adam(1e-2), deep_r(1e-2, 0.2, l1=1e-2, mask=MASK))
  replicas = [_rewired(), jax.tree.map(lambda w: -w, _rewired())]
  stacked = jax.tree.map(lambda *w: jnp.stack(w), *replicas)
  grads = jax.tree.map(jnp.ones_like, stacked)

  def step(params, grads):
    with jax.numpy_dtype_promotion("standard"):
      updates, _ = tx.update(grads, tx.init(params), params)
    return optax.apply_updates(params, updates)

  vmapped = jax.jit(jax.vmap(step))(stacked, grads)
  step = jax.jit(step)
  for i, params in enumerate(replicas):
    looped = step(params, jax.tree.map(jnp.ones_like, params))
    leaves = jax.tree.leaves(looped)
    for a, b in zip(jax.tree.leaves(vmapped), leaves, strict=True):
      # The same synapses are active; fusion may round differently.
      np.testing.assert_array_equal(a[i] != 0, b != 0)
      np.testing.assert_allclose(a[i], b, rtol=1e-6)
  # The seed may be traced, e.g. vmapped with the params.
  init = lambda seed: deep_r(0.1, 0.5, seed=seed).init(jnp.ones(3)).key
  keys = jax.random.key_data(jax.jit(jax.vmap(init))(jnp.arange(2)))
  assert not np.array_equal(*keys)
  # So may the key (a seed's structure key, in plstm.train).
  init = lambda key: deep_r(0.1, 0.5, key=key).init(jnp.ones(3)).key
  keys = jax.jit(jax.vmap(init))(jax.random.split(jax.random.key(0)))
  assert not np.array_equal(*jax.random.key_data(keys))
