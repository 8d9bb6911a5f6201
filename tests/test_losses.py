"""Tests of plstm.losses: windows, padding, hand values and gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from plstm.losses import masked_loss, sequence_cross_entropy, window_mask

B, T, K = 3, 6, 4
LENGTHS = jnp.array([2, 4, 1], jnp.int32)
STARTS = jnp.array([1, 0, 5], jnp.int32)


def _logits(seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=(B, T, K)), jnp.float32)


def _labels(seed=1):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(0, K, size=(B, T)), jnp.int32)


def _np_log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_window_mask_by_hand():
  want = [
    [0, 1, 1, 0, 0, 0],
    [1, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 1],
  ]
  np.testing.assert_array_equal(window_mask(LENGTHS, STARTS, T), want)


def test_masked_loss_equals_loss_on_the_unpadded_window():
  logits, labels = _logits(), _labels()
  cost = jax.jit(masked_loss)(logits, labels, LENGTHS, STARTS)
  for i in range(B):
    s, n = int(STARTS[i]), int(LENGTHS[i])
    log_p = _np_log_softmax(logits[i, s : s + n])
    want = -log_p[np.arange(n), np.asarray(labels[i, s : s + n])].sum()
    np.testing.assert_allclose(cost[i], want, rtol=1e-5)


def test_padding_labels_are_ignored():
  logits, labels = _logits(), _labels()
  outside = ~np.asarray(window_mask(LENGTHS, STARTS, T))
  padded = jnp.where(outside, -1, labels)
  np.testing.assert_allclose(
    masked_loss(logits, padded, LENGTHS, STARTS),
    masked_loss(logits, labels, LENGTHS, STARTS),
    rtol=1e-6,
  )
  # Changing the logits outside the windows changes nothing.
  shifted = jnp.where(outside[..., None], logits + 10.0, logits)
  np.testing.assert_allclose(
    masked_loss(shifted, padded, LENGTHS, STARTS),
    masked_loss(logits, labels, LENGTHS, STARTS),
    rtol=1e-6,
  )


def test_readme_example_one_label_at_the_third_output():
  # theano_lstm README: three outputs, codelength [1], label_starts [2].
  probs = np.array([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]]])
  labels = jnp.array([[-1, -1, 1]], jnp.int32)
  cost = masked_loss(
    jnp.asarray(np.log(probs), jnp.float32),
    labels,
    jnp.array([1], jnp.int32),
    jnp.array([2], jnp.int32),
  )
  np.testing.assert_allclose(cost, [-math.log(0.7)], rtol=1e-6)


def test_starts_default_to_zero():
  logits, labels = _logits(), _labels()
  np.testing.assert_array_equal(
    masked_loss(logits, labels, LENGTHS),
    masked_loss(logits, labels, LENGTHS, jnp.zeros(B, jnp.int32)),
  )


def _np_mean_gradient(logits, labels):
  """d mean_i(cost_i) / d logits = (softmax - onehot) * window / B."""
  p = np.exp(_np_log_softmax(logits))
  onehot = np.eye(K)[np.asarray(labels)]
  window = np.asarray(window_mask(LENGTHS, STARTS, T))[..., None]
  return (p - onehot) * window / B


def test_gradient_of_the_mean_is_one_over_b_of_the_sum():
  # The original's hand-written gradient, -1/(p g), scales the mean's
  # gradient by B^2 instead of 1/B; autodiff must give 1/B.
  logits, labels = _logits(), _labels()
  loss = lambda z, reduce: reduce(masked_loss(z, labels, LENGTHS, STARTS))
  g_mean = jax.grad(loss)(logits, jnp.mean)
  g_sum = jax.grad(loss)(logits, jnp.sum)
  np.testing.assert_allclose(g_mean, g_sum / B, rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(
    g_mean, _np_mean_gradient(logits, labels), rtol=1e-5, atol=1e-7
  )
  outside = ~np.asarray(window_mask(LENGTHS, STARTS, T))
  assert not np.asarray(g_mean)[outside].any()


def test_masked_loss_check_grads():
  labels = _labels()
  f = lambda z: masked_loss(z, labels, LENGTHS, STARTS)
  check_grads(f, (_logits(),), order=2, modes=["rev"], eps=1e-2)


def test_sequence_cross_entropy_is_the_mean_over_real_tokens():
  logits, labels = _logits(), _labels()
  mask = window_mask(LENGTHS, jnp.zeros(B, jnp.int32), T)
  log_p = _np_log_softmax(logits)
  nll = -np.take_along_axis(log_p, np.asarray(labels)[..., None], -1)[..., 0]
  want = nll[np.asarray(mask)].mean()
  for m in (mask, mask.astype(jnp.float32)):
    np.testing.assert_allclose(
      sequence_cross_entropy(logits, labels, m), want, rtol=1e-5
    )
  np.testing.assert_allclose(
    sequence_cross_entropy(logits, labels, mask),
    masked_loss(logits, labels, LENGTHS).sum() / int(LENGTHS.sum()),
    rtol=1e-6,
  )


def test_sequence_cross_entropy_without_real_tokens_is_zero():
  logits, labels = _logits(), _labels()
  mask = jnp.zeros((B, T), bool)
  loss, grad = jax.value_and_grad(sequence_cross_entropy)(logits, labels, mask)
  assert loss == 0.0
  assert not np.asarray(grad).any()


@pytest.mark.parametrize("reduce", [jnp.mean, jnp.sum])
def test_sequence_cross_entropy_gradient_is_zero_on_padding(reduce):
  logits, labels = _logits(), _labels()
  mask = window_mask(LENGTHS, STARTS, T)
  grad = jax.grad(lambda z: reduce(sequence_cross_entropy(z, labels, mask)))(
    logits
  )
  assert not np.asarray(grad)[~np.asarray(mask)].any()
  assert np.asarray(grad)[np.asarray(mask)].any()
