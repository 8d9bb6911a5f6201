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

`plstm.scan` runs any such cell over time. Params are dicts of arrays; they
may hold integer arrays, fixed structure drawn at init (the ALIF's synaptic
delays), which is never trained: `trainable` and `merge` split it off for
`jax.grad` and optax and put it back.

A packed sweep trains several hyperparameter points as one program,
`jax.vmap`ped over the models, so a cell's numbers (the Phased LSTM's alpha,
the LSNN's thr) may be JAX scalars. Their range checks and the Python
branches on them run only when they are concrete (`is_traced`); a traced
value takes the branch-free form of the same computation.

Shapes: B batch (any leading shape for a single step), T time, I inputs,
H hidden units.
"""

import numbers
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
# jax.nn.initializers.Initializer: (key, shape, dtype) -> Array.
Initializer = Any
Params = dict[str, Array]


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
