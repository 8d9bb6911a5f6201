"""The cell contract: what every cell is, and the helpers cells share.

A cell is an immutable object with
  `init(key, input_size) -> params`,
  `initial_carry(batch_size, dtype) -> carry` (zeros of `dtype`),
  `step(params, carry, inputs, *, training) -> (carry, outputs)`,
and optionally
  `timed`: True if its inputs are `(x, t)`, x with timestamps t [B] (the
    Phased LSTM); False if absent,
  `project(params, inputs) -> projected`: the part of a step that does not
    depend on the carry, which may be applied to a whole sequence at once,
    with `recur(params, carry, projected, *, training) -> (carry, outputs)`
    the rest of the step. Absent: the whole step runs in the loop.
  `prepare(params) -> params`: what `plstm.scan` computes once before the
    loop (the weight matrices cast to the computation dtype).

`plstm.scan` runs any such cell over time. Params are dicts of arrays; they
may hold integer arrays, fixed structure drawn at init (the ALIF's synaptic
delays), which is never trained: `trainable` and `merge` split it off for
`jax.grad` and optax and put it back.

A packed sweep trains several hyperparameter points as one program,
`jax.vmap`ped over the models, so a cell's numbers (the Phased LSTM's alpha,
the LSNN's thr) may be JAX scalars. Their range checks and the Python
branches on them run only when they are concrete (`is_traced`); a traced
value takes the branch-free form of the same computation.

Precision, in Flax's terms: every cell with matrix products takes `dtype`,
the computation dtype of those products (their inputs cast to it, the sums
accumulated in float32: `dot`, `einsum`; None, the default: the params'
dtype, no cast), and `param_dtype`, the dtype `init` draws the weights in
(float32). With dtype=jnp.bfloat16 and float32 params, the products run in
bfloat16 while the params, the carry, the gates' element-wise maths and
the Phased LSTM's timestamps and phase stay float32 (or float64 under x64).
`init` draws the weights in float32 and casts them to `param_dtype`. With
param_dtype=jnp.bfloat16 the LSTM and the RNN compute everything in
bfloat16 (their carry follows the params); the Phased LSTM's gate params
and the LSNN's neuron constants stay float32, so keep their params float32.

Shapes: B batch (any leading shape for a single step), T time, I inputs,
H hidden units.
"""

import dataclasses
import numbers
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
# jax.nn.initializers.Initializer: (key, shape, dtype) -> Array.
Initializer = Any
Params = dict[str, Array]


def _accumulation(x: Array, w: Array):
  """The dtype a product of `x` and `w` accumulates in: theirs, at least
  float32."""
  wide = jnp.dtype(jnp.float64) in (x.dtype, w.dtype)
  return jnp.float64 if wide else jnp.float32


def dot(x: Array, w: Array, dtype=None) -> Array:
  """x @ w in the computation `dtype`: x and w cast to it, the product
  accumulated and returned in their dtype, at least float32. None: x @ w."""
  if dtype is None:
    return x @ w
  return jnp.matmul(
    x.astype(dtype), w.astype(dtype), preferred_element_type=_accumulation(x, w)
  )


def einsum(subscripts: str, x: Array, w: Array, dtype=None) -> Array:
  """`jnp.einsum(subscripts, x, w)` in the computation `dtype`, as `dot`."""
  if dtype is None:
    return jnp.einsum(subscripts, x, w)
  return jnp.einsum(
    subscripts,
    x.astype(dtype),
    w.astype(dtype),
    preferred_element_type=_accumulation(x, w),
  )


def cast(params: Params, dtype) -> Params:
  """`params` (float32 as drawn) in `dtype`, a cell's `param_dtype`."""
  return {k: v.astype(dtype) for k, v in params.items()}


def cast_matrices(params: Params, names, dtype) -> Params:
  """`params` with its matrices `names` cast to the computation `dtype`
  (None: unchanged), once before a loop rather than at every step."""
  if dtype is None:
    return params
  return {**params, **{n: params[n].astype(dtype) for n in names}}


def with_precision(cell, dtype=None, param_dtype=None):
  """`cell` with its `dtype` and `param_dtype` set where given (None: kept);
  a wrapping cell (`plstm.Phased`, field `cell`) sets them on the cell it
  wraps.

  Raises:
    ValueError: if `cell` has no such fields.
  """
  changes = {
    k: v
    for k, v in (("dtype", dtype), ("param_dtype", param_dtype))
    if v is not None
  }
  if not changes:
    return cell
  fields = {f.name for f in dataclasses.fields(cell)}
  if "cell" in fields:
    inner = with_precision(cell.cell, dtype, param_dtype)
    return dataclasses.replace(cell, cell=inner)
  if not set(changes) <= fields:
    raise ValueError(
      f"{describe(cell)} has no precision fields (dtype, param_dtype)."
    )
  return dataclasses.replace(cell, **changes)


def batch_shape(batch_size: int | tuple[int, ...]) -> tuple[int, ...]:
  """A batch size as a shape: 4 -> (4,), (2, 3) -> (2, 3)."""
  return (batch_size,) if isinstance(batch_size, int) else tuple(batch_size)


def is_traced(*values) -> bool:
  """Whether any leaf of `values` is a JAX tracer (a value being traced by
  `jax.jit`, `jax.vmap` or `jax.grad`), which has no concrete value to check
  or branch on."""
  return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(values))


def check_size(owner: str, name: str, value, minimum: int = 1) -> None:
  """One clear line unless `value` is an integer >= `minimum` (a bool is not
  a size).

  Raises:
    TypeError: if `value` is traced (a packed sweep's): a size sets shapes,
      so it must be a concrete integer.
    ValueError: naming `owner` and `name`, if `value` is not such an integer.
  """
  if is_traced(value):
    raise TypeError(
      f"{owner}: {name} sets a shape, so it must be a concrete integer, not "
      "a traced value."
    )
  if (
    isinstance(value, bool)
    or not isinstance(value, numbers.Integral)
    or value < minimum
  ):
    raise ValueError(
      f"{owner}: {name} must be an integer >= {minimum}, got {value!r}."
    )


def timed(cell) -> bool:
  """Whether `cell` consumes timestamps, inputs `(x, t)`."""
  return getattr(cell, "timed", False)


def describe(cell) -> str:
  """The cell's class and size for messages, e.g. "PhasedLSTM(2)"."""
  size = getattr(cell, "hidden_size", None)
  return type(cell).__name__ + ("" if size is None else f"({size})")


def timed_inputs(cell, inputs) -> tuple:
  """`(x, t)` of a timed cell's inputs.

  Raises:
    ValueError: if `inputs` is not a pair (a Phased LSTM called without t).
  """
  if isinstance(inputs, tuple | list) and len(inputs) == 2:
    return tuple(inputs)
  got = (
    f"one array of shape {inputs.shape}"
    if hasattr(inputs, "shape")
    else type(inputs).__name__
  )
  raise ValueError(
    f"{describe(cell)} is timed: its inputs are (x [..., I], timestamps "
    f"t [...]), got {got}."
  )


def is_trained(x) -> bool:
  """Whether a params leaf is trained: floating, not fixed integer
  structure."""
  return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def trainable(params):
  """`params` with its integer leaves (fixed structure) replaced by None,
  which optax and `jax.grad` pass over."""
  return jax.tree.map(lambda p: p if is_trained(p) else None, params)


def merge(trained, params):
  """`params` with the leaves of `trained` (from `trainable`) put back."""
  return jax.tree.map(
    lambda t, p: p if t is None else t,
    trained,
    params,
    is_leaf=lambda x: x is None,
  )
