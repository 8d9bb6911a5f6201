"""DEEP R (Bellec et al., ICLR 2018) as an optax transformation.

The module owns `deep_r`, a `GradientTransformation` placed after the
optimiser, and its state `DeepRState`:

  tx = optax.chain(optax.adam(lr), deep_r(lr, 0.12, l1=1e-2, mask=mask))

It follows the rewiring of the LSNN code (`rewiring_optimizer_wrapper` in
`lsnn/toolbox/rewiring_tools.py`), which keeps the number of active synapses
of all rewired matrices together fixed. `redraw_delays`, placed after it,
gives the synapses it reconnects fresh learnable delays (`plstm.ALIF`'s
`learn_delays`).
"""

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from plstm.cell import is_traced

Array = jax.Array


class DeepRState(NamedTuple):
  """The state of `deep_r`.

  Attributes:
    count: int32 [], updates done so far (the schedule's step).
    key: the PRNG key for the noise and the reconnections.
    signs: the fixed sign s (+-1, the params' dtype) of every synapse, a
      pytree like the rewired params.
  """

  count: Array
  key: Array
  signs: Any


def _is_masked(x) -> bool:
  return isinstance(x, optax.MaskedNode)


def _sign_at_init(key: Array, w: Array) -> Array:
  """sign(w), and a random sign where w == 0."""
  return jnp.where(
    w == 0, jax.random.rademacher(key, w.shape, w.dtype), jnp.sign(w)
  )


def _given_sign(w, s):
  if _is_masked(w):
    return w
  if s is None:
    raise ValueError(
      "deep_r: signs is None at a rewired param; give +-1 signs for every "
      "param that `mask` rewires."
    )
  if not is_traced(s) and not np.all(np.abs(s) == 1):
    raise ValueError(
      f"deep_r: signs must be +1 or -1 at every rewired synapse, got values "
      f"{np.unique(s)[:4]}."
    )
  s = jnp.asarray(s)
  if s.shape != w.shape:
    raise ValueError(
      f"deep_r: signs has shape {s.shape} where the param has {w.shape}; "
      "signs must mirror the params."
    )
  return s.astype(w.dtype)


def _reconnect(key: Array, candidate: Array, count: Array) -> Array:
  """Picks `count` entries of `candidate` uniformly at random (all if fewer).

  A random permutation gives every entry a distinct score; the `count`
  candidates with the lowest scores are picked. Returns a bool mask.
  """
  size = candidate.size
  score = jax.random.permutation(key, size).reshape(candidate.shape)
  score = jnp.where(candidate, score, size)
  # The count-th lowest candidate score, or `size` if there are fewer.
  kth = jnp.sort(score.ravel())[jnp.clip(count - 1, 0, size - 1)]
  return candidate & (score <= kth) & (count > 0)


def deep_r(
  learning_rate: optax.ScalarOrSchedule,
  connectivity: float,
  *,
  l1: float = 0.0,
  temperature: float = 0.0,
  signs: Any = None,
  mask: Any = None,
  seed: int | None = None,
  key: Array | None = None,
  epsilon: float = 1e-12,
) -> optax.GradientTransformation:
  r"""DEEP R rewiring with a global budget of active synapses.

  Each rewired synapse k has a fixed sign s_k and a parameter
  theta_k = s_k w_k; it is active iff theta_k > 0, and a dormant synapse has
  w_k = 0 exactly. With u the updates of the optimiser before this transform
  and eta the current learning rate, one `update` does, as the LSNN code:

  .. math::
    \theta &= s \odot (w + u) \text{ where } s \odot w > 0, \text{ else } 0
      \qquad \text{(dormant stay dormant)} \\
    \theta &\leftarrow \theta - \eta\,l_1 + \sqrt{2 \eta T}\,\nu,
      \quad \nu \sim N(0, 1), \text{ where } \theta > 0 \\
    \theta &\leftarrow \max(\theta, 0)
      \qquad \text{(a synapse that crosses zero is dormant)}

  then reconnects n = max(0, K - #active) synapses, K = int(sum_i size_i p)
  over the rewired leaves i: n categorical draws with probabilities
  proportional to size_i p split n across the leaves, and each leaf
  activates that many uniformly random synapses, among those dormant before
  the step (Notes, (1)), with theta = epsilon.
  The returned updates are s theta - w, so `optax.apply_updates` gives the
  rewired weights w = s theta. Afterwards exactly K synapses are active,
  unless a leaf drew more reconnections than it had candidates (it then
  activates all of them, as the original, and the total falls short until
  the next step).

  Args:
    learning_rate: eta, a float, a JAX scalar or a schedule of the step
      count; pass the optimiser's own learning rate. Under
      `optax.inject_hyperparams` the injected value is used.
    connectivity: p in (0, 1], the budget K = int(sum_i size_i p) (a Python
      float: with `optax.inject_hyperparams`, list it in `static_args`, with
      a callable `mask`).
    l1: the L1 coefficient alpha, a float or a JAX scalar; active |w|
      shrink by eta alpha per step.
    temperature: T, a float or a JAX scalar; the noise on active synapses
      has std sqrt(2 eta T).
    signs: a pytree mirroring the params of +-1 arrays fixing each
      synapse's sign (Dale's law: per-row signs). Values at leaves left out
      by `mask` are ignored (None is fine). Params whose sign disagrees with
      `signs` are dormant and set to 0 at the first update. None: sign(w) at
      init, a random sign (from the key) where w == 0.
    mask: which leaves are rewired, a pytree of bools or a callable
      params -> pytree (`optax.masked`). Other leaves pass through
      unchanged. None: all.
    seed: the seed of the PRNG key kept in the state,
      `jax.random.key(seed)` (may be a traced int); 0 if neither `seed`
      nor `key` is given.
    key: the PRNG key itself (a typed key, may be traced), instead of
      `seed`: `key=jax.random.key(s)` rewires as `seed=s`. Pass one of the
      two, not both.
    epsilon: theta of a reconnected synapse (|w| = epsilon).

  Returns:
    An `optax.GradientTransformation` with state `DeepRState` (wrapped in
    `optax.MaskedState` if `mask` is given); `update` requires params.

  Raises:
    ValueError: if connectivity is not in (0, 1]; if both seed and key are
      given; at `init`, if `signs` is not a pytree like the params, or
      holds a value other than +-1 (or a shape other than the param's) at a
      rewired leaf (traced signs are not checked).

  Notes:
    No separate theta: the params are the signed weights w. Adam is
    sign-equivariant per element (g -> s g gives m -> s m, v -> v, update ->
    s update), so Adam on w followed by this transform is exactly the
    original's Adam on theta with gradients dL/dw * s, which are non-zero
    for dormant synapses too.

    The original leaves a theta that went negative in place for one step.
    Its weight is 0 all the same, and the next step's guard sets it to 0
    before any use, so clipping it to 0 at once changes nothing.

    Departures from the original. (1) Only synapses dormant before this
    step (w == 0) are reconnected; the original may also pick the ones that
    died in this step. The reason: `apply_updates` computes w + (w' - w),
    which cannot land on epsilon when |w| >> epsilon. (2) For the same
    reason a surviving synapse whose new weight is below about 2^-24 |w|
    may round to 0; it is counted as dormant. Rounding never flips a sign
    (for 0 <= w' < w, fl(w' - w) >= -w, so w + (w' - w) >= 0), and a dying
    synapse lands on 0 exactly (w + (-w) = 0). (3) The split draws K
    categorical samples and uses the first n (static shapes); the picks
    rank random scores; both have the original's distributions. (4) K is
    computed in double precision; the original casts a float32 sum. (5)
    The original asserts #active <= K; here a denser start keeps its
    synapses and reconnects none until deaths bring it below K.
  """
  if (
    isinstance(connectivity, bool)
    or not isinstance(connectivity, numbers.Real)
    or not 0 < connectivity <= 1
  ):
    raise ValueError(
      f"deep_r: connectivity must be a Python float in (0, 1], got "
      f"{connectivity!r}. Under optax.inject_hyperparams, pass "
      "static_args=('connectivity', 'mask')."
    )
  if seed is not None and key is not None:
    raise ValueError("deep_r: pass seed or key, not both.")

  def init_fn(params) -> DeepRState:
    if not jax.tree.leaves(params):
      raise ValueError("deep_r: no params to rewire; check `mask`.")
    root = jax.random.key(0 if seed is None else seed) if key is None else key
    key_signs, state_key = jax.random.split(root)
    if signs is None:
      ws, treedef = jax.tree.flatten(params)
      keys = jax.random.split(key_signs, len(ws))
      fixed = treedef.unflatten(map(_sign_at_init, keys, ws))
    else:
      ws, treedef = jax.tree.flatten(params, is_leaf=_is_masked)
      try:
        ss = treedef.flatten_up_to(signs)
      except ValueError:
        raise ValueError(
          "deep_r: signs must be a pytree like the params (None where not "
          f"rewired), got {type(signs).__name__}."
        ) from None
      fixed = treedef.unflatten(map(_given_sign, ws, ss))
    return DeepRState(jnp.zeros([], jnp.int32), state_key, fixed)

  def update_fn(updates, state: DeepRState, params=None):
    if params is None:
      raise ValueError(
        "deep_r: update needs the params, tx.update(updates, state, params)."
      )
    ws, treedef = jax.tree.flatten(params)
    us = treedef.flatten_up_to(updates)
    ss = treedef.flatten_up_to(state.signs)
    eta = learning_rate
    if callable(learning_rate):
      eta = learning_rate(state.count)
    key, key_split, *keys = jax.random.split(state.key, 2 + 2 * len(ws))
    keys_noise, keys_pick = keys[: len(ws)], keys[len(ws) :]

    thetas, actives = [], []
    for w, u, s, k in zip(ws, us, ss, keys_noise, strict=True):
      lr = jnp.asarray(eta, w.dtype)
      theta = jnp.where(s * w > 0, s * (w + u), 0)
      step = -lr * l1 + jnp.sqrt(2 * lr * temperature) * jax.random.normal(
        k, w.shape, w.dtype
      )
      theta = jnp.maximum(jnp.where(theta > 0, theta + step, 0), 0)
      thetas.append(theta)
      # Active as `apply_updates` will compute it (see Notes, (2)).
      actives.append(s * (w + (s * theta - w)) > 0)

    budget = int(sum(w.size * connectivity for w in ws))
    n_active = sum(jnp.sum(a, dtype=jnp.int32) for a in actives)
    n = jnp.maximum(budget - n_active, 0)
    sizes = jnp.asarray([w.size for w in ws], jnp.float32)
    leaf = jax.random.categorical(key_split, jnp.log(sizes), shape=(budget,))
    drawn = jnp.arange(budget) < n

    new_updates = []
    for i, (w, s, theta, k) in enumerate(
      zip(ws, ss, thetas, keys_pick, strict=True)
    ):
      count = jnp.sum(drawn & (leaf == i), dtype=jnp.int32)
      picked = _reconnect(k, w == 0, count)
      new_updates.append(jnp.where(picked, s * epsilon, s * theta) - w)
    state = DeepRState(optax.safe_increment(state.count), key, state.signs)
    return treedef.unflatten(new_updates), state

  tx = optax.GradientTransformation(init_fn, update_fn)
  return tx if mask is None else optax.masked(tx, mask)


class RedrawState(NamedTuple):
  """The state of `redraw_delays`: the PRNG key of the fresh delays."""

  key: Array


def redraw_delays(
  n_delay: int,
  key: Array,
  pairs: tuple[tuple[str, str], ...] = (("w_in", "d_in"), ("w_rec", "d_rec")),
) -> optax.GradientTransformation:
  """Fresh learnable delays for the synapses that DEEP R reconnects.

  Place it after `deep_r` in the chain, on the whole params dict:

    tx = optax.chain(optax.adam(lr), deep_r(lr, p, mask=...),
                     redraw_delays(cell.n_delay, key))

  For each (weight, delay) name pair, a synapse whose weight is 0 before the
  update and nonzero after it (a reconnection) gets a delay drawn
  uniformly from {0..n_delay-1}, as `plstm.ALIF.delays` draws them at
  init; every other delay keeps the update it was given. The returned
  delay update is fresh - d, so `optax.apply_updates` lands on the fresh
  value (to float rounding). A dormant synapse's delay needs no care: with
  w = 0 its gradient is 0.

  Args:
    n_delay: D, the cell's number of delay slots.
    key: the PRNG key of the fresh delays (a typed key, may be traced).
    pairs: (weight name, delay name) pairs of the params dict.

  Raises:
    ValueError: if n_delay is not an integer >= 2; at `update`, if the
      params lack a name of `pairs` or a delay is not floating point (the
      fixed integer delays are not trained).
  """
  if isinstance(n_delay, bool) or not isinstance(n_delay, int) or n_delay < 2:
    raise ValueError(
      f"redraw_delays: n_delay must be an integer >= 2, got {n_delay!r}."
    )

  def init_fn(params) -> RedrawState:
    del params
    return RedrawState(key)

  def update_fn(updates, state: RedrawState, params=None):
    if params is None:
      raise ValueError(
        "redraw_delays: update needs the params, "
        "tx.update(updates, state, params)."
      )
    missing = [n for pair in pairs for n in pair if n not in params]
    if missing:
      raise ValueError(
        f"redraw_delays: the params have no {missing}; pairs names the "
        f"(weight, delay) entries, got {pairs}."
      )
    new_key, *keys = jax.random.split(state.key, 1 + len(pairs))
    updates = dict(updates)
    for (w_name, d_name), k in zip(pairs, keys, strict=True):
      w, d = params[w_name], params[d_name]
      if not jnp.issubdtype(d.dtype, jnp.floating):
        raise ValueError(
          f"redraw_delays: {d_name} is {d.dtype}; only learnable (float) "
          "delays are redrawn (plstm.ALIF(..., learn_delays=True))."
        )
      reconnected = (w == 0) & (w + updates[w_name] != 0)
      fresh = jax.random.randint(k, d.shape, 0, n_delay).astype(d.dtype)
      updates[d_name] = jnp.where(reconnected, fresh - d, updates[d_name])
    return updates, RedrawState(new_key)

  return optax.GradientTransformation(init_fn, update_fn)
