"""Faster and leaner ways to run one cell over time than `plstm.scan`.

`scan`: `plstm.scan` of one cell, arranged for XLA's CPU backend, where it
trains 1.4-3x faster than `plstm.scan` (scripts/bench.py).
`remat_scan`: `plstm.scan` of one cell with the time axis cut into chunks
whose activations are recomputed in the backward pass, so that training at
T = 100,000 fits in memory.

Shapes: B batch, T time, I inputs, H hidden units.
"""

from typing import Any

import jax
import jax.numpy as jnp

from plstm.recurrent import _scan_layer, _time_major, _where

Array = jax.Array


def scan(
  cell,
  params,
  inputs,
  *,
  mask: Array | None = None,
  carry=None,
  training: bool = False,
  unroll: int = 1,
) -> tuple[Any, Any]:
  """`plstm.scan` of one cell, faster on CPU; same arguments and results.

  Three changes to the loop, each measured on a 2-core CPU (the README's
  benchmark; none changes the maths):

  1. The input projection is not hoisted: each step runs `cell.step` on
     x_t. Hoisting makes a [T, B, 4H] buffer whose per-step slices XLA:CPU
     fuses into the gates' exp/tanh, which then leave the fast vectorised
     path (about 8x slower per element).
  2. x_t reaches the step through the carry, read one step ahead, for the
     same reason: the step's exp/tanh never read a slice of the sequence.
  3. Each step is rematerialised (`jax.checkpoint` with `nothing_saveable`):
     the backward pass recomputes the step from its carry instead of
     reading about ten stored [B, H] activations per step. The extra matrix
     product costs less than the stores and loads it saves.

  Args:
    cell, params, inputs, mask, carry, training, unroll: as `plstm.scan`
      for a single cell (inputs a pytree of [B, T, ...] arrays).

  Returns:
    (final carry, outputs [B, T, ...]), equal to `plstm.scan`'s to float
    tolerance.
  """
  xs = _time_major(inputs)
  steps = jnp.shape(jax.tree.leaves(xs)[0])[0]
  if carry is None:
    carry = cell.initial_carry(jnp.shape(jax.tree.leaves(inputs)[0])[0])
  ms = None if mask is None else jnp.swapaxes(mask, 0, 1)
  at = lambda t: jax.tree.map(lambda a: a[t], (xs, ms))

  def body(state, _):
    carry, x_t, t = state
    x, m = x_t
    # Read step t + 1 now (clamped at the end, where it goes unused).
    x_next = jax.tree.map(
      lambda a: jax.lax.dynamic_index_in_dim(
        a, jnp.minimum(t + 1, steps - 1), keepdims=False
      ),
      (xs, ms),
    )
    new_carry, y = cell.step(params, carry, x, training=training)
    if m is not None:
      new_carry = _where(m, new_carry, carry)
      y = _where(m, y, jax.tree.map(jnp.zeros_like, y))
    return (new_carry, x_next, t + 1), y

  body = jax.checkpoint(body, policy=jax.checkpoint_policies.nothing_saveable)
  (carry, _, _), outputs = jax.lax.scan(
    body, (carry, at(0), jnp.int32(0)), length=steps, unroll=unroll
  )
  return carry, _time_major(outputs)


def remat_scan(
  cell,
  params,
  inputs,
  *,
  chunk: int,
  mask: Array | None = None,
  carry=None,
  training: bool = False,
  unroll: int = 1,
) -> tuple[Any, Any]:
  """`plstm.scan` of one cell, rematerialised chunk by chunk.

  The T steps run as T / chunk chunks of `chunk` steps. Each chunk (its
  input projection included) is wrapped in `jax.checkpoint`, so the forward
  pass keeps only the carry at each chunk boundary and the outputs, and the
  backward pass recomputes one chunk's activations at a time. Memory for the
  activations falls from O(T) steps to O(T / chunk + chunk) (least at chunk
  ~ sqrt(T)), for about one more forward pass of compute.

  Args:
    cell, params, inputs, mask, carry, training, unroll: as `plstm.scan`
      for a single cell: inputs a pytree of [B, T, ...] arrays.
    chunk: steps per chunk; must divide T.

  Returns:
    (final carry, outputs [B, T, ...]), equal to `plstm.scan`'s.
  """
  steps = jnp.shape(jax.tree.leaves(inputs)[0])[1]
  if chunk <= 0 or steps % chunk:
    raise ValueError(
      f"remat_scan: chunk must be a positive divisor of T = {steps}, got "
      f"{chunk}."
    )
  n = steps // chunk
  batch_size = jnp.shape(jax.tree.leaves(inputs)[0])[0]
  if carry is None:
    carry = cell.initial_carry(batch_size)

  def chunked(a: Array) -> Array:
    """[B, T, ...] -> [T / chunk, B, chunk, ...]."""
    a = jnp.reshape(a, (a.shape[0], n, chunk, *a.shape[2:]))
    return jnp.swapaxes(a, 0, 1)

  def unchunked(a: Array) -> Array:
    a = jnp.swapaxes(a, 0, 1)
    return jnp.reshape(a, (a.shape[0], steps, *a.shape[3:]))

  @jax.checkpoint
  def body(carry, xs):
    x, m = xs
    return _scan_layer(cell, params, x, m, carry, training, unroll)

  xs = (jax.tree.map(chunked, inputs), None if mask is None else chunked(mask))
  carry, outputs = jax.lax.scan(body, carry, xs)
  return carry, jax.tree.map(unchunked, outputs)
