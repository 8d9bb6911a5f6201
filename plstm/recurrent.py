"""Running cells over time: the one `jax.lax.scan` of plstm, masks and stacks.

A cell is an immutable object with
  `init(key, input_size) -> params`,
  `initial_carry(batch_size) -> carry`,
  `project(params, inputs) -> projected`: the part of a step that does not
    depend on the carry, applied here to a whole sequence at once,
  `recur(params, carry, projected, *, training) -> (carry, outputs)`,
  `step(params, carry, inputs, *, training)`: `recur` after `project`.

Shapes: B batch, T time, I inputs, H hidden units.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from plstm.dropout import variational_dropout
from plstm.phased_lstm import PhasedLSTM

Array = jax.Array


def _time_major(tree):
  return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), tree)


def _where(mask: Array, new, old):
  """Per sample, `new` where mask [B] is true, else `old` (pytrees)."""

  def select(n, o):
    m = mask.reshape(mask.shape + (1,) * (n.ndim - mask.ndim))
    return jnp.where(m, n, o)

  return jax.tree.map(select, new, old)


def _scan_layer(cell, params, inputs, mask, carry, training, unroll):
  """One cell over [B, T, ...] inputs; returns (carry, outputs [B, T, ...])."""
  projected = _time_major(cell.project(params, inputs))
  batch_size = jnp.shape(jax.tree.leaves(inputs)[0])[0]
  if carry is None:
    carry = cell.initial_carry(batch_size)

  def body(carry, xs):
    z, m = xs
    new_carry, y = cell.recur(params, carry, z, training=training)
    if m is None:
      return new_carry, y
    return _where(m, new_carry, carry), _where(
      m, y, jax.tree.map(jnp.zeros_like, y)
    )

  mask_tm = None if mask is None else jnp.swapaxes(mask, 0, 1)
  carry, outputs = jax.lax.scan(
    body, carry, (projected, mask_tm), unroll=unroll
  )
  return carry, _time_major(outputs)


def scan(
  cell,
  params,
  inputs,
  *,
  mask: Array | None = None,
  carry=None,
  training: bool = False,
  unroll: int = 1,
  residual: bool = False,
  skip: bool = False,
  dropout: float | Sequence[float] = 0.0,
  key: Array | None = None,
) -> tuple[Any, Any]:
  """Runs `cell` over batch-major inputs with `jax.lax.scan`.

  Args:
    cell: a cell, or a sequence of cells to stack. A stack runs layer by
      layer: each layer sees the whole output sequence of the one below and
      the same mask, and a Phased LSTM layer also gets the timestamps, so
      `inputs` for a stack holding one is `(x, t)`.
    params: the cell's params, or one per layer for a stack.
    inputs: a pytree of [B, T, ...] arrays; `(x [B, T, I], t [B, T])` for a
      Phased LSTM.
    mask: optional [B, T]; where it is 0 (padding) the carry passes through
      unchanged and the output is zero, so left-padded sequences end with the
      carry of their last real step, as in the official Phased LSTM code.
      (That code emits the carried h_{t-1} at padded steps; plstm emits zeros
      so that padding never leaks into sequence outputs. Final carries agree.)
    carry: initial carry (one per layer for a stack); zeros by default.
    training: passed to every step (the Phased LSTM leak is on only then).
    unroll: steps per loop iteration of `jax.lax.scan`.
    residual: stacks only: a layer whose input width equals its H adds its
      input to its output, h^l_t + x^l_t (a residual connection; the first
      layer usually differs in width and then has none). Padded steps stay
      zero.
    skip: stacks only: the outputs are every layer's outputs concatenated,
      [B, T, H_1 + ... + H_L], for a readout that sees all layers (the skip
      connections to the output of Graves 2013 and Pascanu et al. 2014).
    dropout: stacks only: the rate of variational dropout on each layer's
      input sequence (one rate for all layers, or one per layer). The mask
      [B, F] is drawn once per sequence and kept at every step, with
      1 / (1 - rate) scaling, and only when `training` (theano_lstm's
      per-layer masks; `plstm.dropout.variational_dropout`).
    key: the PRNG key for dropout; needed when training with a rate > 0.

  Returns:
    (final carry, outputs [B, T, H]), with a tuple of carries for a stack.
  """
  if not isinstance(cell, Sequence):
    if residual or skip or dropout:
      raise ValueError(
        "scan: residual, skip and dropout apply to a stack of cells; pass "
        "a list of cells."
      )
    return _scan_layer(cell, params, inputs, mask, carry, training, unroll)
  if len(params) != len(cell):
    raise ValueError(
      f"scan: a stack of {len(cell)} cells needs {len(cell)} params, got "
      f"{len(params)}."
    )
  carries = [None] * len(cell) if carry is None else carry
  rates = [dropout] * len(cell) if isinstance(dropout, int | float) else dropout
  if len(rates) != len(cell):
    raise ValueError(
      f"scan: dropout needs one rate per layer ({len(cell)}), got {len(rates)}."
    )
  keys = [None] * len(cell) if key is None else jax.random.split(key, len(cell))
  timed = any(isinstance(c, PhasedLSTM) for c in cell)
  x, t = inputs if timed else (inputs, None)
  finals, layer_outputs = [], []
  for layer, layer_params, layer_carry, rate, layer_key in zip(
    cell, params, carries, rates, keys, strict=True
  ):
    x_in = variational_dropout(layer_key, x, rate, training=training)
    layer_inputs = (x_in, t) if isinstance(layer, PhasedLSTM) else x_in
    layer_carry, h = _scan_layer(
      layer, layer_params, layer_inputs, mask, layer_carry, training, unroll
    )
    if residual and x.shape[-1] == h.shape[-1]:
      h = h + (x if mask is None else x * mask[..., None].astype(x.dtype))
    x = h
    finals.append(layer_carry)
    layer_outputs.append(h)
  if skip:
    x = jnp.concatenate(layer_outputs, axis=-1)
  return tuple(finals), x


def init_stack(cells: Sequence, key: Array, input_size: int) -> tuple:
  """Params for a stack of cells: layer l + 1 takes layer l's H as input."""
  params = []
  for cell, layer_key in zip(
    cells, jax.random.split(key, len(cells)), strict=True
  ):
    params.append(cell.init(layer_key, input_size))
    input_size = cell.hidden_size
  return tuple(params)
