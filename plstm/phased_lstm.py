"""The Phased LSTM (Neil, Pfeiffer & Liu, NIPS 2016) and its time gate.

Shapes: B is any leading batch shape, I inputs, H hidden units.
"""

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from plstm.lstm import LSTM, Array, Initializer, LSTMState, Params


def time_gate(
  t: Array, tau: Array, shift: Array, r_on: Array, alpha: float = 0.0
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
    alpha: slope of the closed phase (the leak); 1e-3 in training in the paper,
      0 in evaluation.

  Returns:
    k [B, H] in the dtype of `tau`.

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
  """

  timed: ClassVar[bool] = True  # consumes (x, t)

  peepholes: bool = True
  forget_bias: float = 0.0
  input_bias: float = -0.1
  kernel_init: Initializer = jax.nn.initializers.normal(0.1)
  recurrent_kernel_init: Initializer = jax.nn.initializers.normal(0.1)
  alpha: float = 1e-3
  r_on: float = 0.05
  train_r_on: bool = True
  tau_range: tuple[float, float] = (math.e, math.e**3)
  shift_range: tuple[float, float] = (0.0, 100.0)

  def __post_init__(self):
    super().__post_init__()
    lo, hi = self.tau_range
    if not 0 < lo <= hi:
      raise ValueError(
        f"PhasedLSTM: tau_range must satisfy 0 < low <= high, got "
        f"{self.tau_range}."
      )
    if not 0 < self.r_on <= 1:
      raise ValueError(f"PhasedLSTM: r_on must be in (0, 1], got {self.r_on}.")
    if self.alpha < 0:
      raise ValueError(f"PhasedLSTM: alpha must be >= 0, got {self.alpha}.")

  def init(self, key: Array, input_size: int) -> Params:
    k_lstm, k_tau, k_shift = jax.random.split(key, 3)
    params = super().init(k_lstm, input_size)
    h = self.hidden_size
    log_lo, log_hi = (math.log(v) for v in self.tau_range)
    params["tau"] = jnp.exp(
      jax.random.uniform(k_tau, (h,), jnp.float32, minval=log_lo, maxval=log_hi)
    )
    params["shift"] = jax.random.uniform(
      k_shift,
      (h,),
      jnp.float32,
      minval=self.shift_range[0],
      maxval=self.shift_range[1],
    )
    params["r_on"] = jnp.full((h,), self.r_on, jnp.float32)
    return params

  def project(
    self, params: Params, inputs: tuple[Array, Array]
  ) -> tuple[Array, Array]:
    """(x [..., I], t [...]) -> (x W_x + b [..., 4H], t)."""
    x, t = inputs
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
    r_on = params["r_on"]
    if not self.train_r_on:
      r_on = jax.lax.stop_gradient(r_on)
    k = time_gate(
      t, params["tau"], params["shift"], r_on, self.alpha if training else 0.0
    )
    c = k * c_new + (1.0 - k) * carry.c
    h = k * h_new + (1.0 - k) * carry.h
    return LSTMState(c, h), h
