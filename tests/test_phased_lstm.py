"""Tests of plstm.time_gate and plstm.PhasedLSTM.

The references are hand-computed values and a float64 NumPy re-derivation of
the official Theano cell (public_plstm `plstm.py`, with t - s for t + s).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads

import plstm

I = 3
# Six units whose gates, at the timestamps T_STEP below, are a mix of rising,
# falling and closed, each phase at least 0.019 from a kink of the gate.
TAU = np.array([2.0, 3.0, 5.0, 7.0, 11.0, 13.0])
SHIFT = np.array([0.25, 1.5, 0.75, 2.0, 3.25, 0.5])
R_ON = np.array([0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
T_STEP = np.array([0.9, 2.6, 5.3, 8.8, 13.1])
H = len(TAU)


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _np_phase(t, tau, shift):
  tau = np.abs(np.asarray(tau, np.float64))
  t = np.asarray(t, np.float64)[..., None]
  return np.mod(t - np.asarray(shift, np.float64), tau) / tau


def _np_time_gate(t, tau, shift, r_on, alpha):
  phi = _np_phase(t, tau, shift)
  r_on = np.abs(np.asarray(r_on, np.float64))
  return np.where(
    phi <= r_on / 2,
    2 * phi / r_on,
    np.where(phi <= r_on, 2 - 2 * phi / r_on, alpha * phi),
  )


def _np_step(
  params,
  c_prev,
  h_prev,
  x,
  t,
  alpha,
  output_peephole_on="c_new",
  peephole_cell=None,
  return_candidate=False,
):
  """One Phased LSTM step in float64 NumPy (paper eqs. 1-9, official code).

  `output_peephole_on` and `peephole_cell` give the wrong readings that the
  tests must tell apart: the output peephole on the gated c_t, and input and
  forget peepholes on some other cell than c_{t-1}.
  """
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  c_prev = np.asarray(c_prev, np.float64)
  h_prev = np.asarray(h_prev, np.float64)
  c_peep = c_prev if peephole_cell is None else peephole_cell
  z = np.asarray(x, np.float64) @ p["w_x"] + h_prev @ p["w_h"] + p["b"]
  z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)
  i = _sigmoid(z_i + p["p_i"] * c_peep)
  f = _sigmoid(z_f + p["p_f"] * c_peep)
  c_new = f * c_prev + i * np.tanh(z_g)
  k = _np_time_gate(t, p["tau"], p["shift"], p["r_on"], alpha)
  c = k * c_new + (1 - k) * c_prev
  peep = {"c_new": c_new, "c_gated": c}[output_peephole_on]
  h_new = _sigmoid(z_o + p["p_o"] * peep) * np.tanh(c_new)
  h = k * h_new + (1 - k) * h_prev
  return (c, h, c_new) if return_candidate else (c, h)


_jit_time_gate = jax.jit(plstm.time_gate)


def _gate(t, tau, shift, r_on, alpha=0.0):
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  return _jit_time_gate(f32(t), f32(tau), f32(shift), f32(r_on), alpha)


def _params(seed=0):
  """Random params with large enough weights and the time params above."""
  rng = np.random.default_rng(seed)
  shapes = {
    "w_x": (I, 4 * H),
    "w_h": (H, 4 * H),
    "b": (4 * H,),
    "p_i": (H,),
    "p_f": (H,),
    "p_o": (H,),
  }
  params = {name: rng.normal(size=shape) for name, shape in shapes.items()}
  params["w_h"] = 0.5 * params["w_h"]
  params.update(tau=TAU, shift=SHIFT, r_on=R_ON)
  return {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}


def _carry(batch=None, seed=1):
  batch = batch or (len(T_STEP),)
  rng = np.random.default_rng(seed)
  return plstm.LSTMState(
    c=jnp.asarray(rng.normal(size=(*batch, H)), jnp.float32),
    h=jnp.asarray(np.tanh(rng.normal(size=(*batch, H))), jnp.float32),
  )


def _inputs(batch=None, seed=2, t_offset=0.0):
  batch = batch or (len(T_STEP),)
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(*batch, I)), jnp.float32)
  t = jnp.asarray(np.resize(T_STEP, batch) + t_offset, jnp.float32)
  return x, t


def _step(cell, training=False):
  return jax.jit(functools.partial(cell.step, training=training))


@functools.cache
def _init(cell, input_size=2):
  return cell.init(jax.random.key(0), input_size)


def test_the_chosen_timestamps_cover_every_phase_away_from_kinks():
  phi = _np_phase(T_STEP, TAU, SHIFT)
  rising, falling = phi < R_ON / 2, (phi > R_ON / 2) & (phi < R_ON)
  assert rising.any() and falling.any() and (phi > R_ON).any()
  kinks = np.stack([phi, np.abs(phi - R_ON / 2), np.abs(phi - R_ON), 1 - phi])
  assert kinks.min() > 0.01


# time_gate ------------------------------------------------------------------


# tau = 4, r_on = 0.5, so the gate is open for t mod 4 in [0, 2].
@pytest.mark.parametrize(
  "t, expected",
  [
    (0.0, 0.0),  # Start of the period: closed, k = 2 * 0 / r_on.
    (0.5, 0.5),  # Rising: phi = 1/8, k = 2 phi / r_on.
    (1.0, 1.0),  # phi == r_on / 2: the peak.
    (1.5, 0.5),  # Falling: phi = 3/8, k = 2 - 2 phi / r_on.
    (2.0, 0.0),  # phi == r_on: still the falling branch, so 0.
    (2.5, 0.1 * 0.625),  # Closed: the leak alpha * phi.
    (3.0, 0.1 * 0.75),
    (3.5, 0.1 * 0.875),
  ],
)
def test_time_gate_hand_values(t, expected):
  k = _gate([t], [4.0], [0.0], [0.5], alpha=0.1)
  np.testing.assert_allclose(k, [[expected]], rtol=1e-6, atol=1e-7)


def test_time_gate_boundaries_are_inclusive_on_the_upper_side():
  # At phi == r_on the closed branch would give alpha * r_on, not 0.
  k = _gate([2.0], [4.0], [0.0], [0.5], alpha=0.5)
  assert k[0, 0] == 0.0
  k = _gate([1.0], [4.0], [0.0], [0.5], alpha=0.5)
  assert k[0, 0] == 1.0


def test_time_gate_closed_phase_is_zero_without_leak():
  k = _gate([2.5, 3.0, 3.9], [4.0], [0.0], [0.5])
  np.testing.assert_array_equal(k, np.zeros((3, 1)))


def test_time_gate_subtracts_the_shift():
  # t - s = 0.5 gives phi = 1/8 (open); t + s = 2.5 would give a closed gate.
  k = _gate([1.5], [4.0], [1.0], [0.5], alpha=0.1)
  np.testing.assert_allclose(k, [[0.5]], rtol=1e-6)


@pytest.mark.parametrize(
  "t, expected",
  [
    (-3.5, 0.5),  # phi = 1/8, not -7/8.
    (-2.5, 0.5),  # phi = 3/8, falling.
    (-4.0, 0.0),
    (-2.0, 0.0),  # phi = 1/2 == r_on.
    (-0.5, 0.1 * 0.875),
    (-13.0, 0.1 * 0.75),
  ],
)
def test_time_gate_negative_t_uses_floor_mod(t, expected):
  k = _gate([t], [4.0], [0.0], [0.5], alpha=0.1)
  np.testing.assert_allclose(k, [[expected]], rtol=1e-6, atol=1e-7)


def test_time_gate_phase_in_unit_interval_for_negative_t():
  # With a tiny r_on and alpha = 1, the closed branch returns phi itself.
  t = np.linspace(-50.0, -0.25, 40)
  tau = np.array([1.5, 4.0, 7.25])
  shift = np.array([0.5, 3.0, -2.0])
  r_on = np.full(3, 1e-3)
  phi = _np_phase(t, tau, shift)
  assert (phi > 2e-3).all()  # All in the closed phase.
  k = _gate(t, tau, shift, r_on, alpha=1.0)
  assert np.all(np.asarray(k) >= 0) and np.all(np.asarray(k) < 1)
  np.testing.assert_allclose(k, phi, atol=1e-5)


@pytest.mark.parametrize("periods", [1, 3, 25, 1000])
def test_time_gate_wraps_around(periods):
  t = np.array([0.5, 1.5, 3.0]) + 4.0 * periods
  k = _gate(t, [4.0], [0.0], [0.5], alpha=0.1)
  np.testing.assert_allclose(k, [[0.5], [0.5], [0.075]], rtol=1e-5)


def test_time_gate_uses_abs_tau_and_abs_r_on():
  t = np.linspace(-20.0, 20.0, 33)
  tau, shift, r_on = TAU, SHIFT, R_ON
  k = _gate(t, tau, shift, r_on, alpha=0.1)
  for signs in [(-1, 1), (1, -1), (-1, -1)]:
    k_neg = _gate(t, signs[0] * tau, shift, signs[1] * r_on, alpha=0.1)
    np.testing.assert_array_equal(k_neg, k)
  np.testing.assert_allclose(
    _gate([0.5], [-4.0], [0.0], [-0.5]), [[0.5]], rtol=1e-6
  )


def test_time_gate_matches_numpy_on_random_values():
  rng = np.random.default_rng(0)
  t = rng.uniform(-30, 30, size=64)
  tau = np.exp(rng.uniform(0, 3, size=H))
  shift = rng.uniform(0, 10, size=H)
  r_on = rng.uniform(0.05, 0.9, size=H)
  k = _gate(t, tau, shift, r_on, alpha=0.01)
  expected = _np_time_gate(t, tau, shift, r_on, 0.01)
  np.testing.assert_allclose(k, expected, atol=2e-4)


def test_time_gate_shapes_and_dtype():
  k = _gate(np.arange(5.0), TAU, SHIFT, R_ON)
  assert k.shape == (5, H) and k.dtype == jnp.float32
  k2 = _gate(np.arange(6.0).reshape(2, 3), TAU, SHIFT, R_ON)
  assert k2.shape == (2, 3, H)
  np.testing.assert_array_equal(
    k2.reshape(6, H), _gate(np.arange(6.0), TAU, SHIFT, R_ON)
  )


def test_time_gate_accepts_integer_timestamps():
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  k = plstm.time_gate(jnp.arange(9), f32([4.0]), f32([0.0]), f32([0.5]), 0.1)
  expected = _np_time_gate(np.arange(9), [4.0], [0.0], [0.5], 0.1)
  assert k.dtype == jnp.float32
  np.testing.assert_allclose(k, expected, rtol=1e-6)


# x = t - s with s = 0, tau = 4, r_on = 0.5, alpha = 0.1, so x / tau counts
# the periods. Through the mod, phi = x / tau - floor(x / tau): dphi/dtau is
# -x / tau^2 (Theano's mod gradient, -floor(x / tau), included).
@pytest.mark.parametrize(
  "t, dk",
  [
    # Rising: k = 2 phi / r_on.
    (
      8.5,
      {
        "t": 1.0,
        "tau": -2 * 8.5 / (0.5 * 16),
        "shift": -1.0,
        "r_on": -2 * 0.125 / 0.25,
      },
    ),
    # Falling: k = 2 - 2 phi / r_on.
    (
      9.5,
      {
        "t": -1.0,
        "tau": 2 * 9.5 / (0.5 * 16),
        "shift": 1.0,
        "r_on": 2 * 0.375 / 0.25,
      },
    ),
    # Closed: k = alpha phi.
    (11.0, {"t": 0.025, "tau": -0.1 * 11 / 16, "shift": -0.025, "r_on": 0.0}),
  ],
)
def test_time_gate_gradients_by_hand(t, dk):
  def k(t, tau, shift, r_on):
    return plstm.time_gate(t, tau, shift, r_on, 0.1)[0, 0]

  args = [jnp.asarray(v, jnp.float32) for v in ([t], [4.0], [0.0], [0.5])]
  grads = jax.jit(jax.grad(k, argnums=(0, 1, 2, 3)))(*args)
  for name, g in zip(("t", "tau", "shift", "r_on"), grads, strict=True):
    np.testing.assert_allclose(
      g[0], dk[name], rtol=1e-5, atol=1e-7, err_msg=name
    )


def _large_t_gate():
  # t = 3e6 + 0.9 with tau = 3 has phi = 0.3, k = 2 - 2 * 0.3 / 0.5 = 0.8.
  # In float32, t rounds to 3000001.0 and t / tau to 1000000.3125 (phi =
  # 0.3125, k = 0.75).
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  tau, shift, r_on = f32([3.0]), f32([0.0]), f32([0.5])
  t64 = jnp.asarray([3e6 + 0.9], jnp.float64)
  assert t64.dtype == jnp.float64
  k64 = plstm.time_gate(t64, tau, shift, r_on)
  k32 = plstm.time_gate(t64.astype(jnp.float32), tau, shift, r_on)
  assert k64.dtype == jnp.float32
  np.testing.assert_allclose(k64, [[0.8]], atol=1e-5)
  np.testing.assert_allclose(k32, [[0.75]], atol=1e-6)


def test_time_gate_float64_timestamps_keep_the_phase():
  with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
    _large_t_gate()
  assert jnp.zeros(()).dtype == jnp.float32  # x64 did not leak.


def test_time_gate_float64_timestamps_under_strict_promotion():
  with jax.enable_x64(True):
    _large_t_gate()


# PhasedLSTM: construction and init --------------------------------------------


# One big default init, read by several tests below.
BIG = plstm.PhasedLSTM(1024)


def test_init_names_and_shapes():
  params = _init(BIG, 2)
  h = 1024
  expected = {
    "w_x": (2, 4 * h),
    "w_h": (h, 4 * h),
    "b": (4 * h,),
    "p_i": (h,),
    "p_f": (h,),
    "p_o": (h,),
    "tau": (h,),
    "shift": (h,),
    "r_on": (h,),
  }
  assert {k: v.shape for k, v in params.items()} == expected
  assert all(v.dtype == jnp.float32 for v in params.values())


def test_init_default_biases_are_the_official_ones():
  b = _init(BIG)["b"]
  np.testing.assert_array_equal(b[:1024], np.full(1024, -0.1, np.float32))
  np.testing.assert_array_equal(b[1024:], np.zeros(3 * 1024))


def test_init_weights_are_normal_0_1():
  params = _init(BIG)
  for name in ("w_x", "w_h"):
    w = np.asarray(params[name])
    assert abs(w.mean()) < 0.01 and 0.095 < w.std() < 0.105, name
  for name in ("p_i", "p_f", "p_o"):
    p = np.asarray(params[name])
    assert abs(p.mean()) < 0.015 and 0.09 < p.std() < 0.11, name
  assert not np.allclose(params["p_i"], params["p_f"])


def test_init_tau_is_log_uniform_in_tau_range():
  tau = np.asarray(_init(BIG)["tau"])
  assert tau.min() >= math.e * (1 - 1e-6) and tau.max() <= math.e**3 * 1.0001
  log_tau = np.log(tau)
  # log(tau) ~ U(1, 3). A linear U(e, e^3) would put only 10% below e^1.5.
  assert abs(log_tau.mean() - 2.0) < 0.05
  assert abs(np.mean(log_tau < 1.5) - 0.25) < 0.05
  assert abs(np.mean(log_tau < 2.5) - 0.75) < 0.05


def test_init_default_shift_and_r_on():
  params = _init(BIG)
  shift = np.asarray(params["shift"])
  assert shift.min() >= 0.0 and shift.max() <= 100.0
  assert abs(shift.mean() - 50.0) < 3.0 and 25 < shift.std() < 33
  np.testing.assert_array_equal(params["r_on"], np.full(1024, 0.05, np.float32))
  # tau and shift are drawn independently.
  assert abs(np.corrcoef(params["tau"], shift)[0, 1]) < 0.15


def test_init_follows_custom_hyperparameters():
  cell = plstm.PhasedLSTM(
    1024,
    tau_range=(1.0, 1000.0),
    shift_range=(-5.0, 5.0),
    r_on=0.2,
    forget_bias=1.5,
    input_bias=0.25,
  )
  params = _init(cell)
  log10_tau = np.log10(np.asarray(params["tau"]))
  assert log10_tau.min() >= -1e-6 and log10_tau.max() <= 3 + 1e-6
  assert abs(log10_tau.mean() - 1.5) < 0.08
  assert abs(np.mean(log10_tau < 0.75) - 0.25) < 0.05
  shift = np.asarray(params["shift"])
  assert shift.min() >= -5.0 and shift.max() <= 5.0
  assert abs(shift.mean()) < 0.3 and 2.5 < shift.std() < 3.3
  np.testing.assert_array_equal(params["r_on"], np.full(1024, 0.2, np.float32))
  b = params["b"]
  np.testing.assert_array_equal(b[:1024], np.full(1024, 0.25))
  np.testing.assert_array_equal(b[1024:2048], np.full(1024, 1.5))
  np.testing.assert_array_equal(b[2048:], np.zeros(2048))


def test_init_dtypes_are_float32_under_x64():
  with jax.enable_x64(True):
    params = jax.eval_shape(
      lambda key: plstm.PhasedLSTM(5).init(key, I), jax.random.key(0)
    )
  assert {k: v.dtype for k, v in params.items()} == {
    k: jnp.float32 for k in params
  }


@pytest.mark.parametrize(
  "kwargs, field",
  [
    ({"r_on": 0.0}, "r_on"),
    ({"r_on": -0.05}, "r_on"),
    ({"r_on": 1.5}, "r_on"),
    ({"tau_range": (0.0, 10.0)}, "tau_range"),
    ({"tau_range": (-1.0, 10.0)}, "tau_range"),
    ({"tau_range": (5.0, 2.0)}, "tau_range"),
    ({"alpha": -1e-3}, "alpha"),
    ({"hidden_size": 0}, "hidden_size"),
  ],
)
def test_bad_hyperparameters_raise(kwargs, field):
  kwargs = {"hidden_size": 4, **kwargs}
  with pytest.raises(ValueError, match=field):
    plstm.PhasedLSTM(**kwargs)


def test_edge_hyperparameters_are_allowed():
  plstm.PhasedLSTM(4, r_on=1.0, alpha=0.0, tau_range=(5.0, 5.0))


# PhasedLSTM: the step ---------------------------------------------------------


@pytest.mark.parametrize("training", [False, True])
def test_step_matches_numpy(training):
  alpha = 0.2
  cell = plstm.PhasedLSTM(H, alpha=alpha)
  params, carry, (x, t) = _params(), _carry(), _inputs()
  new_carry, y = _step(cell, training)(params, carry, (x, t))
  c, h = _np_step(params, carry.c, carry.h, x, t, alpha if training else 0.0)
  assert isinstance(new_carry, plstm.LSTMState)
  assert y.shape == (len(T_STEP), H)
  np.testing.assert_allclose(new_carry.c, c, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(new_carry.h, h, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(y, new_carry.h)


def test_training_turns_the_leak_on():
  cell = plstm.PhasedLSTM(H, alpha=0.2)
  params, carry, (x, t) = _params(), _carry(), _inputs()
  eval_carry, _ = _step(cell, False)(params, carry, (x, t))
  train_carry, _ = _step(cell, True)(params, carry, (x, t))
  closed = _np_phase(t, TAU, SHIFT) > R_ON
  # Evaluation: a closed unit keeps its carry exactly.
  np.testing.assert_array_equal(
    np.asarray(eval_carry.c)[closed], np.asarray(carry.c)[closed]
  )
  np.testing.assert_array_equal(
    np.asarray(eval_carry.h)[closed], np.asarray(carry.h)[closed]
  )
  # Training: the leak moves closed units, and only them.
  moved = np.abs(np.asarray(train_carry.c - eval_carry.c)) > 1e-4
  assert moved[closed].mean() > 0.9
  assert not moved[~closed].any()


def test_default_alpha_is_the_official_leak():
  cell = plstm.PhasedLSTM(H)
  assert cell.alpha == 1e-3
  params, carry, (x, t) = _params(), _carry(), _inputs()
  new_carry, _ = _step(cell, True)(params, carry, (x, t))
  c, _ = _np_step(params, carry.c, carry.h, x, t, 1e-3)
  c_eval, _ = _np_step(params, carry.c, carry.h, x, t, 0.0)
  assert np.max(np.abs(c - c_eval)) > 1e-4
  np.testing.assert_allclose(new_carry.c, c, rtol=1e-6, atol=1e-6)


def test_output_peephole_sees_the_candidate_cell():
  cell = plstm.PhasedLSTM(H)
  params, carry, (x, t) = _params(), _carry(), _inputs()
  params["p_o"] = 3.0 * params["p_o"]
  _, y = _step(cell)(params, carry, (x, t))
  _, h = _np_step(params, carry.c, carry.h, x, t, 0.0)
  _, h_wrong = _np_step(params, carry.c, carry.h, x, t, 0.0, "c_gated")
  assert np.max(np.abs(h - h_wrong)) > 1e-2  # The two readings differ here.
  np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-5)


def test_input_and_forget_peepholes_see_the_gated_previous_cell():
  # Over two steps, c_{t-1} is the time-gated cell of step 1, not its c̃.
  cell = plstm.PhasedLSTM(H)
  params, carry, (x, t) = _params(), _carry(), _inputs()
  params["p_i"] = 3.0 * params["p_i"]
  params["p_f"] = 3.0 * params["p_f"]
  x2, t2 = _inputs(seed=8, t_offset=1.25)
  step = _step(cell)
  carry1, _ = step(params, carry, (x, t))
  carry2, y2 = step(params, carry1, (x2, t2))
  c1, h1 = _np_step(params, carry.c, carry.h, x, t, 0.0)
  c2, h2 = _np_step(params, c1, h1, x2, t2, 0.0)
  np.testing.assert_allclose(carry2.c, c2, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(y2, h2, rtol=1e-5, atol=1e-5)
  # Peepholes on step 1's ungated c̃ would give another c_2.
  _, _, c1_tilde = _np_step(
    params, carry.c, carry.h, x, t, 0.0, return_candidate=True
  )
  c2_wrong, _ = _np_step(params, c1, h1, x2, t2, 0.0, peephole_cell=c1_tilde)
  assert np.max(np.abs(c2 - c2_wrong)) > 1e-2


def test_any_leading_batch_shape():
  cell = plstm.PhasedLSTM(H, alpha=0.2)
  params, carry, (x, t) = _params(), _carry((2, 3)), _inputs((2, 3))
  new_carry, y = _step(cell, True)(params, carry, (x, t))
  assert y.shape == new_carry.c.shape == (2, 3, H)
  c, h = _np_step(params, carry.c, carry.h, x, t, 0.2)
  np.testing.assert_allclose(new_carry.c, c, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-5)
  assert cell.initial_carry((2, 3)).h.shape == (2, 3, H)


def test_step_with_mismatched_x_and_t_raises():
  cell = plstm.PhasedLSTM(H)
  x = jnp.zeros((4, I))
  t = jnp.zeros(3)
  with pytest.raises(ValueError, match=r"\(4, 3\).*\(3,\)"):
    cell.step(_params(), cell.initial_carry(4), (x, t))


# PhasedLSTM: gradients --------------------------------------------------------


def test_check_grads():
  # At T_STEP no unit sits on a kink of the gate (see the first test). With
  # training on, the leak makes the closed units depend on tau and shift too.
  cell = plstm.PhasedLSTM(H, alpha=0.2)
  with jax.enable_x64(True):
    to64 = lambda tree: jax.tree.map(
      lambda a: jnp.asarray(a, jnp.float64), tree
    )
    params, carry, (x, t) = to64((_params(), _carry(), _inputs()))
    # One flat vector of every param and carry entry: fewer small eager ops.
    flat, unravel = ravel_pytree((params, carry))

    @jax.jit
    def step(flat):
      new_carry, y = cell.step(*unravel(flat), (x, t), training=True)
      return ravel_pytree((new_carry, y))[0]

    check_grads(step, (flat,), order=1, modes=("fwd", "rev"))


def test_train_r_on_false_stops_only_r_on():
  params, carry, (x, t) = _params(), _carry(), _inputs()

  def loss_and_grads(cell):
    loss = lambda p: jnp.sum(cell.step(p, carry, (x, t), training=True)[1])
    return jax.jit(jax.value_and_grad(loss))(params)

  loss_fixed, g_fixed = loss_and_grads(plstm.PhasedLSTM(H, train_r_on=False))
  loss_free, g_free = loss_and_grads(plstm.PhasedLSTM(H))
  np.testing.assert_array_equal(loss_fixed, loss_free)
  np.testing.assert_array_equal(g_fixed["r_on"], np.zeros(H))
  assert np.all(np.abs(np.asarray(g_free["r_on"])) > 1e-6)
  for name in g_free:
    if name != "r_on":
      np.testing.assert_allclose(g_fixed[name], g_free[name], rtol=1e-6)
      assert np.any(np.abs(np.asarray(g_fixed[name])) > 1e-6), name
  for name in ("tau", "shift"):
    assert np.all(np.abs(np.asarray(g_fixed[name])) > 1e-6), name


@pytest.mark.parametrize("training", [False, True])
def test_phased_of_the_peephole_lstm_is_the_phased_lstm(training):
  """plstm.Phased gates any cell's carry: around the peephole LSTM, with the
  same params, it computes the Phased LSTM (outputs, carry, gradients)."""
  fused = plstm.PhasedLSTM(H, alpha=0.1)
  params = fused.init(jax.random.key(0), I)
  wrapped = plstm.Phased(plstm.LSTM(H, peepholes=True), alpha=0.1)
  gate = ("tau", "shift", "r_on")
  nested = {k: params[k] for k in gate}
  nested["inner"] = {k: v for k, v in params.items() if k not in gate}
  assert jax.tree.structure(nested) == jax.tree.structure(
    wrapped.init(jax.random.key(0), I)
  )
  k_x, k_t = jax.random.split(jax.random.key(1))
  x = jax.random.normal(k_x, (4, 9, I))
  t = jnp.cumsum(jax.random.uniform(k_t, (4, 9), maxval=2.0), axis=1)
  mask = jnp.arange(9) >= jnp.array([0, 1, 3, 5])[:, None]

  def run(cell, p):
    return plstm.scan(cell, p, (x, t), mask=mask, training=training)

  (c_a, h_a), y_a = run(fused, params)
  (c_b, h_b), y_b = run(wrapped, nested)
  for a, b in ((y_a, y_b), (c_a, c_b), (h_a, h_b)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  grad = lambda cell, p: jax.grad(lambda p: run(cell, p)[1].sum())(p)
  g_a, g_b = grad(fused, params), grad(wrapped, nested)
  for k in gate:
    np.testing.assert_allclose(g_a[k], g_b[k], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(
    g_a["w_h"], g_b["inner"]["w_h"], rtol=1e-4, atol=1e-6
  )


def test_phased_checks_its_gate_settings():
  with pytest.raises(ValueError, match="Phased: r_on must be in"):
    plstm.Phased(plstm.RNN(4), r_on=0.0)
  with pytest.raises(ValueError, match="Phased: tau_range"):
    plstm.Phased(plstm.RNN(4), tau_range=(-1.0, 2.0))
