"""The LSNN's spiking cells (LIF, ALIF), their spike function and helpers.

Bellec, Salaj, Subramoney, Legenstein & Maass, "Long short-term memory and
learning-to-learn in networks of spiking neurons", NeurIPS 2018; the step is
that of the official TF1 code, `lsnn/spiking_models.py`. This module also owns
the original's sparse signed initialisation (`weight_sampler`, from
`lsnn/toolbox/rewiring_tools.py`), the neuron signs, the readout's
exponential filter and the firing-rate regulariser of the tutorials.

Shapes: B is any leading batch shape, T time, I inputs, R recurrent neurons,
D = n_delay synaptic delay slots.
"""

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plstm import parallel
from plstm.cell import (
  Array,
  Params,
  batch_shape,
  cast,
  cast_matrices,
  check_size,
  einsum,
  is_traced,
)

# One number for all neurons, or one per neuron; each a float or a JAX scalar.
PerNeuron = float | Array | Sequence[float | Array]
# x [B, I] against a delay-expanded weight [I, R, D]: the D future slots.
_DELAYED = "...i,ijd->...jd"
# The params' entry of `ALIF.prepare`'s delay-expanded weights.
_EXPANDED = "_expanded"


class LSNNState(NamedTuple):
  """The carry of a LIF/ALIF layer, all float32.

  z: [B, R] spikes of the previous step, already divided by dt.
  v: [B, R] membrane voltages.
  b: [B, R] threshold adaptation.
  i_future: [B, R, D] input currents due at the next D steps; slot 0 is
    consumed by the step that receives this carry.
  z_buffer: [B, R, n_refractory] the last spikes, oldest first.
  """

  z: Array
  v: Array
  b: Array
  i_future: Array
  z_buffer: Array


class LSNNOutput(NamedTuple):
  """What a LIF/ALIF step emits, each [B, R]: spikes z_t (divided by dt),
  voltages v_t and adaptive thresholds A_t."""

  z: Array
  v: Array
  thr: Array


@jax.custom_jvp
def spike_function(v_scaled: Array, dampening_factor: float | Array) -> Array:
  r"""Heaviside spikes with the LSNN's triangular pseudo-derivative.

  .. math::
    z = H(v_{scaled}) = [v_{scaled} > 0], \qquad
    \frac{dz}{dv_{scaled}} := \gamma \max(0, 1 - |v_{scaled}|)

  with gamma the `dampening_factor` (0.3 in the paper). Returns z in the dtype
  of `v_scaled`. No gradient flows into `dampening_factor`, as in the
  original's `SpikeFunction`.
  """
  return (v_scaled > 0).astype(v_scaled.dtype)


@spike_function.defjvp
def _spike_function_jvp(primals, tangents):
  v_scaled, dampening_factor = primals
  v_dot, _ = tangents
  pseudo = dampening_factor * jnp.maximum(0.0, 1.0 - jnp.abs(v_scaled))
  return spike_function(v_scaled, dampening_factor), pseudo * v_dot


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _clip_through(d: Array, top: int) -> Array:
  """d clipped to [0, top], its gradient passed through unchanged, so a
  delay pushed past either end still learns which way to come back."""
  return jnp.clip(d, 0, top)


@_clip_through.defjvp
def _clip_through_jvp(top, primals, tangents):
  (d,), (d_dot,) = primals, tangents
  return _clip_through(d, top), d_dot


def _per_neuron(name: str, value: PerNeuron, n_rec: int) -> float | tuple:
  """A float, or a tuple of n_rec floats (hashable, for jit's static args);
  traced numbers (a packed sweep's) are kept as they are."""
  number = lambda x: x if is_traced(x) else float(x)
  if not isinstance(value, list | tuple) and np.ndim(value) == 0:
    return number(value)
  traced = is_traced(value)
  shape = jnp.shape(jnp.asarray(value)) if traced else np.shape(value)
  if len(shape) != 1 or shape[0] != n_rec:
    raise ValueError(
      f"{name} must be a number or {n_rec} values (one per neuron), got shape "
      f"{shape}."
    )
  return tuple(number(x) for x in value)


@dataclasses.dataclass(frozen=True)
class ALIF:
  r"""A layer of adaptive leaky integrate-and-fire neurons (the LSNN's ALIF).

  The original's `ALIF.__call__` and `LIF_dynamic`. One step, with z, v, b
  the previous step's values and W^d[i, j] = w[i, j]
  where the synapse's delay d[i, j] equals d, else 0:

  .. math::
    I_{buf} &= I_{future} + x_t W_{in}^{0..D-1} + z W_{rec}^{0..D-1}
      \quad [B, R, D] \\
    b_t &= \rho b + (1 - \rho) z, \quad \rho = e^{-dt/\tau_a} \\
    A_t &= thr + \beta b_t \\
    v_t &= \alpha v + (1 - \alpha) I_{buf}[..., 0] - z A_t dt,
      \quad \alpha = e^{-dt/\tau} \\
    z_t &= H\left(\frac{v - A_t}{A_t}\right) / dt

  z_t is forced to 0 while any of the last n_refractory spikes is nonzero.
  The new carry is (z_t, v_t, b_t, I_buf shifted one slot towards 0 with a
  zero slot appended, z_buffer shifted with z_t appended). H is
  `spike_function`, so dz/dv = gamma max(0, 1 - |v - A|/A)/A, and the
  gradient also flows into A_t.

  The spike z_t is decided by the previous voltage v against the current
  threshold A_t, and its reset (-z A dt) lands one step later, as in the
  original: without refractoriness a neuron may fire on consecutive steps. An
  input with delay d enters v at step t + d; a recurrent spike with delay d,
  fed back one step later as the carry's z, enters at t + 1 + d.

  Params: `w_in` [I, R], `w_rec` [R, R] (in `param_dtype`, float32; the
  diagonal of `w_rec` is ignored: no self-connections) and, when
  n_delay > 1, the synaptic delays `d_in` [I, R] and `d_rec` [R, R] (int32
  in {0..D-1}, `delays`; float32 and trained with `learn_delays`). With
  n_delay = 1 every delay is 0 and the params hold no delays. Carry:
  `LSNNState`. Inputs: x [B, I]. Outputs: `LSNNOutput(z, v, thr)`, thr
  being A_t. `dtype` (keyword): the computation dtype of the two delayed
  products (see `plstm.cell`); spikes (0 or 1/dt) are exact in bfloat16
  when 1/dt is (dt = 1), inputs and weights are rounded to it.

  tau, thr, tau_a and beta are numbers or sequences of R values (one per
  neuron); beta = 0 makes a neuron a LIF neuron (the sMNIST network has
  beta = [0] * 120 + [1.8] * 100). Each number, and dt and
  dampening_factor, is a float or a JAX scalar (a packed sweep's); traced
  ones are not checked, and decays that involve them are computed in
  float32.

  Cost: each step multiplies x and z by the delay-expanded weights
  [I, R * D] and [R, R * D], D times a plain matrix product, as the original's
  einsums. The expanded weights depend on the params only, so under
  `plstm.scan` they are built once, outside the loop (`prepare`), and their
  gradient taken back to w and d once per sequence. A training step is
  these products (forward, and the two of the backward pass) and little
  else: on CPU they run at XLA's GEMM rate for their shapes, so the cost
  scales with D.

  Learnable delays (`learn_delays=True`; a departure from LSNN-official,
  whose delays are fixed): d_in and d_rec are float32 params, drawn as the
  integer ones (the same integers for the same key) and trained by their
  gradient. A delay d is read clipped to [0, D - 1] and its weight split
  linearly between the two slots around it:

  .. math::
    W^k[i, j] = w[i, j] \max(0, 1 - |\bar d[i, j] - k|), \quad
    \bar d = \mathrm{clip}(d, 0, D - 1)

  so an integer d gives exactly the fixed form (outputs, and gradients with
  respect to the weights), and for k < d < k + 1,
  dL/dd = w (dL/dW^{k+1} - dL/dW^k). At an integer d the slot pair is
  [d, d + 1] (for d = D - 1, [D - 2, D - 1]): a one-sided difference. The
  clip passes its gradient through unchanged, so a delay pushed past an end
  can come back. A dormant synapse (w = 0) gets no delay gradient; with
  DEEP R, `plstm.redraw_delays` gives a reconnected synapse a fresh delay.
  Linear interpolation is the simplest of the kernels of learned-delay
  methods (DCLS spreads a delay with a Gaussian of trained width); it costs
  nothing beyond the fixed form, whose delay-expanded weights it reuses.
  The step follows the params: integer delays are fixed, float ones
  interpolated.

  Notes:
    The fixed delays are integer params: drawn at init, never trained (the
    original's non-trainable `rd.randint(n_delay)`, from NumPy's global RNG;
    here from the key of `init` or `delays`). `jax.grad` refuses integer
    inputs, so a training loop of one's own differentiates the floating
    leaves only: `trained = plstm.trainable(params)` (the delays
    replaced by None, which `jax.grad` and optax pass over), the loss of
    `plstm.merge(trained, params)`, and the updates applied to
    `trained`. (`jax.grad(..., allow_int=True)` differentiates, but gives
    the delays float0 gradients, which optax.adam rejects.)

    The original's voltage unit V0 = 1 and its injected noise current 0 (its
    defaults, those of every tutorial) are not options here. The decays
    alpha and rho are computed in float64 and rounded to float32 (the
    original computes alpha in float32: a difference of at most one ulp).

  Raises:
    ValueError: if n_rec or n_delay is not an integer >= 1, n_refractory
      not one >= 0, `init`'s (or `delays`') `input_size` not one >= 1; if
      dt, tau, thr or tau_a is not positive.
  """

  n_rec: int
  tau: PerNeuron = 20.0
  thr: PerNeuron = 0.01
  dt: float | Array = 1.0
  n_refractory: int = 0
  n_delay: int = 1
  tau_a: PerNeuron = 200.0
  beta: PerNeuron = 1.6
  dampening_factor: float | Array = 0.3
  learn_delays: bool = dataclasses.field(default=False, kw_only=True)
  dtype: Any = dataclasses.field(default=None, kw_only=True)
  param_dtype: Any = dataclasses.field(default=jnp.float32, kw_only=True)

  def __post_init__(self):
    name = type(self).__name__
    check_size(name, "n_rec", self.n_rec)
    check_size(name, "n_delay", self.n_delay)
    check_size(name, "n_refractory", self.n_refractory, minimum=0)
    if not is_traced(self.dt) and self.dt <= 0:
      raise ValueError(f"{name}: dt must be positive, got {self.dt}.")
    for field in ("tau", "thr", "tau_a", "beta"):
      value = _per_neuron(f"{name}.{field}", getattr(self, field), self.n_rec)
      object.__setattr__(self, field, value)
    for field in ("tau", "thr", "tau_a"):
      value = getattr(self, field)
      if not is_traced(value) and np.any(np.asarray(value) <= 0):
        raise ValueError(
          f"{name}: {field} must be positive, got {getattr(self, field)}."
        )

  @property
  def hidden_size(self) -> int:
    return self.n_rec

  def _constant(self, value) -> np.ndarray | Array:
    """A per-neuron float32 [R] constant (a JAX array if `value` is
    traced)."""
    if is_traced(value):
      return jnp.broadcast_to(jnp.asarray(value, jnp.float32), (self.n_rec,))
    return np.broadcast_to(np.asarray(value, np.float32), (self.n_rec,))

  def _decay(self, tau: PerNeuron) -> np.ndarray | Array:
    """exp(-dt / tau) [R], in float64 rounded to float32; in float32 when
    dt or tau is traced."""
    if is_traced(self.dt, tau):
      return self._constant(jnp.exp(-self.dt / jnp.asarray(tau, jnp.float32)))
    return self._constant(np.exp(-self.dt / np.asarray(tau)))

  def init(self, key: Array, input_size: int) -> Params:
    """The original's dense init: w_in ~ N(0, 1/I), w_rec ~ N(0, 1/R), and
    the delays of `delays` when n_delay > 1."""
    check_size(f"{type(self).__name__}.init", "input_size", input_size)
    k_in, k_rec, k_delay = jax.random.split(key, 3)
    r = self.n_rec
    weights = {
      "w_in": jax.random.normal(k_in, (input_size, r), jnp.float32)
      / math.sqrt(input_size),
      "w_rec": jax.random.normal(k_rec, (r, r), jnp.float32) / math.sqrt(r),
    }
    return {
      **cast(weights, self.param_dtype),
      **self.delays(k_delay, input_size),
    }

  def delays(self, key: Array, input_size: int) -> Params:
    """The synaptic delays {"d_in": [I, R], "d_rec": [R, R]}.

    Uniform in {0..D-1}, as the original's non-trainable
    `rd.randint(n_delay)`, from two streams of `key`, so d_rec does not
    depend on I: int32, or with `learn_delays` the same integers as
    float32 (so a learnable cell starts as the fixed one of the same key).
    Empty with n_delay = 1 (every delay is 0).
    """
    check_size(f"{type(self).__name__}.delays", "input_size", input_size)
    if self.n_delay == 1:
      return {}
    k_in, k_rec = jax.random.split(key)
    r = self.n_rec
    dtype = jnp.float32 if self.learn_delays else jnp.int32
    draw = lambda k, shape: jax.random.randint(
      k, shape, 0, self.n_delay
    ).astype(dtype)
    return {
      "d_in": draw(k_in, (input_size, r)),
      "d_rec": draw(k_rec, (r, r)),
    }

  def initial_carry(
    self, batch_size: int | tuple[int, ...], dtype=jnp.float32
  ) -> LSNNState:
    """Zeros, as the original's `zero_state`."""
    shape = (*batch_shape(batch_size), self.n_rec)
    zeros = jnp.zeros(shape, dtype)
    return LSNNState(
      z=zeros,
      v=zeros,
      b=zeros,
      i_future=jnp.zeros((*shape, self.n_delay), dtype),
      z_buffer=jnp.zeros((*shape, self.n_refractory), dtype),
    )

  def prepare(self, params: Params) -> Params:
    """The params with their delay-expanded weights [I, R, D] and
    [R, R, D] (in the computation dtype), built once before `plstm.scan`'s
    loop: the steps then read them, and the backward pass takes their
    gradient back to the weights and delays once, not at every step."""
    params = cast_matrices(params, ("w_in", "w_rec"), self.dtype)
    return {**params, _EXPANDED: self._expanded(params)}

  def _expanded(self, params: Params) -> tuple[Array, Array]:
    """(W_in [I, R, D], W_rec [R, R, D]): the weights in their delay
    slots, W_rec without its diagonal."""
    d_in, d_rec = self._param_delays(params)
    no_autapse = np.eye(self.n_rec, dtype=bool)
    w_rec = jnp.where(no_autapse, 0.0, params["w_rec"])
    return (
      self._delayed(params["w_in"], d_in),
      self._delayed(w_rec, d_rec),
    )

  def project(self, params: Params, x: Array) -> Array:
    """x as float32: the input weights are applied inside the step.

    The step adds x_t's share of the D future slots to the carry's
    [B, R, D] buffer, as the original does. Hoisting the delayed input
    currents, sum_d x_{t-d} W_in^d [B, T, R], out of the loop would cost the
    same products (it measured no faster on CPU), and the carry would then
    lack the currents still in flight after the last step, and masked
    steps would no longer hold their inputs back.
    """
    del params
    return x.astype(jnp.float32)

  def _delayed(self, w: Array, d: Array | None) -> Array:
    """w [K, R] with a delay axis: [K, R, D], w[k, j] in slot d[k, j]
    (d None: every delay 0, D = 1); a float d[k, j] is clipped to
    [0, D - 1] and w[k, j] split between its two neighbouring slots."""
    if d is None:
      return w[..., None]
    slots = jnp.arange(self.n_delay)
    if jnp.issubdtype(d.dtype, jnp.integer):
      return jnp.where(d[..., None] == slots, w[..., None], 0.0)
    slots = slots.astype(jnp.float32)
    d = _clip_through(d.astype(jnp.float32), self.n_delay - 1)
    low = jax.lax.stop_gradient(jnp.minimum(jnp.floor(d), self.n_delay - 2.0))
    frac = (d - low)[..., None]
    low = low[..., None]
    share = jnp.where(slots == low, 1 - frac, 0.0)
    share = jnp.where(slots == low + 1, frac, share)
    return w[..., None] * share.astype(w.dtype)

  def _param_delays(self, params: Params) -> tuple:
    """(d_in, d_rec) of the params, None with n_delay = 1."""
    if self.n_delay == 1:
      return None, None
    if "d_in" not in params or "d_rec" not in params:
      raise ValueError(
        f"{type(self).__name__} with n_delay = {self.n_delay} needs the "
        "delays in its params: add cell.delays(key, input_size) (cell.init "
        "draws them)."
      )
    return params["d_in"], params["d_rec"]

  def recur(
    self,
    params: Params,
    carry: LSNNState,
    x: Array,
    *,
    training: bool = False,
  ) -> tuple[LSNNState, LSNNOutput]:
    """One step from x [B, I] (already `project`ed)."""
    del training  # The cell behaves the same in training and evaluation.
    z, v, b, i_future, z_buffer = carry
    w_in, w_rec = params.get(_EXPANDED) or self._expanded(params)
    i_buf = (
      i_future
      + einsum(_DELAYED, x, w_in, self.dtype)
      + einsum(_DELAYED, z, w_rec, self.dtype)
    )
    dt = self.dt
    alpha = self._decay(self.tau)
    rho = self._decay(self.tau_a)
    b_new = rho * b + (1 - rho) * z
    thr = self._constant(self.thr) + b_new * self._constant(self.beta)
    v_new = alpha * v + (1 - alpha) * i_buf[..., 0] - z * thr * dt
    z_new = spike_function((v - thr) / thr, self.dampening_factor)
    if self.n_refractory > 0:
      refractory = jnp.max(z_buffer, axis=-1) > 0
      z_new = jnp.where(refractory, 0.0, z_new)
    z_new = z_new / dt
    new_carry = LSNNState(
      z=z_new,
      v=v_new,
      b=b_new,
      i_future=jnp.concatenate(
        [i_buf[..., 1:], jnp.zeros_like(i_buf[..., :1])], axis=-1
      ),
      z_buffer=jnp.concatenate([z_buffer, z_new[..., None]], axis=-1)[..., 1:],
    )
    return new_carry, LSNNOutput(z=z_new, v=v_new, thr=thr)

  def step(
    self,
    params: Params,
    carry: LSNNState,
    x: Array,
    *,
    training: bool = False,
  ) -> tuple[LSNNState, LSNNOutput]:
    """One time step: (carry, x [B, I]) -> (carry, LSNNOutput)."""
    return self.recur(params, carry, self.project(params, x), training=training)


@dataclasses.dataclass(frozen=True)
class LIF(ALIF):
  """A layer of leaky integrate-and-fire neurons: `ALIF` with beta = 0.

  The original's `LIF` (default thr = 0.03). The carry keeps an unused b, and
  the outputs an A_t that is the constant thr, so that LIF and ALIF layers
  share `LSNNState` and `LSNNOutput` (the original's LIF emits z only).
  """

  thr: PerNeuron = 0.03
  tau_a: PerNeuron = dataclasses.field(default=200.0, init=False)
  beta: PerNeuron = dataclasses.field(default=0.0, init=False)


def neuron_signs(
  n: int, proportion_excitatory: float, *, shuffle_key: Array | None = None
) -> Array:
  """Dale's-law signs [n] in {-1, +1}, float32, as the LSNN tutorials.

  n_exc = int(proportion_excitatory * n) + 1 excitatory neurons (the
  tutorials' "+ 1"; capped at n, where the original would return n + 1
  signs), laid out as [-1] * n_inh + [+1] * n_exc, and permuted with
  `shuffle_key` if given (the sMNIST tutorial shuffles the input signs, not
  the recurrent ones).

  Raises:
    ValueError: if n is not an integer >= 1 or proportion_excitatory is not
      in [0, 1].
  """
  check_size("neuron_signs", "n", n)
  if not 0 <= proportion_excitatory <= 1:
    raise ValueError(
      "neuron_signs: proportion_excitatory must be in [0, 1], got "
      f"{proportion_excitatory!r}."
    )
  n_exc = min(int(proportion_excitatory * n) + 1, n)
  signs = jnp.concatenate(
    [-jnp.ones(n - n_exc, jnp.float32), jnp.ones(n_exc, jnp.float32)]
  )
  if shuffle_key is None:
    return signs
  return jax.random.permutation(shuffle_key, signs)


def _spectral_radius(w: Array) -> Array:
  """max |eigenvalue| of a square float32 matrix, on the host (jnp.linalg.eig
  has no GPU kernel)."""

  def radius(w):
    return np.float32(np.max(np.abs(np.linalg.eigvals(np.float64(w)))))

  return jax.pure_callback(
    radius,
    jax.ShapeDtypeStruct((), jnp.float32),
    w,
    vmap_method="sequential",
  )


def _random_signed_matrix(key: Array, neuron_sign: Array, n_out: int) -> Array:
  """The original's `random_sparse_signed_matrix(neuron_sign, n_out=n_out)`.

  Returns theta [n, n_out] >= 0 (the magnitudes; the signs are those of the
  rows), n = len(neuron_sign):
    1. theta = |N(0, 1)| [n, n];
    2. the inhibitory rows are scaled so that total I = total E;
    3. each column gets |its E - I imbalance| spread evenly over the side that
       is short (E if I dominates, else I), so every column's signed sum is 0;
    4. theta is scaled so that max |eigenvalue| of sign * theta is 1;
    5. columns: the first n_out, or n_out drawn with replacement if n < n_out.
  Without inhibitory neurons, steps 2 and 3 are skipped (as the original,
  which warns). The original zeroes a column lacking E or I inputs; with
  p = 1 this happens only without inhibitory neurons, handled by step 3's skip.
  """
  n = neuron_sign.shape[0]
  k_theta, k_sel = jax.random.split(key)
  exc = (neuron_sign > 0)[:, None]
  inh = (neuron_sign < 0)[:, None]
  n_exc = jnp.sum(exc, dtype=jnp.float32)
  n_inh = jnp.sum(inh, dtype=jnp.float32)
  theta = jnp.abs(jax.random.normal(k_theta, (n, n)))
  total_e = jnp.sum(jnp.where(exc, theta, 0.0))
  total_i = jnp.sum(jnp.where(inh, theta, 0.0))
  theta = jnp.where(inh, theta * total_e / jnp.maximum(total_i, 1e-30), theta)
  column_sum = jnp.sum(jnp.where(exc, theta, -theta), axis=0)
  per_exc = jnp.where(exc, 1.0 / jnp.maximum(n_exc, 1.0), 0.0)
  per_inh = jnp.where(inh, 1.0 / jnp.maximum(n_inh, 1.0), 0.0)
  short_side = jnp.where(column_sum < 0, per_exc, per_inh)
  balanced = theta + jnp.abs(column_sum) * short_side
  theta = jnp.where(n_inh > 0, balanced, theta)
  theta = theta / _spectral_radius(neuron_sign[:, None] * theta)
  if n < n_out:
    return theta[:, jax.random.randint(k_sel, (n_out,), 0, n)]
  return theta[:, :n_out]


def weight_sampler(
  key: Array,
  n_in: int,
  n_out: int,
  p: float,
  neuron_sign: Array | None = None,
) -> tuple[Array, Array]:
  """The original's sparse initialisation for DEEP R (`weight_sampler`).

  A mask of nb = int(n_in n_out p) coordinates, rows and columns drawn
  independently WITH replacement (so duplicates leave fewer than nb
  connections, as in the original), on magnitudes theta:
    * without neuron_sign, theta = |N(0, 1)| / sqrt(n_in) and a random sign
      per synapse;
    * with neuron_sign [n_in] of +-1 (presynaptic neurons are rows), theta
      of `_random_signed_matrix` (balanced E/I columns, spectral radius 1)
      and the sign of each row's neuron.

  Traceable under jax.jit and jax.vmap (the eigenvalues go through a host
  callback).

  Returns:
    (w [n_in, n_out], sign [n_in, n_out]), float32: w = sign * theta * mask
    and the full +-1 sign matrix, the fixed signs of DEEP R.

  Raises:
    ValueError: if n_in or n_out is not an integer >= 1, or the
      connectivity p is not in (0, 1].
  """
  check_size("weight_sampler", "n_in", n_in)
  check_size("weight_sampler", "n_out", n_out)
  if not 0 < p <= 1:
    raise ValueError(
      f"weight_sampler: p (the connectivity) must be in (0, 1], got {p!r}."
    )
  k_rows, k_cols, k_theta, k_sign = jax.random.split(key, 4)
  nb = int(n_in * n_out * p)
  rows = jax.random.randint(k_rows, (nb,), 0, n_in)
  cols = jax.random.randint(k_cols, (nb,), 0, n_out)
  mask = jnp.zeros((n_in, n_out), bool).at[rows, cols].set(True)
  if neuron_sign is None:
    theta = jnp.abs(jax.random.normal(k_theta, (n_in, n_out))) / math.sqrt(n_in)
    sign = jnp.where(
      jax.random.bernoulli(k_sign, 0.5, (n_in, n_out)), 1.0, -1.0
    )
  else:
    neuron_sign = jnp.asarray(neuron_sign, jnp.float32)
    if neuron_sign.shape != (n_in,):
      raise ValueError(
        f"weight_sampler: neuron_sign must have shape ({n_in},), got "
        f"{neuron_sign.shape}."
      )
    theta = _random_signed_matrix(k_theta, neuron_sign, n_out)
    sign = jnp.broadcast_to(neuron_sign[:, None], (n_in, n_out))
  return jnp.where(mask, sign * theta, 0.0), sign


def exp_convolve(x: Array, decay: float | Array, axis: int = 1) -> Array:
  """The readout's low-pass filter a_t = decay a_{t-1} + (1 - decay) x_t.

  From a_{-1} = 0 along `axis` (time, [B, T, R] by default), as the
  original's `exp_convolve`; `decay` (= exp(-dt / tau_out)) is a number or
  broadcasts against x. Computed with `jax.lax.associative_scan` over the
  affine maps a -> decay a + (1 - decay) x_t, in O(log T) depth.
  """
  decay = jnp.broadcast_to(jnp.asarray(decay, x.dtype), x.shape)

  def compose(earlier, later):
    (a1, b1), (a2, b2) = earlier, later
    return a1 * a2, a2 * b1 + b2

  _, a = jax.lax.associative_scan(compose, (decay, (1 - decay) * x), axis=axis)
  return a


def population_rate(z: Array) -> Array:
  """Each neuron's mean of z [B, T, R] over batch and time: [R], over the
  whole batch when its rows are split over devices (`plstm.parallel`)."""
  total = parallel.data_sum(jnp.sum(z, axis=(0, 1)))
  return total / parallel.data_sum(z.shape[0] * z.shape[1])


def firing_rate_loss(z: Array, f0: float | Array, dt: float = 1.0) -> Array:
  """The tutorials' firing-rate regulariser, before its coefficient.

  sum_j (mean_{batch, time} z_j / dt - f0)^2 for spikes z [B, T, R]; f0 is
  the target rate per step (10 Hz at dt = 1 ms is 0.01), a number or [R].
  The mean is over the whole batch when its rows are split over devices
  (`plstm.parallel`).
  """
  rate = population_rate(z) / dt
  return jnp.sum(jnp.square(rate - f0))
