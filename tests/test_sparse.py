"""Tests of plstm.sparse: the open units, and equality with dense inference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plstm
from plstm import sparse

B, T, I, H = 3, 80, 2, 16


def _cell_params(seed=0, r_on=0.05):
  cell = plstm.PhasedLSTM(H, tau_range=(2.0, 12.0), r_on=r_on)
  params = cell.init(jax.random.key(seed), I)
  # Gate columns, peepholes and biases ~ N(0, 1) so every term matters.
  rng = np.random.default_rng(seed)
  for name in ("w_x", "w_h", "b", "p_i", "p_f", "p_o"):
    params[name] = jnp.asarray(rng.normal(size=params[name].shape), jnp.float32)
  return cell, params


def _data(shared=True, seed=1):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(B, T, I)), jnp.float32)
  if shared:
    t = np.broadcast_to(np.arange(1, T + 1, dtype=np.float32), (B, T))
  else:
    t = np.cumsum(rng.uniform(0.2, 1.8, size=(B, T)), axis=1)
  return x, jnp.asarray(t, jnp.float32)


def _dense(cell, params, x, t, carry=None):
  return plstm.scan(cell, params, (x, t), carry=carry, training=False)


def _np_open(params, t):
  """The paper's gate k > 0 in float64 NumPy: 0 < phi <= r_on."""
  tau = np.abs(np.asarray(params["tau"], np.float64))
  shift = np.asarray(params["shift"], np.float64)
  r_on = np.abs(np.asarray(params["r_on"], np.float64))
  phi = np.mod(np.asarray(t, np.float64)[..., None] - shift, tau) / tau
  return (phi > 0) & (phi <= r_on)


def test_open_units_lists_the_units_whose_gate_is_open():
  cell, params = _cell_params()
  _, t = _data()
  units = sparse.open_units(cell, params, t)
  expected = _np_open(params, t[0])  # [T, H]
  assert units.dtype == np.int32
  assert units.shape == (T, expected.sum(axis=1).max())
  for step in range(T):
    listed = units[step][units[step] < H]
    np.testing.assert_array_equal(listed, np.flatnonzero(expected[step]))
    assert np.all(units[step][len(listed) :] == H)  # padding


def test_open_units_takes_the_union_over_the_batch():
  cell, params = _cell_params()
  _, t = _data(shared=False)
  units = sparse.open_units(cell, params, t)
  expected = _np_open(params, t).any(axis=0)
  for step in range(T):
    listed = units[step][units[step] < H]
    np.testing.assert_array_equal(listed, np.flatnonzero(expected[step]))


def test_few_units_are_open_at_r_on_005():
  cell, params = _cell_params()
  _, t = _data()
  units = sparse.open_units(cell, params, t)
  # About r_on * H = 0.8 units per step; M is the busiest step's count.
  assert np.mean(np.sum(units < H, axis=1)) < 0.15 * H
  assert units.shape[1] < H // 2


@pytest.mark.parametrize("shared", [True, False])
def test_sparse_scan_equals_dense_inference(shared):
  cell, params = _cell_params()
  x, t = _data(shared)
  units = sparse.open_units(cell, params, t)
  carry, h = jax.jit(lambda p, x, t, u: sparse.scan(cell, p, (x, t), u))(
    params, x, t, units
  )
  carry_ref, h_ref = _dense(cell, params, x, t)
  np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry.c, carry_ref.c, rtol=1e-5, atol=1e-6)
  # The states move: the test compares more than zeros.
  assert np.std(np.asarray(h[:, -1])) > 0.05


@pytest.mark.parametrize("hoist", [False, True])
def test_sparse_scan_with_a_mask_in_either_loop(hoist, monkeypatch):
  """Padded steps keep the carry and output zeros, as in dense inference;
  `hoist` is the loop plstm.scan picks by backend (True off CPU)."""
  monkeypatch.setattr(
    jax, "default_backend", lambda: "cpu" if not hoist else "gpu"
  )
  cell, params = _cell_params(r_on=0.2)
  x, t = _data(shared=False)
  mask = jnp.asarray(np.random.default_rng(5).uniform(size=(B, T)) > 0.3)
  units = sparse.open_units(cell, params, t)
  carry, h = sparse.scan(cell, params, (x, t), units, mask=mask)
  carry_ref, h_ref = plstm.scan(cell, params, (x, t), mask=mask, training=False)
  np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry.h, carry_ref.h, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(h)[~np.asarray(mask)], 0.0)
  assert np.std(np.asarray(carry.h)) > 0.05


def test_sparse_scan_starts_from_the_given_carry():
  cell, params = _cell_params(seed=3, r_on=0.2)
  x, t = _data()
  rng = np.random.default_rng(4)
  carry = plstm.LSTMState(
    c=jnp.asarray(rng.normal(size=(B, H)), jnp.float32),
    h=jnp.asarray(np.tanh(rng.normal(size=(B, H))), jnp.float32),
  )
  units = sparse.open_units(cell, params, t)
  _, h = sparse.scan(cell, params, (x, t), units, carry=carry)
  _, h_ref = _dense(cell, params, x, t, carry)
  np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
  # A unit closed for the first steps still holds its initial h.
  first_open = np.argmax(_np_open(params, t[0]), axis=0)
  unit = int(np.argmax(first_open))
  np.testing.assert_array_equal(h[:, 0, unit], carry.h[:, unit])


def test_a_missing_open_unit_changes_the_result():
  """The equality above is sharp: dropping one open unit breaks it."""
  cell, params = _cell_params()
  x, t = _data()
  units = sparse.open_units(cell, params, t)
  step = int(np.argmax(np.sum(units < H, axis=1)))
  units[step, 0] = H  # forget the first open unit of the busiest step
  _, h = sparse.scan(cell, params, (x, t), units)
  _, h_ref = _dense(cell, params, x, t)
  assert np.max(np.abs(np.asarray(h - h_ref))) > 1e-3


def test_sparse_needs_a_phased_lstm_and_a_matching_schedule():
  cell, params = _cell_params()
  x, t = _data()
  with pytest.raises(TypeError, match="PhasedLSTM"):
    sparse.open_units(plstm.LSTM(H), params, t)
  with pytest.raises(TypeError, match="PhasedLSTM, got Phased;"):
    sparse.open_units(plstm.Phased(plstm.LSTM(H, peepholes=True)), params, t)
  units = sparse.open_units(cell, params, t)
  with pytest.raises(ValueError, match=r"units must be \[T, M\]"):
    sparse.scan(cell, params, (x, t), units[:-1])
  with pytest.raises(ValueError, match="same leading"):
    sparse.scan(cell, params, (x, t[:, :-1]), units)
