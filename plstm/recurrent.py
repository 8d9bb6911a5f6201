"""Running cells over time: plstm's loop over steps, masks, stacks, remat.

Any cell of the contract in `plstm.cell` runs here; this module holds the
one `jax.lax.scan` of the library.

Shapes: B batch, T time, I inputs, H hidden units.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from plstm.cell import (
  Array,
  describe,
  is_trained,
  timed,
  timed_inputs,
)
from plstm.dropout import variational_dropout


def check_params(cell, params, input_size: int, where: str = "scan") -> None:
  """Refuses params unlike `cell.init(key, input_size)`'s.

  Compares the params' tree, each leaf's shape and its kind (floating or
  integer) with `jax.eval_shape` of `cell.init`: a trace-time check, which
  costs nothing in a compiled step.

  Raises:
    ValueError: naming the first param that is missing, extra, or of
      another shape or kind, e.g. "params['w_x'] has shape (3, 8), expected
      (2, 8) for PhasedLSTM(2) on 2 input features".
  """
  flat = jax.tree_util.tree_flatten_with_path
  keystr = jax.tree_util.keystr
  shapes = jax.eval_shape(lambda k: cell.init(k, input_size), jax.random.key(0))
  want = {keystr(path): leaf for path, leaf in flat(shapes)[0]}
  got = {keystr(path): leaf for path, leaf in flat(params)[0]}
  on = f"for {describe(cell)} on {input_size} input features"
  for name, spec in want.items():
    if name not in got:
      raise ValueError(
        f"{where}: params{name} is missing, expected shape {spec.shape} {on}; "
        f"draw the params with cell.init(key, {input_size})."
      )
    shape, dtype = jnp.shape(got[name]), jnp.result_type(got[name])
    if shape != spec.shape:
      raise ValueError(
        f"{where}: params{name} has shape {shape}, expected {spec.shape} {on}."
      )
    if is_trained(dtype) != is_trained(spec):
      raise ValueError(
        f"{where}: params{name} is {dtype}, expected {spec.dtype} (or another "
        f"{'floating' if is_trained(spec) else 'integer'} dtype) {on}."
      )
  extra = sorted(got.keys() - want.keys())
  if extra:
    raise ValueError(f"{where}: params{extra[0]} is not a param {on}.")


def _param_dtype(params):
  """The dtype of the params' first floating leaf; float32 if none."""
  for leaf in jax.tree.leaves(params):
    if jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      return jnp.result_type(leaf)
  return jnp.float32


def _time_major(tree):
  return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), tree)


def _where(mask: Array, new, old):
  """Per sample, `new` where mask [B] is true, else `old` (pytrees)."""

  def select(n, o):
    m = mask.reshape(mask.shape + (1,) * (n.ndim - mask.ndim))
    return jnp.where(m, n, o)

  return jax.tree.map(select, new, old)


def _loop(cell, params, inputs, mask, carry, training, unroll, hoist):
  """One cell over [B, T, ...] inputs from `carry`: the loop over steps.

  The step's inputs are read one step ahead into the loop's carry. With
  `hoist`, `cell.project` runs on the whole sequence first and the loop runs
  `cell.recur` (the usual arrangement). Without, as measured faster on
  XLA:CPU for the LSTM and Phased LSTM (docs/performance.md), the loop runs
  `cell.step` and each step is
  rematerialised (`jax.checkpoint`,
  `nothing_saveable`): the backward pass recomputes a step from its carry
  instead of storing and reloading about ten [B, H] activations per step.
  """
  if not hasattr(cell, "project"):
    hoist = False
  elif not hoist:  # The cell's checks of a whole sequence, at trace time.
    jax.eval_shape(cell.project, params, inputs)
  xs = _time_major(cell.project(params, inputs) if hoist else inputs)
  ms = None if mask is None else jnp.swapaxes(mask, 0, 1)
  steps = jnp.shape(jax.tree.leaves(xs)[0])[0]
  run = cell.recur if hoist else cell.step

  def at(t):
    """Step t of the inputs and mask; zeros when T = 0 (never read then)."""

    def index(a):
      if a.shape[0] == 0:
        return jnp.zeros(a.shape[1:], a.dtype)
      return jax.lax.dynamic_index_in_dim(a, t, keepdims=False)

    return jax.tree.map(index, (xs, ms))

  def body(state, _):
    carry, (x, m), t = state
    xs_next = at(jnp.minimum(t + 1, steps - 1))  # unused after the last step
    new_carry, y = run(params, carry, x, training=training)
    if m is not None:
      new_carry = _where(m, new_carry, carry)
      y = _where(m, y, jax.tree.map(jnp.zeros_like, y))
    return (new_carry, xs_next, t + 1), y

  if not hoist:
    body = jax.checkpoint(body, policy=jax.checkpoint_policies.nothing_saveable)
  start = (carry, at(0), jnp.int32(0))
  (carry, _, _), outputs = jax.lax.scan(
    body, start, length=steps, unroll=unroll
  )
  return carry, _time_major(outputs)


def _scan_layer(
  cell, params, inputs, mask, carry, *, training, unroll, hoist, remat_chunk
):
  """One cell over [B, T, ...] inputs; returns (carry, outputs [B, T, ...]).

  First, at trace time, the checks of `scan`'s Raises.
  """
  batch_size, steps = jnp.shape(jax.tree.leaves(inputs)[0])[:2]
  if mask is not None and jnp.shape(mask) != (batch_size, steps):
    raise ValueError(
      f"scan: mask has shape {jnp.shape(mask)}, expected [B, T] = "
      f"{(batch_size, steps)} from the inputs."
    )
  x = timed_inputs(cell, inputs)[0] if timed(cell) else inputs
  # Cells without `init` (internal wrappers) or whose x is not one
  # [B, T, I] array have no input size I to check against.
  one_array = isinstance(x, jax.Array | np.ndarray) and x.ndim == 3
  if hasattr(cell, "init") and one_array:
    check_params(cell, params, x.shape[-1])
  if carry is None:
    carry = cell.initial_carry(batch_size, _param_dtype(params))
  if hasattr(cell, "prepare"):  # after the carry: it follows the params
    params = cell.prepare(params)
  if hoist is None:
    hoist = jax.default_backend() != "cpu"
  if remat_chunk is None:
    return _loop(cell, params, inputs, mask, carry, training, unroll, hoist)
  if remat_chunk <= 0 or steps % remat_chunk:
    raise ValueError(
      f"scan: remat_chunk must be a positive divisor of T = {steps}, got "
      f"{remat_chunk}."
    )
  n = steps // remat_chunk

  def chunked(a: Array) -> Array:
    """[B, T, ...] -> [T / chunk, B, chunk, ...]."""
    return jnp.swapaxes(
      a.reshape(a.shape[0], n, remat_chunk, *a.shape[2:]), 0, 1
    )

  def unchunked(a: Array) -> Array:
    a = jnp.swapaxes(a, 0, 1)
    return a.reshape(a.shape[0], steps, *a.shape[3:])

  @jax.checkpoint
  def body(carry, xs):
    x, m = xs
    return _loop(cell, params, x, m, carry, training, unroll, hoist)

  xs = jax.tree.map(chunked, (inputs, mask))
  carry, outputs = jax.lax.scan(body, carry, xs)
  return carry, jax.tree.map(unchunked, outputs)


def scan(
  cell,
  params,
  inputs,
  *,
  mask: Array | None = None,
  carry=None,
  training: bool = False,
  unroll: int = 1,
  hoist: bool | None = None,
  remat_chunk: int | None = None,
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
      timed cell (a Phased LSTM).
    mask: optional [B, T]; where it is 0 (padding) the carry passes through
      unchanged and the output is zero, so left-padded sequences end with the
      carry of their last real step, as in the official Phased LSTM code.
      (That code emits the carried h_{t-1} at padded steps; plstm emits zeros
      so that padding never leaks into sequence outputs. Final carries agree.)
    carry: initial carry (one per layer for a stack); by default zeros of
      the dtype of the params' first floating leaf.
    training: passed to every step (the Phased LSTM leak is on only then).
    unroll: steps per loop iteration of `jax.lax.scan`.
    hoist: whether `cell.project` runs on the whole sequence before the
      loop (one large matrix product for the LSTMs' inputs) or inside each
      step, which is then rematerialised in the backward pass. None: hoisted
      except on CPU, where the unhoisted loop measured faster for the LSTM
      and Phased LSTM (docs/performance.md). The results are the same to
      float tolerance. A cell without `project` always runs unhoisted.
    remat_chunk: train long sequences in less memory: the T steps run as
      T / remat_chunk chunks, each wrapped in `jax.checkpoint`, so the
      forward pass keeps only the carry at each chunk boundary and the
      outputs, and the backward pass recomputes one chunk's activations at
      a time: O(T / chunk + chunk) steps of activations instead of O(T) (the
      least at chunk ~ sqrt(T)), for about one more forward pass of compute.
      Must divide T. None: no chunks.
    residual: stacks only: a layer whose input width equals its H adds its
      input to its output, h^l_t + x^l_t (a residual connection; the first
      layer usually differs in width and then has none). Padded steps stay
      zero.
    skip: stacks only: the outputs are every layer's outputs concatenated,
      [B, T, H_1 + ... + H_L], for a readout that sees all layers (the skip
      connections to the output of Graves 2013 and Pascanu et al. 2014).
    dropout: stacks only: the rate of variational dropout on each layer's
      input sequence (one rate for all layers, or one per layer; each a
      float or a JAX scalar). The mask [B, F] is drawn once per sequence
      and kept at every step, with 1 / (1 - rate) scaling, and only when
      `training` (theano_lstm's per-layer masks;
      `plstm.dropout.variational_dropout`).
    key: the PRNG key for dropout; needed when training with a rate > 0.

  Returns:
    (final carry, outputs [B, T, H]), with a tuple of carries for a stack.

  Raises:
    ValueError: at trace time, if `mask` is not [B, T] for the inputs' B
      and T; if a timed cell's inputs are not a pair `(x, t)`; if a cell's
      params differ in tree, shape or kind (floating or integer) from those
      of `cell.init(key, I)` for the I features of its x (cells with `init`
      and one x array [B, T, I]; see `check_params`).
  """
  options = dict(
    training=training, unroll=unroll, hoist=hoist, remat_chunk=remat_chunk
  )
  if not isinstance(cell, Sequence):
    if residual or skip or dropout:
      raise ValueError(
        "scan: residual, skip and dropout apply to a stack of cells; pass "
        "a list of cells."
      )
    return _scan_layer(cell, params, inputs, mask, carry, **options)
  if len(params) != len(cell):
    raise ValueError(
      f"scan: a stack of {len(cell)} cells needs {len(cell)} params, got "
      f"{len(params)}."
    )
  carries = [None] * len(cell) if carry is None else carry
  # One rate for all layers: a number, or a JAX scalar (a packed sweep's).
  one_rate = not isinstance(dropout, Sequence) and np.ndim(dropout) == 0
  rates = [dropout] * len(cell) if one_rate else dropout
  if len(rates) != len(cell):
    raise ValueError(
      f"scan: dropout needs one rate per layer ({len(cell)}), got {len(rates)}."
    )
  keys = [None] * len(cell) if key is None else jax.random.split(key, len(cell))
  timed_cells = [c for c in cell if timed(c)]
  x, t = timed_inputs(timed_cells[0], inputs) if timed_cells else (inputs, None)
  finals, layer_outputs = [], []
  for layer, layer_params, layer_carry, rate, layer_key in zip(
    cell, params, carries, rates, keys, strict=True
  ):
    x_in = variational_dropout(layer_key, x, rate, training=training)
    layer_inputs = (x_in, t) if timed(layer) else x_in
    layer_carry, h = _scan_layer(
      layer, layer_params, layer_inputs, mask, layer_carry, **options
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
