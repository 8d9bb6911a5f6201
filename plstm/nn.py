"""Flax wrappers: plstm cells as `flax.linen` and `flax.nnx` modules.

Each wrapper holds a pure cell and one Flax param per entry of `cell.init`,
named as there (`w_x`, `w_h`, `b`, `tau`, ...), so params move between a Flax
model and the pure functions unchanged. Integer entries (fixed structure:
the ALIF's delays `d_in`, `d_rec`) are not params: a linen variable of the
collection "structure" (inside `flax.linen.RNN`, pass
`variable_broadcast=("params", "structure")`) or a plain `nnx.Variable`.

  `LinenCell`, `NNXCell`: one step, for `flax.linen.RNN` / `flax.nnx.RNN`.
  `LinenRNN`, `NNXRNN`: a whole sequence through `plstm.scan`, which also takes
    `(x, t)` inputs and left-padded masks (`*.RNN` take neither).

Timestamps: a timed cell (`cell.timed`, e.g. `plstm.PhasedLSTM`) takes
inputs `(x, t)`, or one array [..., I + 1] whose last channel is t; the
latter is how it runs inside `*.RNN`, which take a single array (t then
shares x's dtype).

Precision: every wrapper takes Flax's `dtype` (the computation dtype of
the cell's matrix products) and `param_dtype` (the params' dtype), which set
the cell's own (`plstm.cell.with_precision`; None keeps the cell's).

Shapes: B batch, T time, I input features (without t), H hidden units.
"""

import functools
from typing import Any

import jax
from flax import linen, nnx

from plstm.cell import (
  Array,
  Params,
  describe,
  is_trained,
  timed,
  with_precision,
)
from plstm.recurrent import scan


def _split_time(cell, inputs):
  """`(x [..., I], t [...])` from [..., I + 1] inputs of a timed cell.

  Raises:
    ValueError: if such inputs have no channel beside t (I = 0).
  """
  if timed(cell) and not isinstance(inputs, tuple):
    if inputs.shape[-1] < 2:
      raise ValueError(
        f"{describe(cell)}: a timed cell's inputs are [..., I + 1] with the "
        f"timestamps t last (or a pair (x, t)); got {inputs.shape[-1]} "
        "channel, so no feature beside t."
      )
    return inputs[..., :-1], inputs[..., -1]
  return inputs


def _input_size(cell, inputs) -> int:
  """I, the number of x features of inputs split by `_split_time`."""
  x = inputs[0] if timed(cell) else inputs
  return x.shape[-1]


def _trained(entry) -> bool:
  """Whether a params entry (an array, or a pytree of them, such as a
  wrapped cell's params) is trained (`plstm.cell.is_trained`)."""
  return all(map(is_trained, jax.tree.leaves(entry)))


def _cell(module: linen.Module):
  """The module's cell with the module's precision."""
  return with_precision(module.cell, module.dtype, module.param_dtype)


def _linen_params(module: linen.Module, cell, input_size: int) -> Params:
  """One linen variable of `module` per entry of `cell.init` (the module's
  cell at its precision), under the same name: a param, or for an integer
  entry (fixed structure, such as the ALIF's delays) a variable of the
  collection "structure"."""
  init = functools.partial(cell.init, input_size=input_size)
  shapes = jax.eval_shape(init, jax.random.key(0))
  params = {}
  for n, shape in shapes.items():
    if _trained(shape):
      params[n] = module.param(n, lambda key, n=n: init(key)[n])
    else:
      draw = lambda n=n: init(module.make_rng("params"))[n]
      params[n] = module.variable("structure", n, draw).value
  return params


class LinenCell(linen.RNNCellBase):
  """A plstm cell as a linen RNN cell, for `flax.linen.RNN`.

  Attributes:
    cell: a plstm cell, e.g. `plstm.PhasedLSTM(8)`.
    deterministic: False runs the cell with `training=True` (the Phased LSTM
      leak).
    dtype, param_dtype: the cell's precision (None: the cell's own).
  """

  cell: Any
  deterministic: bool = True
  dtype: Any = None
  param_dtype: Any = None

  @linen.compact
  def __call__(self, carry, inputs):
    """One step: (carry, x [B, I] | (x, t) | [B, I + 1]) -> (carry, [B, H])."""
    cell = _cell(self)
    inputs = _split_time(cell, inputs)
    params = _linen_params(self, cell, _input_size(cell, inputs))
    return cell.step(params, carry, inputs, training=not self.deterministic)

  @linen.nowrap
  def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]):
    """Zeros for inputs of shape [B, ...]; `rng` is unused."""
    del rng
    return _cell(self).initial_carry(input_shape[:-1])

  @property
  def num_feature_axes(self) -> int:
    return 1


class LinenRNN(linen.Module):
  """A plstm cell over whole sequences with `plstm.scan`, as a linen module.

  Attributes:
    cell: a plstm cell.
    deterministic: False runs the cell with `training=True`.
    dtype, param_dtype: the cell's precision (None: the cell's own).
  """

  cell: Any
  deterministic: bool = True
  dtype: Any = None
  param_dtype: Any = None

  @linen.compact
  def __call__(self, inputs, *, mask: Array | None = None, initial_carry=None):
    """Runs x [B, T, I] (or `(x, t)`, or [B, T, I + 1]) -> outputs [B, T, H].

    `mask` [B, T] and `initial_carry` are those of `plstm.scan`.
    """
    cell = _cell(self)
    inputs = _split_time(cell, inputs)
    params = _linen_params(self, cell, _input_size(cell, inputs))
    _, outputs = scan(
      cell,
      params,
      inputs,
      mask=mask,
      carry=initial_carry,
      training=not self.deterministic,
    )
    return outputs


class _NNXWrapper(nnx.Module):
  """Holds a plstm cell and its params as `nnx.Param`s named as the cell's
  (integer entries, fixed structure such as the ALIF's delays, as plain
  `nnx.Variable`s, which `nnx.grad` leaves alone)."""

  def __init__(
    self,
    cell,
    in_features: int,
    *,
    rngs: nnx.Rngs,
    deterministic: bool = True,
    dtype=None,
    param_dtype=None,
  ):
    """Draws the params with `cell.init`.

    Args:
      cell: a plstm cell.
      in_features: I, x's features; for a timed cell without the timestamp.
      rngs: its `params` stream draws the init.
      deterministic: False runs the cell with `training=True` (the Phased LSTM
        leak); `model.train()` and `model.eval()` set it.
      dtype, param_dtype: the cell's precision (None: the cell's own).
    """
    cell = with_precision(cell, dtype, param_dtype)
    self.cell = cell
    self.deterministic = deterministic
    params = cell.init(rngs.params(), in_features)
    self.param_names = tuple(params)
    for name, value in params.items():
      kind = nnx.Param if _trained(value) else nnx.Variable
      setattr(self, name, kind(value))

  @property
  def params(self) -> Params:
    return {n: getattr(self, n).get_value() for n in self.param_names}


class NNXCell(_NNXWrapper, nnx.RNNCellBase):
  """A plstm cell as an nnx RNN cell, for `flax.nnx.RNN`."""

  def __call__(self, carry, inputs):
    """One step: (carry, x [B, I] | (x, t) | [B, I + 1]) -> (carry, [B, H])."""
    return self.cell.step(
      self.params,
      carry,
      _split_time(self.cell, inputs),
      training=not self.deterministic,
    )

  def initialize_carry(self, input_shape: tuple[int, ...], rngs=None):
    """Zeros for inputs of shape [B, ...]; `rngs` is unused."""
    del rngs
    return self.cell.initial_carry(input_shape[:-1])

  @property
  def num_feature_axes(self) -> int:
    return 1


class NNXRNN(_NNXWrapper):
  """A plstm cell over whole sequences with `plstm.scan`, as an nnx module."""

  def __call__(self, inputs, *, mask: Array | None = None, initial_carry=None):
    """Runs x [B, T, I] (or `(x, t)`, or [B, T, I + 1]) -> outputs [B, T, H].

    `mask` [B, T] and `initial_carry` are those of `plstm.scan`.
    """
    _, outputs = scan(
      self.cell,
      self.params,
      _split_time(self.cell, inputs),
      mask=mask,
      carry=initial_carry,
      training=not self.deterministic,
    )
    return outputs
