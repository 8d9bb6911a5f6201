"""plstm.train.task: keys split by purpose, host-side generators; and
plstm.trainable and plstm.merge for fixed leaves."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import plstm
from configs import freq_task as freq_config
from experiments import freq_task
from plstm.train import task as task_lib

SEEDS = range(5)
STEPS = range(50)


def _streams(seed: int) -> dict[str, list[bytes]]:
  """Every key the driver derives for `seed` over the first 50 steps (and
  epochs), by purpose, as bytes."""
  k = task_lib.seed_keys(seed)
  raw = lambda key: np.asarray(jax.random.key_data(key)).tobytes()
  fold = lambda key, i: raw(jax.random.fold_in(key, i))
  return {
    "init": [raw(k.init)],
    "structure": [raw(k.structure)],
    "data": [fold(k.data, s) for s in STEPS],  # train_batch's fold_in
    "eval": [raw(k.eval)] + [fold(k.eval, e) for e in STEPS],
    "noise": [fold(k.noise, s) for s in STEPS],  # the training loss's key
  }


def test_keys_are_distinct_across_purposes_and_seeds():
  every = [
    (seed, purpose, key)
    for seed in SEEDS
    for purpose, keys in _streams(seed).items()
    for key in keys
  ]
  seen = {}
  for seed, purpose, key in every:
    assert key not in seen, (seed, purpose, seen.get(key))
    seen[key] = (seed, purpose)
  assert len(seen) == len(SEEDS) * (1 + 1 + 50 + 51 + 50)


def test_seed_offsets_no_longer_alias():
  """The old scheme's collision: seed 0's step key key(0 + 2) folded with s
  was seed 2's data key key(2) folded with s."""
  for a, b in itertools.permutations(SEEDS, 2):
    ka, kb = task_lib.seed_keys(a), task_lib.seed_keys(b)
    for s in range(5):
      noise = jax.random.key_data(jax.random.fold_in(ka.noise, s))
      data = jax.random.key_data(jax.random.fold_in(kb.data, s))
      assert not np.array_equal(noise, data)


def test_seeds_get_their_own_training_batches():
  task = freq_task.make_task(freq_config.get_config("smoke"))
  xs = [
    np.asarray(task.train_batch(task_lib.seed_keys(s).data, 3)["x"])
    for s in SEEDS
  ]
  for a, b in itertools.combinations(xs, 2):
    assert not np.array_equal(a, b)


def test_numpy_rng_is_a_function_of_key_and_path():
  key = jax.random.key(7)
  draw = lambda *path: task_lib.numpy_rng(key, *path).integers(1 << 30, size=4)
  np.testing.assert_array_equal(draw(3), draw(3))
  assert not np.array_equal(draw(3), draw(4))
  assert not np.array_equal(draw(3), draw(3, 0))
  other = task_lib.numpy_rng(jax.random.key(8), 3).integers(1 << 30, size=4)
  assert not np.array_equal(draw(3), other)


def test_integer_leaves_are_carried_not_trained():
  params = {
    "w": jnp.ones((2, 3)),
    "d": jnp.arange(6, dtype=jnp.int32).reshape(2, 3),
    "b": jnp.zeros(3),
  }
  trained = plstm.trainable(params)
  assert trained["d"] is None
  assert len(jax.tree.leaves(trained)) == 2

  def loss(t):
    p = plstm.merge(t, params)
    return jnp.sum(p["w"] * p["d"].astype(jnp.float32)) + jnp.sum(p["b"])

  grads = jax.grad(loss)(trained)
  np.testing.assert_array_equal(grads["w"], params["d"])
  tx = optax.adam(0.1)
  with jax.numpy_dtype_promotion("standard"):  # optax's int32 count
    updates, _ = tx.update(grads, tx.init(trained), trained)
  new = plstm.merge(optax.apply_updates(trained, updates), params)
  assert new["d"].dtype == jnp.int32
  np.testing.assert_array_equal(new["d"], params["d"])
  assert not np.array_equal(new["w"], params["w"])
