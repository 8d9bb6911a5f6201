"""Tests of plstm.dropout: mask values, constancy over time, evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plstm.dropout import variational_dropout, variational_mask

B, T, F = 4, 6, 5


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_mask_values_and_mean(rate):
  mask = np.asarray(variational_mask(jax.random.key(0), (200, 500), rate))
  assert mask.dtype == np.float32
  assert set(np.unique(mask)) <= {0.0, np.float32(1.0 / (1.0 - rate))}
  # 1e5 Bernoulli draws: the dropped fraction and mean within ~5 sigma.
  np.testing.assert_allclose((mask == 0).mean(), rate, atol=0.01)
  np.testing.assert_allclose(mask.mean(), 1.0, atol=0.02)


def test_mask_is_deterministic_for_a_key():
  a = variational_mask(jax.random.key(3), (B, F), 0.5)
  b = variational_mask(jax.random.key(3), (B, F), 0.5)
  c = variational_mask(jax.random.key(4), (B, F), 0.5)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_rate_zero_mask_is_ones():
  mask = variational_mask(jax.random.key(0), (B, F), 0.0)
  np.testing.assert_array_equal(mask, np.ones((B, F)))


def test_same_mask_at_every_time_step():
  x = jnp.asarray(
    np.random.default_rng(0).uniform(1.0, 2.0, (B, T, F)), jnp.float32
  )
  key = jax.random.key(1)
  y = jax.jit(
    variational_dropout, static_argnums=2, static_argnames="training"
  )(key, x, 0.5, training=True)
  mask = variational_mask(key, (B, F), 0.5)
  np.testing.assert_allclose(y, x * mask[:, None, :], rtol=1e-6)
  ratio = np.asarray(y / x)
  np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape))
  # Some features are dropped and some kept, so the check above has teeth.
  assert 0 < (ratio[:, 0] == 0).sum() < B * F


def test_identity_at_evaluation_and_rate_zero():
  x = jnp.ones((B, T, F), jnp.bfloat16)
  assert variational_dropout(None, x, 0.5, training=False) is x
  assert variational_dropout(None, x, 0.0, training=True) is x
  y = variational_dropout(jax.random.key(0), x, 0.5, training=True)
  assert y.dtype == jnp.bfloat16


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_bad_rate_raises(rate):
  with pytest.raises(ValueError, match=r"\[0, 1\)"):
    variational_mask(jax.random.key(0), (B, F), rate)
  with pytest.raises(ValueError, match=r"\[0, 1\)"):
    variational_dropout(None, jnp.ones((B, T, F)), rate, training=False)


def test_training_needs_a_key():
  with pytest.raises(ValueError, match="key"):
    variational_dropout(None, jnp.ones((B, T, F)), 0.5, training=True)
