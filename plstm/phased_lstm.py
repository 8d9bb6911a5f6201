"""The Phased LSTM (Neil, Pfeiffer & Liu, NIPS 2016), its time gate, and
the time gate around any cell (`Phased`).

Shapes: B is any leading batch shape, I inputs, H hidden units.
"""

import dataclasses
import math
import numbers
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from plstm.cell import (
  Array,
  Initializer,
  Params,
  check_size,
  is_traced,
  timed_inputs,
)
from plstm.lstm import LSTM, LSTMState


def time_gate(
  t: Array, tau: Array, shift: Array, r_on: Array, alpha: float | Array = 0.0
) -> Array:
  r"""The openness k of the Phased LSTM time gate (paper eqs. 6-7).

  .. math::
    \phi_t &= \frac{(t - s) \bmod \tau}{\tau} \\
    k_t &= \begin{cases}
      2 \phi_t / r_{on} & \phi_t \le r_{on}/2 \\
      2 - 2 \phi_t / r_{on} & r_{on}/2 < \phi_t \le r_{on} \\
      \alpha \phi_t & \text{otherwise}
    \end{cases}

  Args:
    t: timestamps [B] (or any shape that broadcasts against [B]); float64
      timestamps are kept in float64 for the phase when x64 is enabled.
    tau: periods [H]. Enters through |tau|.
    shift: phase shifts s [H].
    r_on: open ratios [H]. Enters through |r_on|.
    alpha: slope of the closed phase (the leak), a float or a JAX scalar;
      1e-3 in training in the paper, 0 in evaluation.

  Returns:
    k [B, H] in the dtype of `tau`.

  Raises:
    ValueError: if a concrete `tau` or `r_on` holds a 0 (the phase would
      divide by it); traced values (under `jax.jit`) are not checked.

  Notes:
    The mod is a floor-mod, so phi is in [0, 1) for negative t - s too (the
    official code's Theano mod; `torch.fmod` would not be). The official
    Theano code computes (t + s) mod tau; this is the same gate under
    s -> -s. Both boundaries are inclusive on their upper side, as there.
    phi is computed as q - floor(q) with q = (t - s) / tau, whose gradient
    equals that of the mod, (1, -floor(q)) / tau - mod / tau^2, and whose
    value differs from it by the rounding of q: about 1e-7 q in float32,
    the order of the rounding of t - s itself.
  """
  for name, value in (("tau", tau), ("r_on", r_on)):
    if is_traced(value):
      continue
    if zeros := np.count_nonzero(np.asarray(value) == 0):
      raise ValueError(
        f"time_gate: {name} must be nonzero (it enters as |{name}|), got "
        f"{zeros} zero(s) in {name}."
      )
  t = jnp.asarray(t)
  if not jnp.issubdtype(t.dtype, jnp.floating):
    t = t.astype(tau.dtype)
  # The phase is computed in the wider of the two float types, so float64
  # timestamps keep their precision; np.promote_types, as JAX's refuses mixed
  # widths under strict promotion.
  phase_dtype = np.promote_types(t.dtype, tau.dtype)
  tau_abs = jnp.abs(tau).astype(phase_dtype)
  r_on = jnp.abs(r_on)
  shifted = t.astype(phase_dtype)[..., None] - shift.astype(phase_dtype)
  # phi = frac((t - s) / tau): one divide and a floor, cheaper on CPU than
  # jnp.mod's remainder, with the same gradient.
  q = shifted / tau_abs
  phi = (q - jnp.floor(q)).astype(tau.dtype)
  up = 2.0 * phi / r_on
  return jnp.where(
    phi <= 0.5 * r_on, up, jnp.where(phi <= r_on, 2.0 - up, alpha * phi)
  )


def _number(v) -> bool:
  """A real number (not a bool), or a traced scalar (checked no further)."""
  real = isinstance(v, numbers.Real) and not isinstance(v, bool)
  return real or (is_traced(v) and np.ndim(v) == 0)


def _check_gate(cell, name: str) -> None:
  """The gate's hyperparameters in range; traced ones (a packed sweep's)
  are checked for their form alone."""
  for field, least in (("tau_range", 0.0), ("shift_range", -math.inf)):
    pair = getattr(cell, field)
    ok = isinstance(pair, tuple | list) and len(pair) == 2
    ok = ok and all(_number(v) for v in pair)
    if not (ok and (is_traced(pair) or least < pair[0] <= pair[1])):
      bound = "0 < low" if least == 0.0 else "low"
      raise ValueError(
        f"{name}: {field} must be two numbers {bound} <= high, got {pair!r}."
      )
  if not is_traced(cell.r_on) and not 0 < cell.r_on <= 1:
    raise ValueError(f"{name}: r_on must be in (0, 1], got {cell.r_on}.")
  if not is_traced(cell.alpha) and cell.alpha < 0:
    raise ValueError(f"{name}: alpha must be >= 0, got {cell.alpha}.")


def _gate_params(cell, k_tau: Array, k_shift: Array, h: int) -> Params:
  """`tau` log-uniform in `cell.tau_range`, `shift` uniform in
  `cell.shift_range`, `r_on` = `cell.r_on`, each [H]."""
  # A traced range (a packed sweep's) takes its log in float32.
  log = jnp.log if is_traced(cell.tau_range) else math.log
  log_lo, log_hi = (log(v) for v in cell.tau_range)
  lo, hi = cell.shift_range
  tau = jax.random.uniform(k_tau, (h,), jnp.float32, log_lo, log_hi)
  return {
    "tau": jnp.exp(tau),
    "shift": jax.random.uniform(k_shift, (h,), jnp.float32, lo, hi),
    "r_on": jnp.full((h,), cell.r_on, jnp.float32),
  }


def _gate(cell, params: Params, t: Array, training: bool) -> Array:
  """k_t [B, H] of `cell`'s gate params at timestamps t [B]."""
  r_on = params["r_on"]
  if not cell.train_r_on:
    r_on = jax.lax.stop_gradient(r_on)
  alpha = cell.alpha if training else 0.0
  return time_gate(t, params["tau"], params["shift"], r_on, alpha)


@dataclasses.dataclass(frozen=True)
class PhasedLSTM(LSTM):
  r"""The Phased LSTM: an LSTM whose updates a rhythmic time gate opens.

  With (c̃_t, h̃_t) the LSTM update of `plstm.LSTM` from (c_{t-1}, h_{t-1}) and
  k_t = `time_gate`(t, tau, shift, r_on, alpha) (paper eqs. 8-9):

  .. math::
    c_t &= k_t \odot \tilde c_t + (1 - k_t) \odot c_{t-1} \\
    h_t &= k_t \odot \tilde h_t + (1 - k_t) \odot h_{t-1}

  Params: those of `plstm.LSTM` plus `tau`, `shift`, `r_on` [H]. Carry:
  `LSTMState(c, h)`. Inputs: `(x, t)` with x [B, I] and timestamps t [B],
  one per sample, shared by all units. Outputs: h [B, H].

  The defaults are those of the official frequency-discrimination experiments
  (public_plstm `freq_task.py`): tau ~ exp(U(1, 3)) (log-uniform in
  `tau_range`), shift ~ U(0, 100), r_on = 0.05 and trained, every weight and
  peephole ~ N(0, 0.1), input-gate bias -0.1, forget-gate bias 0.

  Notes:
    The output peephole sees c̃_t, not the gated c_t, as the official code
    does (the paper's eq. 4 writes c_t; the authors confirmed c̃_t). The leak
    `alpha` applies only with `training=True`; evaluation uses 0, as the
    paper. `tau` and `r_on` act through their absolute value, so they never
    act negative. With `train_r_on=False`, r_on gets no gradient (it stays a
    param so checkpoints keep one layout). The official code clips gradient
    messages at the gate pre-activations to +-10; here gradient clipping is
    the optimiser's (see the training configs).

  alpha, r_on and the two numbers of tau_range and shift_range are floats
  or JAX scalars (a packed sweep's); traced ones are not range-checked.

  Raises:
    ValueError: as `plstm.LSTM`; if `tau_range`, `r_on` or `alpha` is out of
      range; if inputs are not a pair (x, t).
  """

  timed: ClassVar[bool] = True  # consumes (x, t)

  peepholes: bool = True
  forget_bias: float | Array = 0.0
  input_bias: float | Array = -0.1
  kernel_init: Initializer = jax.nn.initializers.normal(0.1)
  recurrent_kernel_init: Initializer = jax.nn.initializers.normal(0.1)
  alpha: float | Array = 1e-3
  r_on: float | Array = 0.05
  train_r_on: bool = True
  tau_range: tuple[float | Array, float | Array] = (math.e, math.e**3)
  shift_range: tuple[float | Array, float | Array] = (0.0, 100.0)

  def __post_init__(self):
    super().__post_init__()
    _check_gate(self, "PhasedLSTM")

  def init(self, key: Array, input_size: int) -> Params:
    k_lstm, k_tau, k_shift = jax.random.split(key, 3)
    params = super().init(k_lstm, input_size)
    return params | _gate_params(self, k_tau, k_shift, self.hidden_size)

  def project(
    self, params: Params, inputs: tuple[Array, Array]
  ) -> tuple[Array, Array]:
    """(x [..., I], t [...]) -> (x W_x + b [..., 4H], t)."""
    x, t = timed_inputs(self, inputs)
    if x.shape[:-1] != jnp.shape(t):
      raise ValueError(
        f"PhasedLSTM: x and t must have the same leading (batch, time) "
        f"shape, got x {x.shape} and t {jnp.shape(t)}."
      )
    return super().project(params, x), t

  def recur(
    self,
    params: Params,
    carry: LSTMState,
    projected: tuple[Array, Array],
    *,
    training: bool = False,
  ) -> tuple[LSTMState, Array]:
    z_x, t = projected
    c_new, h_new = self.candidate(params, carry, z_x)
    k = _gate(self, params, t, training)
    c = k * c_new + (1.0 - k) * carry.c
    h = k * h_new + (1.0 - k) * carry.h
    return LSTMState(c, h), h


@dataclasses.dataclass(frozen=True)
class Phased:
  r"""Any cell whose updates the Phased LSTM's time gate opens.

  With (s̃_t, y_t) = `cell.step`(s_{t-1}, x_t) and k_t = `time_gate`(t, tau,
  shift, r_on, alpha), every leaf of the carry is gated as the Phased LSTM
  gates c and h (paper eqs. 8-9):

  .. math::
    s_t = k_t \odot \tilde s_t + (1 - k_t) \odot s_{t-1}

  and the outputs are the gated carry's `h` (an `LSTMState`'s), or the gated
  carry itself (`plstm.RNN`, a GRU): a unit whose gate is closed keeps its
  state and repeats its output. `Phased(plstm.LSTM(H, peepholes=True))`
  computes what `plstm.PhasedLSTM(H)` does, given the same params (a test
  shows it); `PhasedLSTM` stays the fused form of that case.

  Params: `inner` (the cell's params), `tau`, `shift`, `r_on` [H]. Carry: the
  cell's, each leaf [B, H]. Inputs: `(x, t)` with x [B, I] and timestamps
  t [B]. Outputs: [B, H].

  Attributes:
    cell: a cell with `hidden_size` H whose carry leaves are [B, H] and whose
      outputs are its hidden state.
    alpha, r_on, train_r_on, tau_range, shift_range: as `PhasedLSTM` (the
      numbers floats or JAX scalars).

  Raises:
    ValueError: if `tau_range`, `r_on` or `alpha` is out of range; if
      `init`'s `input_size` is not an integer >= 1; if inputs are not a
      pair (x, t).
  """

  timed: ClassVar[bool] = True  # consumes (x, t)

  cell: Any
  alpha: float | Array = 1e-3
  r_on: float | Array = 0.05
  train_r_on: bool = True
  tau_range: tuple[float | Array, float | Array] = (math.e, math.e**3)
  shift_range: tuple[float | Array, float | Array] = (0.0, 100.0)

  def __post_init__(self):
    _check_gate(self, "Phased")

  @property
  def hidden_size(self) -> int:
    return self.cell.hidden_size

  def init(self, key: Array, input_size: int) -> Params:
    check_size("Phased.init", "input_size", input_size)
    k_cell, k_tau, k_shift = jax.random.split(key, 3)
    params = {"inner": self.cell.init(k_cell, input_size)}
    return params | _gate_params(self, k_tau, k_shift, self.hidden_size)

  def prepare(self, params: Params) -> Params:
    """The wrapped cell's `prepare` of its params, if it has one."""
    if not hasattr(self.cell, "prepare"):
      return params
    return {**params, "inner": self.cell.prepare(params["inner"])}

  def initial_carry(self, batch_size, dtype=jnp.float32):
    return self.cell.initial_carry(batch_size, dtype)

  def step(
    self,
    params: Params,
    carry,
    inputs: tuple[Array, Array],
    *,
    training: bool = False,
  ):
    """One time step: (carry, (x [B, I], t [B])) -> (carry, h [B, H])."""
    x, t = timed_inputs(self, inputs)
    new, _ = self.cell.step(params["inner"], carry, x, training=training)
    k = _gate(self, params, t, training)
    carry = jax.tree.map(lambda n, o: k * n + (1.0 - k) * o, new, carry)
    return carry, getattr(carry, "h", carry)
