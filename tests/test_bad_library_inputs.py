"""Bad inputs to the library are refused with one line that names what to fix.

Each case of the table asserts the exception and a message naming the
argument, param or input and what is valid; the valid neighbours below show
the checks refuse nothing good (float64 params, integer delays, nested and
stacked params, traced values under jit).
"""

import functools

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import plstm
from plstm import sparse
from plstm.nn import NNXRNN, LinenCell, LinenRNN, NNXCell

B, T, I, H = 3, 5, 2, 4
KEY = jax.random.key(0)
X = jnp.ones((B, T, I))
TIMES = jnp.cumsum(jnp.ones((B, T)), axis=1)
LSTM = plstm.LSTM(H)
PHASED = plstm.PhasedLSTM(2)
ALIF = plstm.ALIF(3, n_delay=2)


@functools.cache
def _init(cell, input_size=I):
  """Params shaped as cell.init(KEY, input_size)'s, all ones: the checks
  read shapes only, and NumPy arrays cost no compilation."""
  shapes = jax.eval_shape(lambda k: cell.init(k, input_size), KEY)
  return jax.tree.map(lambda s: np.ones(s.shape, s.dtype), shapes)


def _lstm_params():
  return _init(LSTM)


def _phased_params():
  return _init(PHASED)


def _without(params, name):
  return {k: v for k, v in params.items() if k != name}


# A schedule [T, M] of the right shape, for cases refused before it is read.
UNITS = np.zeros((T, 1), np.int32)


def _deep_r_init(signs, params=None):
  params = {"w": jnp.ones((3, 3))} if params is None else params
  return plstm.deep_r(0.1, 0.5, signs=signs).init(params)


# (id, thunk, exception, regex of the message).
CASES = [
  # 1. The mask is [B, T] of the inputs.
  (
    "mask_shorter_than_T",
    lambda: plstm.scan(LSTM, _lstm_params(), X, mask=jnp.ones((B, T - 1))),
    ValueError,
    r"scan: mask has shape \(3, 4\), expected \[B, T\] = \(3, 5\)",
  ),
  (
    "mask_without_batch",
    lambda: plstm.scan(LSTM, _lstm_params(), X, mask=jnp.ones(T)),
    ValueError,
    r"mask has shape \(5,\), expected \[B, T\]",
  ),
  (
    "mask_of_a_stack",
    lambda: plstm.scan(
      [LSTM, LSTM],
      (_lstm_params(), _init(LSTM, H)),
      X,
      mask=jnp.ones((B, T + 1)),
    ),
    ValueError,
    r"mask has shape \(3, 6\)",
  ),
  (
    "mask_of_sparse_scan",
    lambda: sparse.scan(
      PHASED,
      _phased_params(),
      (X, TIMES),
      UNITS,
      mask=jnp.ones((B, 2)),
    ),
    ValueError,
    r"mask has shape \(3, 2\), expected \[B, T\]",
  ),
  # 2. A timed cell gets t and at least one feature beside it.
  (
    "linen_rnn_one_channel",
    lambda: linen.RNN(LinenCell(plstm.PhasedLSTM(H))).init(
      KEY, jnp.ones((B, T, 1))
    ),
    ValueError,
    r"inputs are \[\.\.\., I \+ 1\] with the timestamps t last .* got 1 "
    r"channel",
  ),
  (
    "linen_scan_one_channel",
    lambda: LinenRNN(plstm.PhasedLSTM(H)).init(KEY, jnp.ones((B, T, 1))),
    ValueError,
    r"got 1 channel, so no feature beside t",
  ),
  (
    "nnx_scan_one_channel",
    lambda: jax.eval_shape(
      lambda: NNXRNN(plstm.PhasedLSTM(H), 1, rngs=nnx.Rngs(0))(
        jnp.ones((B, T, 1))
      )
    ),
    ValueError,
    r"got 1 channel, so no feature beside t",
  ),
  (
    "nnx_cell_one_channel",
    lambda: jax.eval_shape(
      lambda: NNXCell(plstm.PhasedLSTM(H), 1, rngs=nnx.Rngs(0))(
        plstm.PhasedLSTM(H).initial_carry(B), jnp.ones((B, 1))
      )
    ),
    ValueError,
    r"got 1 channel, so no feature beside t",
  ),
  (
    "scan_without_t",
    lambda: plstm.scan(PHASED, _phased_params(), X),
    ValueError,
    r"PhasedLSTM\(2\) is timed: its inputs are \(x \[\.\.\., I\], "
    r"timestamps t \[\.\.\.\]\), got one array of shape \(3, 5, 2\)",
  ),
  (
    "step_without_t",
    lambda: PHASED.step(_phased_params(), PHASED.initial_carry(2), X[:2, 0]),
    ValueError,
    r"PhasedLSTM\(2\) is timed: its inputs are \(x",
  ),
  (
    "phased_step_without_t",
    lambda: plstm.Phased(LSTM).step(
      _init(plstm.Phased(LSTM)), LSTM.initial_carry(B), X[:, 0]
    ),
    ValueError,
    r"Phased\(4\) is timed: its inputs are \(x",
  ),
  (
    "stack_without_t",
    lambda: plstm.scan([LSTM, PHASED], (_lstm_params(), _init(PHASED, H)), X),
    ValueError,
    r"PhasedLSTM\(2\) is timed",
  ),
  # 3. Sizes are integers >= 1 (>= 0 for n_refractory); a bool is no size.
  *(
    (
      f"size_{label}",
      thunk,
      ValueError,
      rf"{owner}: {name} must be an integer >= {low}, got {got}\.",
    )
    for label, thunk, owner, name, low, got in [
      (
        "phased_lstm_2.5",
        lambda: plstm.PhasedLSTM(2.5),
        "PhasedLSTM",
        "hidden_size",
        1,
        "2.5",
      ),
      ("lstm_0", lambda: plstm.LSTM(0), "LSTM", "hidden_size", 1, "0"),
      ("lstm_true", lambda: plstm.LSTM(True), "LSTM", "hidden_size", 1, "True"),
      ("rnn_-1", lambda: plstm.RNN(-1), "RNN", "hidden_size", 1, "-1"),
      (
        "gated_input_0",
        lambda: plstm.GatedInput(0),
        "GatedInput",
        "hidden_size",
        1,
        "0",
      ),
      ("alif_2.5", lambda: plstm.ALIF(2.5), "ALIF", "n_rec", 1, "2.5"),
      ("lif_0", lambda: plstm.LIF(0), "LIF", "n_rec", 1, "0"),
      (
        "alif_n_delay_2.5",
        lambda: plstm.ALIF(3, n_delay=2.5),
        "ALIF",
        "n_delay",
        1,
        "2.5",
      ),
      (
        "lif_n_refractory_1.5",
        lambda: plstm.LIF(3, n_refractory=1.5),
        "LIF",
        "n_refractory",
        0,
        "1.5",
      ),
    ]
  ),
  *(
    (
      f"init_{type(cell).__name__}_{size}",
      lambda cell=cell, size=size: cell.init(KEY, size),
      ValueError,
      rf"{type(cell).__name__}\.init: input_size must be an integer >= 1, "
      rf"got {size}\.",
    )
    for cell in (
      LSTM,
      PHASED,
      plstm.Phased(LSTM),
      ALIF,
      plstm.LIF(3),
      plstm.RNN(H),
      plstm.GatedInput(H),
    )
    for size in (0, -1, 2.5)
  ),
  (
    "alif_delays_0",
    lambda: ALIF.delays(KEY, 0),
    ValueError,
    r"ALIF\.delays: input_size must be an integer >= 1, got 0\.",
  ),
  (
    "nnx_in_features_0",
    lambda: NNXRNN(plstm.PhasedLSTM(H), 0, rngs=nnx.Rngs(0)),
    ValueError,
    r"PhasedLSTM\.init: input_size must be an integer >= 1, got 0\.",
  ),
  # 4. Params have the tree, shapes and kinds of cell.init's.
  (
    "params_wrong_shape",
    lambda: plstm.scan(
      PHASED, _phased_params() | {"w_x": jnp.ones((3, 8))}, (X, TIMES)
    ),
    ValueError,
    r"scan: params\['w_x'\] has shape \(3, 8\), expected \(2, 8\) for "
    r"PhasedLSTM\(2\) on 2 input features\.",
  ),
  (
    "params_missing_key",
    lambda: plstm.scan(PHASED, _without(_phased_params(), "p_i"), (X, TIMES)),
    ValueError,
    r"params\['p_i'\] is missing, expected shape \(2,\) for PhasedLSTM\(2\) "
    r"on 2 input features; draw the params with cell\.init\(key, 2\)",
  ),
  (
    "params_extra_key",
    lambda: plstm.scan(LSTM, _lstm_params() | {"tau": jnp.ones(H)}, X),
    ValueError,
    r"params\['tau'\] is not a param for LSTM\(4\) on 2 input features",
  ),
  (
    "params_float_delays",
    lambda: plstm.scan(ALIF, _init(ALIF) | {"d_in": jnp.zeros((I, 3))}, X),
    ValueError,
    r"params\['d_in'\] is float32, expected int32 \(or another integer "
    r"dtype\) for ALIF\(3\)",
  ),
  (
    "params_missing_delays",
    lambda: plstm.scan(ALIF, _without(_init(ALIF), "d_in"), X),
    ValueError,
    r"params\['d_in'\] is missing",
  ),
  (
    "params_for_other_features",
    lambda: plstm.scan(LSTM, _lstm_params(), jnp.ones((B, T, 3))),
    ValueError,
    r"params\['w_x'\] has shape \(2, 16\), expected \(3, 16\) for LSTM\(4\) "
    r"on 3 input features",
  ),
  (
    "params_nested_in_phased",
    lambda: plstm.scan(
      plstm.Phased(LSTM), _init(plstm.Phased(LSTM), 3), (X, TIMES)
    ),
    ValueError,
    r"params\['inner'\]\['w_x'\] has shape \(3, 16\), expected \(2, 16\) "
    r"for Phased\(4\)",
  ),
  (
    "params_of_a_stack_layer",
    lambda: plstm.scan(
      [LSTM, plstm.LSTM(3)], (_lstm_params(), _init(LSTM, H)), X
    ),
    ValueError,
    r"params\['b'\] has shape \(16,\), expected \(12,\) for LSTM\(3\) on 4 "
    r"input features",
  ),
  (
    "params_of_sparse_scan",
    lambda: sparse.scan(
      PHASED,
      _phased_params() | {"tau": jnp.ones(3)},
      (X, TIMES),
      UNITS,
    ),
    ValueError,
    r"sparse\.scan: params\['tau'\] has shape \(3,\), expected \(2,\)",
  ),
  # 5. Values: nonzero tau and r_on, +-1 signs, fractions in range.
  (
    "time_gate_tau_0",
    lambda: plstm.time_gate(
      TIMES[:, 0], jnp.zeros(H), jnp.zeros(H), jnp.ones(H)
    ),
    ValueError,
    r"time_gate: tau must be nonzero",
  ),
  (
    "time_gate_r_on_0",
    lambda: plstm.time_gate(
      TIMES[:, 0], jnp.ones(H), jnp.zeros(H), jnp.zeros(H)
    ),
    ValueError,
    r"time_gate: r_on must be nonzero",
  ),
  (
    "deep_r_signs_2",
    lambda: _deep_r_init({"w": jnp.full((3, 3), 2.0)}),
    ValueError,
    r"deep_r: signs must be \+1 or -1 at every rewired synapse, got values "
    r"\[2\.\]",
  ),
  (
    "deep_r_signs_0",
    lambda: _deep_r_init(jnp.zeros((3, 3)), jnp.ones((3, 3))),
    ValueError,
    r"signs must be \+1 or -1",
  ),
  (
    "deep_r_signs_scalar_for_a_dict",
    lambda: _deep_r_init(2.0),
    ValueError,
    r"deep_r: signs must be a pytree like the params",
  ),
  (
    "deep_r_signs_none_where_rewired",
    lambda: _deep_r_init({"w": None}),
    ValueError,
    r"deep_r: signs is None at a rewired param",
  ),
  (
    "weight_sampler_p_1.5",
    lambda: plstm.weight_sampler(KEY, 3, 4, p=1.5),
    ValueError,
    r"weight_sampler: p \(the connectivity\) must be in \(0, 1\], got 1\.5",
  ),
  (
    "weight_sampler_p_0",
    lambda: plstm.weight_sampler(KEY, 3, 4, p=0.0),
    ValueError,
    r"must be in \(0, 1\], got 0\.0",
  ),
  (
    "weight_sampler_n_in_0",
    lambda: plstm.weight_sampler(KEY, 0, 4, p=0.5),
    ValueError,
    r"weight_sampler: n_in must be an integer >= 1, got 0",
  ),
  (
    "neuron_signs_1.5",
    lambda: plstm.neuron_signs(10, 1.5),
    ValueError,
    r"neuron_signs: proportion_excitatory must be in \[0, 1\], got 1\.5",
  ),
  (
    "neuron_signs_negative",
    lambda: plstm.neuron_signs(10, -0.1),
    ValueError,
    r"proportion_excitatory must be in \[0, 1\]",
  ),
  (
    "neuron_signs_n_2.5",
    lambda: plstm.neuron_signs(2.5, 0.5),
    ValueError,
    r"neuron_signs: n must be an integer >= 1, got 2\.5",
  ),
]


@pytest.mark.parametrize(
  "thunk, error, message",
  [case[1:] for case in CASES],
  ids=[case[0] for case in CASES],
)
def test_a_bad_input_is_refused_with_one_line_naming_it(thunk, error, message):
  with pytest.raises(error, match=message) as info:
    thunk()
  assert "\n" not in str(info.value)


def test_the_checks_run_at_trace_time_under_jit():
  bad = _phased_params() | {"w_x": jnp.ones((3, 8))}
  with pytest.raises(ValueError, match=r"params\['w_x'\] has shape"):
    jax.jit(lambda p: plstm.scan(PHASED, p, (X, TIMES)))(bad)


# The valid neighbour of each family runs. The checks run at trace time, so
# `jax.eval_shape` (a trace, no compilation) runs them all for a scan.


def test_a_full_mask_and_a_stack_with_t_run():
  stack = [LSTM, PHASED]
  params = (_lstm_params(), _init(PHASED, H))
  mask = jnp.ones((B, T), bool)
  _, h = jax.eval_shape(
    lambda: plstm.scan(stack, params, (X, TIMES), mask=mask)
  )
  assert h.shape == (B, T, 2)
  units = sparse.open_units(PHASED, _phased_params(), TIMES)
  _, h = jax.eval_shape(
    lambda: sparse.scan(PHASED, _phased_params(), (X, TIMES), units, mask=mask)
  )
  assert h.shape == (B, T, 2)


def test_a_timed_cell_takes_one_feature_beside_t():
  model = linen.RNN(LinenCell(plstm.PhasedLSTM(H)))
  variables = jax.eval_shape(model.init, KEY, jnp.ones((B, T, 2)))
  assert variables["params"]["cell"]["w_x"].shape == (1, 4 * H)


@pytest.mark.parametrize(
  "make",
  [
    lambda: plstm.PhasedLSTM(1),
    lambda: plstm.LSTM(np.int64(2)),
    lambda: plstm.ALIF(3, n_delay=2),
    lambda: plstm.LIF(1, n_refractory=0),
    lambda: plstm.Phased(plstm.RNN(2)),
  ],
)
def test_integer_sizes_are_taken(make):
  cell = make()
  params = jax.eval_shape(lambda: cell.init(KEY, np.int64(1)))
  assert jax.tree.leaves(params)


def test_params_of_other_float_widths_integer_delays_and_nesting_run():
  with jax.enable_x64(True):
    params64 = jax.tree.map(lambda p: p.astype(jnp.float64), _phased_params())
    inputs = (X.astype(jnp.float64), TIMES.astype(jnp.float64))
    _, h = jax.eval_shape(lambda: plstm.scan(PHASED, params64, inputs))
    assert h.dtype == jnp.float64
  _, out = jax.eval_shape(lambda: plstm.scan(ALIF, _init(ALIF), X))
  assert out.z.shape == (B, T, 3)
  phased = plstm.Phased(LSTM)
  _, h = jax.eval_shape(lambda: plstm.scan(phased, _init(phased), (X, TIMES)))
  assert h.shape == (B, T, H)


def test_values_in_range_run_and_traced_values_are_not_checked():
  t = TIMES[:, 0]
  args = (jnp.full(H, -2.0), jnp.zeros(H), jnp.full(H, 0.5))
  # tau enters as |tau|: a negative period is the positive one.
  np.testing.assert_array_equal(
    plstm.time_gate(t, *args), plstm.time_gate(t, -args[0], *args[1:])
  )
  jitted = jax.jit(plstm.time_gate)(t, *args)
  np.testing.assert_allclose(jitted, plstm.time_gate(t, *args), atol=1e-6)
  signs = {"w": -jnp.ones((3, 3))}
  state = _deep_r_init(signs)
  np.testing.assert_array_equal(state.signs["w"], signs["w"])
  traced = jax.jit(lambda s: _deep_r_init(s).signs)(signs)
  np.testing.assert_array_equal(traced["w"], signs["w"])
  w, sign = plstm.weight_sampler(KEY, 3, 4, p=1.0)
  assert w.shape == sign.shape == (3, 4)
  assert set(np.asarray(plstm.neuron_signs(4, 0.0)).tolist()) == {-1.0, 1.0}
  np.testing.assert_array_equal(plstm.neuron_signs(4, 1.0), jnp.ones(4))
