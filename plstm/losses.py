"""Sequence losses over padded batches: label windows and padding masks.

Shapes: B batch, T time, K classes.
"""

import jax
import jax.numpy as jnp
import optax

from plstm import parallel

Array = jax.Array


def window_mask(lengths: Array, starts: Array, num_steps: int) -> Array:
  """Bool [B, T]: true where start <= t < start + length.

  Args:
    lengths: [B] integer window lengths.
    starts: [B] integer window starts.
    num_steps: T.
  """
  starts = jnp.asarray(starts)[:, None]
  t = jnp.arange(num_steps, dtype=starts.dtype)
  return (t >= starts) & (t < starts + jnp.asarray(lengths)[:, None])


def _token_nll(logits: Array, labels: Array, mask: Array) -> Array:
  """-log softmax(logits)[label] where mask [B, T] holds, else 0: [B, T]."""
  # Labels in padding may be anything (-1, K); gather a valid class there.
  labels = jnp.where(mask, labels, 0)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return jnp.where(mask, nll, 0.0)


def masked_loss(
  logits: Array, labels: Array, lengths: Array, starts: Array | None = None
) -> Array:
  r"""theano_lstm's `masked_loss`: per example, the NLL over a label window.

  .. math::
    \mathrm{cost}_i = -\sum_{t = s_i}^{s_i + \ell_i - 1}
      \log \mathrm{softmax}(z_{i,t})[y_{i,t}]

  Args:
    logits: z [B, T, K], unnormalised scores. Log-probabilities work too,
      since log_softmax leaves them unchanged.
    labels: y [B, T] integers in [0, K) inside the windows; outside them they
      are ignored and may hold any padding value.
    lengths: l [B], the number of labels of each example.
    starts: s [B], the time step of each example's first label; zeros (the
      tutorial's case) when omitted.

  Returns:
    cost [B], float32 for float32 logits.

  Notes:
    The original takes probabilities (the output of a softmax) and takes their
    log; taking logits is the numerically stable form of the same cost. It
    raises on a label outside [0, K); under jit no check is possible, and
    such a label inside a window gives NaN. Its hand-written gradient is
    -1/(p g) for an upstream gradient g, right only for g = 1 (`.sum()`): with
    `.mean()` it is B^2 times the true one instead of 1/B. Here the gradient
    is JAX's autodiff of the cost above.
  """
  if starts is None:
    starts = jnp.zeros_like(jnp.asarray(lengths))
  mask = window_mask(lengths, starts, labels.shape[1])
  return _token_nll(logits, labels, mask).sum(axis=1)


def sequence_cross_entropy(logits: Array, labels: Array, mask: Array) -> Array:
  r"""The mean cross-entropy over the real (unpadded) tokens of a batch.

  .. math::
    L = \frac{\sum_{i,t} m_{i,t} \, (-\log \mathrm{softmax}(z_{i,t})[y_{i,t}])}
             {\max(1, \sum_{i,t} m_{i,t})}

  Args:
    logits: z [B, T, K].
    labels: y [B, T]; ignored where the mask is 0.
    mask: m [B, T], bool or {0, 1}; 1 for real tokens, 0 for padding.

  Returns:
    The scalar L; 0 for a batch with no real tokens. Inside a data-parallel
    step (`plstm.parallel`) the sums are the whole batch's.
  """
  mask = jnp.asarray(mask).astype(bool)
  total = _token_nll(logits, labels, mask).sum()
  count = jnp.maximum(mask.sum(), 1).astype(total.dtype)
  return parallel.global_mean(total, count)
