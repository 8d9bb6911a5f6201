"""Sparse Phased LSTM inference: each step computes only the open units.

In evaluation (alpha = 0) the time gate k_t of a unit is exactly 0 outside
its open phase, and there the Phased LSTM update (paper eqs. 8-9)

  c_t = k_t c̃_t + (1 - k_t) c_{t-1},  h_t = k_t h̃_t + (1 - k_t) h_{t-1}

keeps the unit's state. Which units are open at step t depends only on the
timestamps and the params (tau, shift, r_on), not on the inputs, so it can
be known before the run: `open_units` lists them per step, and `scan` then
updates only those, which is the paper's "order of magnitude fewer
computes" (r_on = 0.05 opens about 5% of the units at a step).

  units = sparse.open_units(cell, params, t)      # host, once per schedule
  carry, h = sparse.scan(cell, params, (x, t), units)

Shapes: B batch, T time, I inputs, H hidden units, M the most units open at
any step.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from plstm import recurrent
from plstm.cell import Array, Params, einsum, timed_inputs
from plstm.lstm import LSTMState
from plstm.phased_lstm import PhasedLSTM, time_gate

# Params with one entry per unit (gathered per step) and per gate column.
_PER_UNIT = ("p_i", "p_f", "p_o", "tau", "shift", "r_on")
_PER_GATE = ("w_x", "w_h", "b")


def _check_cell(cell) -> None:
  # The fused cell only: sparse steps gather its flat gate params per unit
  # (a `Phased` wrapper is timed too, but its params are nested).
  if not isinstance(cell, PhasedLSTM):
    raise TypeError(
      f"sparse: needs a plstm.PhasedLSTM, got {type(cell).__name__}; only "
      "its time gate closes units."
    )


def open_units(cell: PhasedLSTM, params: Params, t: Array) -> np.ndarray:
  """The units open at each step, for evaluation (alpha = 0).

  Args:
    cell: the Phased LSTM.
    params: its params.
    t: timestamps [B, T] (or [T], shared by the batch).

  Returns:
    int32 [T, M] NumPy array: row t holds, in increasing order, the units
    whose gate k > 0 at step t for at least one sample (the union over the
    batch), padded with H. M >= 1 is the largest count over the steps, so
    the speed-up of `scan` is about H / M: timestamps shared by the batch
    give the fewest. The gate is computed by `plstm.time_gate`, as the dense
    path computes it, so a unit missing here has k = 0 exactly there.
  """
  _check_cell(cell)
  t = jnp.atleast_2d(jnp.asarray(t))
  k = jax.jit(time_gate)(t, params["tau"], params["shift"], params["r_on"])
  is_open = np.asarray(jnp.any(k > 0, axis=0))  # [T, H]
  h = cell.hidden_size
  m = max(1, int(is_open.sum(axis=1).max()))
  # A stable sort puts the open units first, in increasing order.
  order = np.argsort(~is_open, axis=1, kind="stable")[:, :m]
  return np.where(np.take_along_axis(is_open, order, 1), order, h).astype(
    np.int32
  )


def _unit_major(params: Params, hidden_size: int) -> Params:
  """Gate matrices [K, 4H] as [4, H, K]: a unit's weights in rows, so that
  the per-step gather reads whole rows (a column gather is strided)."""
  out = dict(params)
  for name in _PER_GATE:
    w = params[name]
    gates = w.reshape(*w.shape[:-1], 4, hidden_size)
    out[name] = jnp.moveaxis(gates, (-2, -1), (0, 1))
  return out


def _gather(rows: Params, idx: Array) -> Params:
  """The params of the units `idx` [M] from `_unit_major` params: gate
  matrices [4, M, K], per-unit vectors [M]. Padding (idx = H) reads unit
  H - 1, whose results are dropped."""
  sub = {
    name: jnp.take(rows[name], idx, axis=1, mode="clip") for name in _PER_GATE
  }
  for name in _PER_UNIT:
    if name in rows:
      sub[name] = jnp.take(rows[name], idx, mode="clip")
  return sub


@dataclasses.dataclass(frozen=True)
class _OpenUnits:
  """A Phased LSTM as a cell of `plstm.scan` that steps only the units
  `units[i]` at step i; its inputs are (x, t, i) with i the step [B, T]."""

  cell: PhasedLSTM
  units: Array  # [T, M]

  def project(self, rows: Params, inputs):
    del rows
    return inputs

  def recur(self, rows: Params, carry, inputs, *, training: bool = False):
    """Per step, with u the open units: z = x_t W_x[:, u] + h_{t-1} W_h[:, u]
    + b[u] (every h_{t-1} feeds the open units, so all rows of W_h but only
    their columns), the LSTM update and the gate on u alone, and c, h
    scattered back at u: O(B H M) work instead of O(B H^2)."""
    del training  # Evaluation only: the gate's leak alpha is 0.
    c_all, h_all = carry
    x_t, t_t, i = inputs
    idx = self.units[i[0]]
    sub = _gather(rows, idx)
    # The gathered rows are the left operand, so that the matrix product
    # reads them as they are (a right operand would be transposed, a copy).
    dtype = self.cell.dtype
    z_t = einsum("gmk,kb->gmb", sub.pop("w_h"), h_all.T, dtype)
    z = (
      einsum("bi,gmi->bgm", x_t, sub.pop("w_x"), dtype)
      + jnp.moveaxis(z_t, -1, 0)
      + sub.pop("b")
    ).reshape(x_t.shape[0], -1)  # [B, 4M] in gate order
    c_prev = jnp.take(c_all, idx, axis=-1, mode="clip")
    h_prev = jnp.take(h_all, idx, axis=-1, mode="clip")
    # The recurrent product is in z: `candidate`'s own product gets an empty
    # h_{t-1} [B, 0] and W_h [0, 4M], and adds exact zeros.
    sub["w_h"] = jnp.zeros((0, z.shape[-1]), z.dtype)
    c_new, h_new = self.cell.candidate(sub, LSTMState(c_prev, h_all[:, :0]), z)
    k = time_gate(t_t, sub["tau"], sub["shift"], sub["r_on"])
    c = c_all.at[:, idx].set(k * c_new + (1.0 - k) * c_prev, mode="drop")
    h = h_all.at[:, idx].set(k * h_new + (1.0 - k) * h_prev, mode="drop")
    return LSTMState(c, h), h

  step = recur


def scan(
  cell: PhasedLSTM,
  params: Params,
  inputs: tuple[Array, Array],
  units: Array,
  *,
  mask: Array | None = None,
  carry: LSTMState | None = None,
) -> tuple[LSTMState, Array]:
  """Evaluation of a Phased LSTM that updates only the open units.

  Equals `plstm.scan(cell, params, (x, t), mask=mask, carry=carry)` with
  `training=False`, to float tolerance (the gate-column matrix products sum
  in another order); it runs through `plstm.scan`, as a cell whose step
  updates the units `units[i]` at step i.

  Args:
    cell: the Phased LSTM.
    params: its params.
    inputs: (x [B, T, I], t [B, T]).
    units: `open_units(cell, params, t)` for these timestamps, [T, M].
    mask: optional [B, T], as `plstm.scan`'s (a padded step keeps the carry
      and outputs zeros).
    carry: initial carry; zeros by default.

  Returns:
    (final carry, h [B, T, H]).

  Raises:
    TypeError: if `cell` is not a `plstm.PhasedLSTM`.
    ValueError: if inputs are not (x, t) of one leading shape, `units` is
      not [T, M], the params differ from `cell.init`'s in tree, shape or
      kind, or `mask` is not [B, T] (as `plstm.scan`).

  Note:
    Under `jax.jit`, `units` may be traced (its shape is static); a new
    schedule of the same M does not recompile.
  """
  _check_cell(cell)
  x, t = timed_inputs(cell, inputs)
  if x.shape[:-1] != jnp.shape(t):
    raise ValueError(
      f"sparse.scan: x and t must have the same leading (batch, time) "
      f"shape, got x {x.shape} and t {jnp.shape(t)}."
    )
  if units.ndim != 2 or units.shape[0] != x.shape[1]:
    raise ValueError(
      f"sparse.scan: units must be [T, M] with T = {x.shape[1]}, got shape "
      f"{units.shape}; compute it with open_units for these timestamps."
    )
  recurrent.check_params(cell, params, x.shape[-1], where="sparse.scan")
  if carry is None:
    carry = cell.initial_carry(x.shape[0])
  steps = jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape[:2])
  return recurrent.scan(
    _OpenUnits(cell, jnp.asarray(units)),
    _unit_major(params, cell.hidden_size),
    (x, t, steps),
    mask=mask,
    carry=carry,
  )
