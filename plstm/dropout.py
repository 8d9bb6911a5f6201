"""Variational dropout: one mask per sequence, the same at every time step.

Shapes: B batch, T time, F features.
"""

import jax
import jax.numpy as jnp

from plstm.cell import is_traced

Array = jax.Array


def _check_rate(rate: float | Array) -> None:
  if not is_traced(rate) and not 0.0 <= rate < 1.0:
    raise ValueError(f"dropout rate must be in [0, 1), got {rate}.")


def variational_mask(
  key: Array, shape: tuple[int, ...], rate: float | Array, dtype=jnp.float32
) -> Array:
  r"""An inverted-dropout mask: 0 with probability `rate`, else 1/(1 - rate).

  .. math::
    m = \frac{\xi}{1 - p}, \qquad \xi \sim \mathrm{Bernoulli}(1 - p)

  so E[m] = 1 and evaluation needs no rescaling.

  Args:
    key: PRNG key; the same key gives the same mask.
    shape: the mask's shape, e.g. [B, F] for a layer of F features.
    rate: the drop probability p in [0, 1), a float or a JAX scalar
      (checked only when concrete).
    dtype: the mask's dtype.

  Notes:
    theano_lstm's `Dropout` keeps the raw {0, 1} mask in training and
    multiplies by (1 - p) at evaluation; the two agree up to the scale of the
    weights that read the masked values.
  """
  _check_rate(rate)
  keep = jax.random.bernoulli(key, 1.0 - rate, shape)
  return jnp.where(keep, 1.0 / (1.0 - rate), 0.0).astype(dtype)


def variational_dropout(
  key: Array | None, x: Array, rate: float | Array, *, training: bool
) -> Array:
  """Drops the same features of x [B, T, F] at every time step.

  One mask [B, F] from `variational_mask` multiplies x[:, t] for every t, as
  theano_lstm does by drawing its masks outside `theano.scan` and passing
  them as non-sequences. Applied to a layer's input sequence before
  `plstm.scan`, this is the original's per-layer `dropout[k] * layer_input`
  inside the step; use one key per layer.

  Args:
    key: PRNG key; may be None where the result is the identity.
    x: [B, T, F].
    rate: the drop probability in [0, 1), a float or a JAX scalar. A traced
      rate always draws the mask, which is exactly 1 at rate 0.
    training: False (evaluation) returns x unchanged, as does a concrete
      rate 0.

  Returns:
    x * mask[:, None, :], [B, T, F], in x's dtype.
  """
  _check_rate(rate)
  if not training or (not is_traced(rate) and rate == 0.0):
    return x
  if key is None:
    raise ValueError(
      "variational_dropout: training with a rate that may be > 0 needs a key."
    )
  b, _, f = x.shape
  return x * variational_mask(key, (b, f), rate, x.dtype)[:, None, :]
