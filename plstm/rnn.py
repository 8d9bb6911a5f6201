"""The plain RNN cell and GatedInput, the two small layers of theano_lstm.

Shapes: B is any leading batch shape, I inputs, H hidden units.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from plstm.cell import (
  Array,
  Initializer,
  Params,
  batch_shape,
  cast,
  cast_matrices,
  check_size,
  dot,
)


@dataclasses.dataclass(frozen=True)
class RNN:
  r"""The plain (Elman) recurrent layer.

  .. math::
    h_t = f(x_t W_x + h_{t-1} W_h + b)

  Params: `w_x` [I, H], `w_h` [H, H], `b` [H], in `param_dtype`. Carry:
  h [B, H]. Inputs: x [B, I]. Outputs: h [B, H]. `dtype` (keyword): the
  computation dtype of the two products (see `plstm.cell`).

  Notes:
    theano_lstm's `RNN` computes f(W [x; h] + b) with one W of shape
    (H, I + H); here W = [W_x; W_h]^T is split so that x W_x + b is hoisted
    out of the scan, as for the LSTM. Its default f is the identity when built
    through `StackedCells` (the tutorial's RNN is linear); here it is tanh.
    It initialises W and b with N(0, 1) / H and draws an untrained random
    initial state; here the initialisers are Flax's (LeCun normal input
    kernel, orthogonal recurrent kernel, zero bias) and the initial carry is
    zeros. `kernel_init=recurrent_kernel_init=jax.nn.initializers.normal(1/H)`
    gives the original's weight scale.

  Raises:
    ValueError: if `hidden_size`, or `init`'s `input_size`, is not an
      integer >= 1.
  """

  hidden_size: int
  activation: Callable[[Array], Array] = jnp.tanh
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()
  recurrent_kernel_init: Initializer = jax.nn.initializers.orthogonal()
  dtype: Any = dataclasses.field(default=None, kw_only=True)
  param_dtype: Any = dataclasses.field(default=jnp.float32, kw_only=True)

  def __post_init__(self):
    check_size(type(self).__name__, "hidden_size", self.hidden_size)

  def init(self, key: Array, input_size: int) -> Params:
    """Returns the params for inputs of `input_size` features."""
    check_size(f"{type(self).__name__}.init", "input_size", input_size)
    h = self.hidden_size
    k_x, k_h = jax.random.split(key)
    params = {
      "w_x": self.kernel_init(k_x, (input_size, h), jnp.float32),
      "w_h": self.recurrent_kernel_init(k_h, (h, h), jnp.float32),
      "b": jnp.zeros((h,), jnp.float32),
    }
    return cast(params, self.param_dtype)

  def initial_carry(
    self, batch_size: int | tuple[int, ...], dtype=jnp.float32
  ) -> Array:
    """Zeros of shape [*batch_size, H]."""
    return jnp.zeros((*batch_shape(batch_size), self.hidden_size), dtype)

  def prepare(self, params: Params) -> Params:
    """W_x and W_h in the computation dtype, once before `plstm.scan`'s
    loop."""
    return cast_matrices(params, ("w_x", "w_h"), self.dtype)

  def project(self, params: Params, x: Array) -> Array:
    """The input half of the pre-activation, x W_x + b: [..., I] -> [..., H]."""
    return dot(x, params["w_x"], self.dtype) + params["b"]

  def recur(
    self, params: Params, carry: Array, z_x: Array, *, training: bool = False
  ) -> tuple[Array, Array]:
    """One step from the projected input `z_x` [B, H]."""
    del training  # The RNN behaves the same in training and evaluation.
    h = self.activation(z_x + dot(carry, params["w_h"], self.dtype))
    return h, h

  def step(
    self, params: Params, carry: Array, inputs: Array, *, training: bool = False
  ) -> tuple[Array, Array]:
    """One time step: (h_{t-1} [B, H], x [B, I]) -> (h_t, h_t)."""
    return self.recur(
      params, carry, self.project(params, inputs), training=training
    )


@dataclasses.dataclass(frozen=True)
class GatedInput:
  r"""One scalar sigmoid gate per example that scales the whole input.

  .. math::
    g = \sigma(x w_x + h w_h + b), \qquad y = g \, x

  Params: `w_x` [I, 1], `w_h` [H, 1], `b` [1]. `gate(params, x, h)` gives
  g [B, 1]; `apply(params, x, h)` gives g x [B, I], the input the layer above
  receives. x [B, I] and h [B, H] broadcast against each other, so a fixed
  h [B, 1, H] can gate a whole sequence x [B, T, I].

  Design: in theano_lstm `GatedInput` is a `StackedCells` layer without a
  state of its own: the caller must pass the h it reads (the hidden state of
  another layer), it emits g, and `postprocess_activation` hands g x upward.
  So here it is a pair of pure functions, not a cell for `plstm.scan`:
  `hidden_size` only says how wide that h is, and whoever owns h (a custom
  step or a model) calls `apply` inside its own step.

  Notes:
    The original's single W of shape (1, I + H) is split into w_x and w_h, and
    it draws W and b from N(0, 1); here `kernel_init` (LeCun normal) draws
    w_x and w_h and b starts at 0, so the gate starts near 1/2.

  Raises:
    ValueError: if `hidden_size`, or `init`'s `input_size`, is not an
      integer >= 1.
  """

  hidden_size: int
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()
  dtype: Any = dataclasses.field(default=None, kw_only=True)
  param_dtype: Any = dataclasses.field(default=jnp.float32, kw_only=True)

  def __post_init__(self):
    check_size(type(self).__name__, "hidden_size", self.hidden_size)

  def init(self, key: Array, input_size: int) -> Params:
    """Returns the params for inputs of `input_size` features."""
    check_size(f"{type(self).__name__}.init", "input_size", input_size)
    k_x, k_h = jax.random.split(key)
    params = {
      "w_x": self.kernel_init(k_x, (input_size, 1), jnp.float32),
      "w_h": self.kernel_init(k_h, (self.hidden_size, 1), jnp.float32),
      "b": jnp.zeros((1,), jnp.float32),
    }
    return cast(params, self.param_dtype)

  def gate(self, params: Params, x: Array, h: Array) -> Array:
    """g = sigmoid(x w_x + h w_h + b): [B, I], [B, H] -> [B, 1]."""
    z = dot(x, params["w_x"], self.dtype) + dot(h, params["w_h"], self.dtype)
    return jax.nn.sigmoid(z + params["b"])

  def apply(self, params: Params, x: Array, h: Array) -> Array:
    """The gated input g x: [B, I], [B, H] -> [B, I]."""
    return self.gate(params, x, h) * x
