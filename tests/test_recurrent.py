"""Tests of plstm.scan: a Python loop of `cell.step` is the reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plstm

B, T, I = 3, 7, 2
H_LSTM, H_PHASED = 4, 5


def _lstm_params(input_size, hidden, seed):
  rng = np.random.default_rng(seed)
  params = {
    "w_x": rng.normal(size=(input_size, 4 * hidden)),
    "w_h": 0.5 * rng.normal(size=(hidden, 4 * hidden)),
    "b": rng.normal(size=4 * hidden),
  }
  for name in ("p_i", "p_f", "p_o"):
    params[name] = rng.normal(size=hidden)
  return params


def _phased_params(input_size, hidden, seed):
  rng = np.random.default_rng(seed)
  params = _lstm_params(input_size, hidden, seed)
  params["tau"] = np.exp(rng.uniform(np.log(1.5), np.log(6.0), size=hidden))
  params["shift"] = rng.uniform(0.0, 5.0, size=hidden)
  params["r_on"] = np.full(hidden, 0.3)
  return params


def _f32(tree):
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


LSTM = plstm.LSTM(H_LSTM, peepholes=True)
PHASED = plstm.PhasedLSTM(H_PHASED, alpha=0.2)


def _model(name):
  """(cell or stack, params, timed) for the models under test."""
  if name == "lstm":
    return LSTM, _f32(_lstm_params(I, H_LSTM, 0)), False
  if name == "phased":
    return PHASED, _f32(_phased_params(I, H_PHASED, 1)), True
  if name == "phased_lstm":
    params = (_phased_params(I, H_PHASED, 2), _lstm_params(H_PHASED, H_LSTM, 3))
    return (PHASED, LSTM), _f32(params), True
  if name == "lstm_phased":
    params = (_lstm_params(I, H_LSTM, 4), _phased_params(H_LSTM, H_PHASED, 5))
    return (LSTM, PHASED), _f32(params), True
  raise ValueError(name)


def _data(batch=B, steps=T, seed=10):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(batch, steps, I)), jnp.float32)
  t = np.cumsum(rng.uniform(0.2, 1.5, size=(batch, steps)), axis=1)
  return x, jnp.asarray(t, jnp.float32)


def _inputs(timed, x, t):
  return (x, t) if timed else x


# Most tests run scan under jit: one compilation per test instead of many
# small eager ones. The eager path runs in the error and trace-count tests.
_scan = jax.jit(plstm.scan, static_argnames=("cell", "training", "unroll"))


def _is_stack(cell):
  return isinstance(cell, tuple)


@functools.cache
def _jit_step(cell, training):
  return jax.jit(functools.partial(cell.step, training=training))


def _loop(cell, params, x, t, *, mask=None, carry=None, training=False):
  """The reference: `cell.step` in a Python loop over time, layer by layer.

  Where mask[b, n] is 0 the carry of sample b is kept and its output is 0.
  """
  cells = cell if _is_stack(cell) else (cell,)
  layer_params = params if _is_stack(cell) else (params,)
  if carry is None:
    carry = tuple(c.initial_carry(x.shape[0]) for c in cells)
  elif not _is_stack(cell):
    carry = (carry,)
  carry = list(carry)
  outputs = []
  for n in range(x.shape[1]):
    y = x[:, n]
    for layer, (c, p) in enumerate(zip(cells, layer_params, strict=True)):
      inputs = (y, t[:, n]) if isinstance(c, plstm.PhasedLSTM) else y
      new_carry, y = _jit_step(c, training)(p, carry[layer], inputs)
      if mask is not None:
        m = np.asarray(mask[:, n], bool)[:, None]
        new_carry = jax.tree.map(
          lambda a, b, m=m: np.where(m, a, b), new_carry, carry[layer]
        )
        y = np.where(m, y, 0.0)
      carry[layer] = new_carry
    outputs.append(y)
  final = tuple(carry) if _is_stack(cell) else carry[0]
  return final, np.stack(outputs, axis=1)


def _assert_trees_close(actual, expected, atol=1e-5):
  jax.tree.map(
    lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-5, atol=atol),
    actual,
    expected,
  )


# Scan against the loop -------------------------------------------------------


@pytest.mark.parametrize(
  "name, training",
  [
    ("lstm", False),
    ("phased", False),
    ("phased", True),
    ("phased_lstm", False),
    ("lstm_phased", True),
  ],
)
def test_scan_matches_loop(name, training):
  cell, params, timed = _model(name)
  x, t = _data()
  carry, y = _scan(cell, params, _inputs(timed, x, t), training=training)
  carry_ref, y_ref = _loop(cell, params, x, t, training=training)
  top = cell[-1] if _is_stack(cell) else cell
  assert y.shape == (B, T, top.hidden_size)
  if _is_stack(cell):
    assert isinstance(carry, tuple) and len(carry) == len(cell)
    for layer_carry, layer in zip(carry, cell, strict=True):
      assert isinstance(layer_carry, plstm.LSTMState)
      assert layer_carry.c.shape == (B, layer.hidden_size)
  else:
    assert isinstance(carry, plstm.LSTMState)
  _assert_trees_close(carry, carry_ref)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  # The final h is the last output.
  top_carry = carry[-1] if _is_stack(cell) else carry
  np.testing.assert_array_equal(top_carry.h, y[:, -1])


def test_stack_threads_the_timestamps_to_every_phased_layer():
  # Shifting time changes what a Phased layer on top of an LSTM computes, so
  # it must be reading the timestamps (the LSTM below cannot see them).
  cell, params, _ = _model("lstm_phased")
  x, t = _data()
  _, y = _scan(cell, params, (x, t), training=True)
  _, y_shifted = _scan(cell, params, (x, t + 0.37), training=True)
  assert np.max(np.abs(y - y_shifted)) > 1e-2


def test_scan_starts_from_the_given_carry():
  cell, params, _ = _model("phased")
  x, t = _data()
  rng = np.random.default_rng(3)
  carry0 = plstm.LSTMState(
    *(
      jnp.asarray(rng.normal(size=(B, H_PHASED)), jnp.float32) for _ in range(2)
    )
  )
  carry, y = _scan(cell, params, (x, t), carry=carry0, training=True)
  carry_ref, y_ref = _loop(cell, params, x, t, carry=carry0, training=True)
  _assert_trees_close(carry, carry_ref)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  _, y_zero = _scan(cell, params, (x, t), training=True)
  assert np.max(np.abs(y - y_zero)) > 1e-2


def test_stack_starts_from_the_given_carries():
  cell, params, _ = _model("phased_lstm")
  x, t = _data()
  rng = np.random.default_rng(4)
  carry0 = tuple(
    plstm.LSTMState(
      *(
        jnp.asarray(rng.normal(size=(B, c.hidden_size)), jnp.float32)
        for _ in range(2)
      )
    )
    for c in cell
  )
  carry, y = _scan(cell, params, (x, t), carry=carry0)
  carry_ref, y_ref = _loop(cell, params, x, t, carry=carry0)
  _assert_trees_close(carry, carry_ref)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hoist", [False, True])
def test_zero_steps_give_the_initial_carry_and_no_outputs(hoist):
  cell, params, _ = _model("phased")
  x, t = _data()
  carry0 = plstm.LSTMState(*(jnp.full((B, H_PHASED), v) for v in (0.5, -0.5)))
  carry, y = plstm.scan(
    cell, params, (x[:, :0], t[:, :0]), carry=carry0, hoist=hoist
  )
  _assert_trees_close(carry, carry0)
  assert y.shape == (B, 0, H_PHASED)


def test_unroll_does_not_change_the_result():
  cell, params, _ = _model("phased")
  x, t = _data()
  carry1, y1 = _scan(cell, params, (x, t), training=True)
  carry3, y3 = _scan(cell, params, (x, t), training=True, unroll=3)
  _assert_trees_close(carry3, carry1, atol=1e-6)
  np.testing.assert_allclose(y3, y1, rtol=1e-6, atol=1e-6)


def test_init_stack_chains_the_input_sizes():
  cells = (plstm.PhasedLSTM(5), plstm.LSTM(4), plstm.PhasedLSTM(3))
  params = jax.eval_shape(
    lambda key: plstm.init_stack(cells, key, I), jax.random.key(0)
  )
  assert isinstance(params, tuple) and len(params) == 3
  assert params[0]["w_x"].shape == (I, 20)
  assert params[1]["w_x"].shape == (5, 16)
  assert params[2]["w_x"].shape == (4, 12)
  assert set(params[1]) == {"w_x", "w_h", "b"}
  assert params[2]["tau"].shape == (3,)


def test_init_stack_gives_each_layer_its_own_key():
  # The shapes of the big init in test_phased_lstm.py: no new compilation.
  cells = (plstm.PhasedLSTM(1024), plstm.PhasedLSTM(1024))
  params = plstm.init_stack(cells, jax.random.key(0), 2)
  for name in ("w_h", "p_i", "tau", "shift"):
    assert not np.allclose(params[0][name], params[1][name]), name


# Masks -----------------------------------------------------------------------

LENGTHS = (T, 4, 2)


def _left_padded(seed=20):
  """Sequences of LENGTHS, left-padded to T with garbage x and t."""
  rng = np.random.default_rng(seed)
  x, t = _data(seed=seed)
  mask = np.zeros((B, T), bool)
  x, t = np.array(x), np.array(t)
  for b, length in enumerate(LENGTHS):
    mask[b, T - length :] = True
    x[b, : T - length] = rng.normal(size=(T - length, I)) * 10
    t[b, : T - length] = rng.uniform(-100, 100, size=T - length)
  return jnp.asarray(x), jnp.asarray(t), jnp.asarray(mask)


def test_left_padding_gives_the_carry_of_the_unpadded_sequence():
  # A stack of both cells: each layer keeps its carry on padding.
  cell, params, _ = _model("phased_lstm")
  x, t, mask = _left_padded()
  carry, y = _scan(cell, params, (x, t), mask=mask, training=True)
  for b, length in enumerate(LENGTHS):
    # Sample b alone, without its padding.
    xb, tb = x[b : b + 1, T - length :], t[b : b + 1, T - length :]
    carry_b, y_b = _loop(cell, params, xb, tb, training=True)
    assert carry_b[0].c.shape == (1, H_PHASED)
    _assert_trees_close(
      jax.tree.map(lambda a, b=b: a[b : b + 1], carry), carry_b
    )
    np.testing.assert_allclose(
      y[b : b + 1, T - length :], y_b, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(y[b, : T - length], 0.0)


def test_left_padding_against_a_scan_of_the_unpadded_sequence():
  cell, params, _ = _model("phased_lstm")
  x, t, mask = _left_padded()
  carry, y = _scan(cell, params, (x, t), mask=mask, training=True)
  length = LENGTHS[1]
  carry_1, y_1 = _scan(
    cell, params, (x[1:2, T - length :], t[1:2, T - length :]), training=True
  )
  _assert_trees_close(jax.tree.map(lambda a: a[1:2], carry), carry_1)
  np.testing.assert_allclose(y[1:2, T - length :], y_1, rtol=1e-5, atol=1e-5)


def test_masked_steps_anywhere_keep_the_carry():
  cell, params, _ = _model("phased_lstm")
  x, t = _data()
  mask = jnp.asarray(
    [
      [1, 1, 0, 1, 0, 0, 1],
      [0, 1, 1, 1, 1, 1, 0],
      [1, 0, 1, 0, 1, 0, 1],
    ],
    bool,
  )
  carry, y = _scan(cell, params, (x, t), mask=mask, training=True)
  carry_ref, y_ref = _loop(cell, params, x, t, mask=mask, training=True)
  _assert_trees_close(carry, carry_ref)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(y)[~np.asarray(mask)], 0.0)
  # Sample 1 ends on a masked step: its final carry is that of step 5.
  carry_5, y_5 = _loop(
    cell, params, x[:, :6], t[:, :6], mask=mask[:, :6], training=True
  )
  _assert_trees_close(
    jax.tree.map(lambda a: a[1], carry),
    jax.tree.map(lambda a: a[1], carry_5),
  )
  np.testing.assert_allclose(carry[-1].h[1], y_5[1, -1], rtol=1e-6)


def test_all_ones_mask_is_no_mask():
  cell, params, _ = _model("phased")
  x, t = _data()
  carry, y = _scan(
    cell, params, (x, t), mask=jnp.ones((B, T), bool), training=False
  )
  carry_ref, y_ref = _scan(cell, params, (x, t), training=False)
  _assert_trees_close(carry, carry_ref, atol=1e-6)
  np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-6)


def test_float_mask_is_the_same_as_bool_mask():
  cell, params, _ = _model("lstm")
  x, _ = _data()
  mask = np.random.default_rng(5).uniform(size=(B, T)) > 0.4
  carry_b, y_b = _scan(cell, params, x, mask=jnp.asarray(mask))
  carry_f, y_f = _scan(cell, params, x, mask=jnp.asarray(mask, jnp.float32))
  _assert_trees_close(carry_f, carry_b, atol=0)
  np.testing.assert_array_equal(y_f, y_b)


def test_training_flag_reaches_the_steps():
  # The Phased layer on top of the stack sees the flag too.
  cell, params, _ = _model("lstm_phased")
  x, t, mask = _left_padded()
  _, y_train = _scan(cell, params, (x, t), mask=mask, training=True)
  _, y_eval = _scan(cell, params, (x, t), mask=mask, training=False)
  _, y_ref = _loop(cell, params, x, t, mask=mask, training=True)
  np.testing.assert_allclose(y_train, y_ref, rtol=1e-5, atol=1e-5)
  assert np.max(np.abs(y_train - y_eval)) > 1e-3


# jit -------------------------------------------------------------------------


def test_jit_scan_traces_once_per_shape():
  cell, params, _ = _model("phased_lstm")
  traces = []

  @functools.partial(jax.jit, static_argnames="training")
  def run(params, x, t, mask, training=False):
    traces.append(x.shape)
    return plstm.scan(cell, params, (x, t), mask=mask, training=training)

  x, t, mask = _left_padded()
  carry, y = run(params, x, t, mask, training=True)
  assert len(traces) == 1
  carry_ref, y_ref = _scan(cell, params, (x, t), mask=mask, training=True)
  _assert_trees_close(carry, carry_ref, atol=1e-6)
  np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-6)
  # New values with the same shapes: no new trace.
  x2, t2, mask2 = _left_padded(seed=21)
  _, y2 = run(params, x2, t2, mask2, training=True)
  assert len(traces) == 1
  assert np.max(np.abs(y2 - y)) > 1e-3
  # The counter does count: a new length traces again (lower: no compile).
  run.lower(params, x[:, :5], t[:, :5], mask[:, :5], training=True)
  assert len(traces) == 2


# Bad input -------------------------------------------------------------------


def test_x_and_t_of_different_lengths_raise():
  cell, params, _ = _model("phased")
  x, t = _data()
  with pytest.raises(ValueError, match=r"\(3, 7, 2\).*\(3, 6\)"):
    plstm.scan(cell, params, (x, t[:, :6]))
  # In a stack the Phased layer sees the output of the layer below as x.
  stack, stack_params, _ = _model("lstm_phased")
  with pytest.raises(ValueError, match=r"x \(3, 7, 4\).*t \(3, 6\)"):
    plstm.scan(stack, stack_params, (x, t[:, :6]))


def test_stack_with_wrong_number_of_params_raises():
  cell, params, _ = _model("phased_lstm")
  x, t = _data()
  with pytest.raises(ValueError, match="2 cells.*1"):
    plstm.scan(cell, params[:1], (x, t))


def test_scan_with_float64_timestamps_under_x64():
  cell, params, _ = _model("phased")
  x, t = _data()
  with jax.enable_x64(True):
    t64 = jnp.asarray(t, jnp.float64) + 1e6
    _, y = plstm.scan(cell, params, (x, t64))
  assert y.dtype == jnp.float32


def _two_lstms():
  cells = (plstm.LSTM(I, peepholes=True), LSTM)  # the params have peepholes
  params = (_f32(_lstm_params(I, I, 20)), _f32(_lstm_params(I, H_LSTM, 21)))
  x = jnp.asarray(np.random.default_rng(22).normal(size=(B, T, I)), jnp.float32)
  return cells, params, x


def test_residual_adds_the_input_where_widths_match():
  cells, params, x = _two_lstms()
  _, h1 = plstm.scan(cells[0], params[0], x)
  _, h2 = plstm.scan(cells[1], params[1], h1 + x)
  _, out = plstm.scan(cells, params, x, residual=True)
  # Layer 1 (I -> I) gets its input added; layer 2 (I -> H) has none.
  np.testing.assert_allclose(out, h2, rtol=1e-6, atol=1e-6)


def test_skip_concatenates_every_layer():
  cells, params, x = _two_lstms()
  _, h1 = plstm.scan(cells[0], params[0], x)
  _, h2 = plstm.scan(cells[1], params[1], h1)
  _, out = plstm.scan(cells, params, x, skip=True)
  assert out.shape == (B, T, I + H_LSTM)
  np.testing.assert_allclose(out, jnp.concatenate([h1, h2], -1), atol=1e-6)


def test_stack_dropout_is_one_mask_per_layer_over_time():
  cells, params, x = _two_lstms()
  key = jax.random.key(3)
  _, out = plstm.scan(cells, params, x, dropout=0.5, key=key, training=True)
  k1, k2 = jax.random.split(key)
  x1 = plstm.dropout.variational_dropout(k1, x, 0.5, training=True)
  _, h1 = plstm.scan(cells[0], params[0], x1)
  h1 = plstm.dropout.variational_dropout(k2, h1, 0.5, training=True)
  _, h2 = plstm.scan(cells[1], params[1], h1)
  np.testing.assert_allclose(out, h2, rtol=1e-6, atol=1e-6)
  assert not np.allclose(out, plstm.scan(cells, params, x)[1])
  # Off in evaluation.
  _, evaluated = plstm.scan(cells, params, x, dropout=(0.5, 0.2), key=key)
  np.testing.assert_array_equal(evaluated, plstm.scan(cells, params, x)[1])


def test_stack_options_on_a_single_cell_are_an_error():
  cells, params, x = _two_lstms()
  with pytest.raises(ValueError, match="apply to a stack"):
    plstm.scan(cells[0], params[0], x, residual=True)
  with pytest.raises(ValueError, match="one rate per layer"):
    plstm.scan(cells, params, x, dropout=(0.1,))
