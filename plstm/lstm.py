"""The LSTM cell, with optional diagonal peepholes, a pure function of params.

Shapes: B is any leading batch shape, I inputs, H hidden units.
"""

import dataclasses
from typing import Any, ClassVar, NamedTuple

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


class LSTMState(NamedTuple):
  """The carry of an LSTM: cell state `c` and hidden state `h`, each [B, H]."""

  c: Array
  h: Array


@dataclasses.dataclass(frozen=True)
class LSTM:
  r"""Long short-term memory (Hochreiter & Schmidhuber 1997), fused gates.

  With z_t = x_t W_x + h_{t-1} W_h + b split into gates in the order i, f, g, o:

  .. math::
    i_t &= \sigma(z^i_t + p_i \odot c_{t-1}) \\
    f_t &= \sigma(z^f_t + p_f \odot c_{t-1}) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot \tanh(z^g_t) \\
    o_t &= \sigma(z^o_t + p_o \odot c_t) \\
    h_t &= o_t \odot \tanh(c_t)

  The peephole terms (Gers & Schmidhuber 2000) are present only with
  `peepholes=True`; the output peephole sees the new cell c_t, as in Lasagne
  and the Phased LSTM code.

  Params: `w_x` [I, 4H], `w_h` [H, 4H], `b` [4H] (gate order i, f, g, o), and
  with peepholes `p_i`, `p_f`, `p_o` [H], in `param_dtype`. Carry:
  `LSTMState(c, h)`, each [B, H]. Inputs: x [B, I]. Outputs: h [B, H].
  `dtype` (keyword): the computation dtype of x W_x and h W_h (see
  `plstm.cell`; None: the params').

  Notes:
    `forget_bias` and `input_bias` (floats or JAX scalars) are the initial
    values of the f and i slices of `b` (trainable), not constants added at
    every step as in TensorFlow's `BasicLSTMCell`. The default initialisers
    are Flax's (LeCun normal input kernel, orthogonal recurrent kernel).

  Raises:
    ValueError: if `hidden_size`, or `init`'s `input_size`, is not an
      integer >= 1.
  """

  timed: ClassVar[bool] = False  # consumes x alone, no timestamps

  hidden_size: int
  peepholes: bool = False
  forget_bias: float | Array = 1.0
  input_bias: float | Array = 0.0
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()
  recurrent_kernel_init: Initializer = jax.nn.initializers.orthogonal()
  peephole_init: Initializer = jax.nn.initializers.normal(0.1)
  dtype: Any = dataclasses.field(default=None, kw_only=True)
  param_dtype: Any = dataclasses.field(default=jnp.float32, kw_only=True)

  def __post_init__(self):
    check_size(type(self).__name__, "hidden_size", self.hidden_size)

  def init(self, key: Array, input_size: int) -> Params:
    """Returns the params for inputs of `input_size` features."""
    check_size(f"{type(self).__name__}.init", "input_size", input_size)
    h = self.hidden_size
    k_x, k_h, k_p = jax.random.split(key, 3)
    b = jnp.zeros((4, h), jnp.float32)
    b = b.at[0].set(self.input_bias).at[1].set(self.forget_bias)
    params = {
      "w_x": self.kernel_init(k_x, (input_size, 4 * h), jnp.float32),
      # One orthogonal block per gate, as Flax's LSTMCell does.
      "w_h": jnp.concatenate(
        [
          self.recurrent_kernel_init(k, (h, h), jnp.float32)
          for k in jax.random.split(k_h, 4)
        ],
        axis=1,
      ),
      "b": b.reshape(4 * h),
    }
    if self.peepholes:
      for name, k in zip(
        ("p_i", "p_f", "p_o"), jax.random.split(k_p, 3), strict=True
      ):
        params[name] = self.peephole_init(k, (h,), jnp.float32)
    return cast(params, self.param_dtype)

  def initial_carry(
    self, batch_size: int | tuple[int, ...], dtype=jnp.float32
  ) -> LSTMState:
    """Zeros of shape [*batch_size, H] for c and h."""
    zeros = jnp.zeros((*batch_shape(batch_size), self.hidden_size), dtype)
    return LSTMState(c=zeros, h=zeros)

  def prepare(self, params: Params) -> Params:
    """W_x and W_h in the computation dtype, once before `plstm.scan`'s
    loop."""
    return cast_matrices(params, ("w_x", "w_h"), self.dtype)

  def project(self, params: Params, x: Array) -> Array:
    """The input half of the gates, x W_x + b: [..., I] -> [..., 4H].

    It does not depend on the carry, so `plstm.scan` applies it to a whole
    sequence in one matrix product before stepping through time.
    """
    return dot(x, params["w_x"], self.dtype) + params["b"]

  def recur(
    self,
    params: Params,
    carry: LSTMState,
    z_x: Array,
    *,
    training: bool = False,
  ) -> tuple[LSTMState, Array]:
    """One step from the projected input `z_x` [B, 4H]."""
    del training  # The LSTM behaves the same in training and evaluation.
    c, h = self.candidate(params, carry, z_x)
    return LSTMState(c, h), h

  def step(
    self,
    params: Params,
    carry: LSTMState,
    inputs: Array,
    *,
    training: bool = False,
  ) -> tuple[LSTMState, Array]:
    """One time step: (carry, x [B, I]) -> (carry, h [B, H])."""
    return self.recur(
      params, carry, self.project(params, inputs), training=training
    )

  def candidate(
    self, params: Params, carry: LSTMState, z_x: Array
  ) -> tuple[Array, Array]:
    """The LSTM update (c_t, h_t) above, before any time gate."""
    c_prev, h_prev = carry
    z = z_x + dot(h_prev, params["w_h"], self.dtype)
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
    if self.peepholes:
      z_i = z_i + params["p_i"] * c_prev
      z_f = z_f + params["p_f"] * c_prev
    c = jax.nn.sigmoid(z_f) * c_prev + jax.nn.sigmoid(z_i) * jnp.tanh(z_g)
    if self.peepholes:
      z_o = z_o + params["p_o"] * c
    return c, jax.nn.sigmoid(z_o) * jnp.tanh(c)
