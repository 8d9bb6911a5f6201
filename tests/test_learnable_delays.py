"""Learnable synaptic delays of plstm.ALIF/LIF and their DEEP R redraw."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.test_util import check_grads

import plstm


def _spiking_pair(n_delay=4, learn=True, n_rec=6, n_in=3):
  """A fixed cell, its learnable twin, and their params from one key."""
  kw = dict(tau=5.0, thr=0.05, n_delay=n_delay, tau_a=20.0, beta=0.5)
  fixed = plstm.ALIF(n_rec, **kw)
  learnable = plstm.ALIF(n_rec, **kw, learn_delays=learn)
  key = jax.random.key(0)
  return fixed, learnable, fixed.init(key, n_in), learnable.init(key, n_in)


def _inputs(shape=(2, 30, 3), seed=1):
  return jax.random.normal(jax.random.key(seed), shape) * 2.0


def test_learnable_delays_start_as_the_fixed_integers_as_floats():
  _, _, p, q = _spiking_pair()
  for name in ("d_in", "d_rec"):
    assert p[name].dtype == jnp.int32 and q[name].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(q[name]), np.asarray(p[name]))
  assert plstm.trainable(q)["d_in"] is not None
  assert plstm.trainable(p)["d_in"] is None


def test_integer_valued_delays_equal_the_fixed_form_exactly():
  fixed, learnable, p, q = _spiking_pair()
  x = _inputs()
  _, out_p = plstm.scan(fixed, p, x)
  _, out_q = plstm.scan(learnable, q, x)
  assert float(jnp.sum(out_p.z)) > 0  # spikes, so the recurrent delays act
  for a, b in zip(out_p, out_q, strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

  def grads(cell, params):
    def loss(w):
      _, out = plstm.scan(cell, {**params, **w}, x)
      return jnp.sum(out.v**2) + jnp.sum(out.thr)

    return jax.grad(loss)({k: params[k] for k in ("w_in", "w_rec")})

  g_p, g_q = grads(fixed, p), grads(learnable, q)
  for k in g_p:
    assert float(jnp.max(jnp.abs(g_p[k]))) > 0
    np.testing.assert_array_equal(np.asarray(g_p[k]), np.asarray(g_q[k]))


def test_interpolated_weight_matches_hand_values():
  cell = plstm.ALIF(2, n_delay=4, learn_delays=True)
  w = jnp.array([[2.0, -1.0]])
  d = jnp.array([[1.25, 3.0]])
  expected = [[[0.0, 1.5, 0.5, 0.0], [0.0, 0.0, 0.0, -1.0]]]
  np.testing.assert_allclose(cell._delayed(w, d), expected)
  # Out of range: read at the nearest end.
  d = jnp.array([[-2.0, 7.5]])
  expected = [[[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -1.0]]]
  np.testing.assert_allclose(cell._delayed(w, d), expected)


def test_a_fractional_input_delay_splits_the_current_between_two_steps():
  # One input spike at t = 0, weight 1, delay 1.25: 0.75 of its current
  # enters v at t = 1 and 0.25 at t = 2 (no spikes: thr is high).
  cell = plstm.LIF(1, tau=2.0, thr=1e9, n_delay=4, learn_delays=True)
  params = {
    "w_in": jnp.ones((1, 1)),
    "w_rec": jnp.zeros((1, 1)),
    "d_in": jnp.full((1, 1), 1.25),
    "d_rec": jnp.zeros((1, 1)),
  }
  x = jnp.zeros((1, 5, 1)).at[0, 0, 0].set(1.0)
  _, out = plstm.scan(cell, params, x)
  alpha = np.exp(-1 / 2.0)
  i = np.array([0.0, 0.75, 0.25, 0.0, 0.0])
  v, expected = 0.0, []
  for i_t in i:
    v = alpha * v + (1 - alpha) * i_t
    expected.append(v)
  np.testing.assert_allclose(out.v[0, :, 0], expected, rtol=1e-6)


def test_input_delay_gradient_against_finite_differences():
  # Without spikes (thr high) the voltages are smooth in d between integers.
  cell = plstm.ALIF(4, tau=3.0, thr=1e6, n_delay=5, learn_delays=True)
  params = cell.init(jax.random.key(2), 3)
  d_in = jnp.array(
    [[0.3, 1.6, 2.4, 3.7], [1.2, 0.5, 2.8, 3.3], [2.6, 1.4] + [0.7, 3.5]]
  )
  x = _inputs((2, 12, 3), seed=3)

  def f(d):
    _, out = plstm.scan(cell, {**params, "d_in": d}, x)
    return jnp.sum(out.v * jnp.arange(12.0)[None, :, None])

  # f is linear in each d between integers; eps stays inside the interval.
  check_grads(f, (d_in,), order=1, modes=("rev", "fwd"), eps=0.05)


def test_recurrent_delay_gradient_against_finite_differences():
  # One step from a carry that holds spikes: the buffered currents are
  # linear in the shares of each delay.
  cell = plstm.ALIF(4, n_delay=5, learn_delays=True)
  params = cell.init(jax.random.key(4), 2)
  d_rec = jax.random.uniform(
    jax.random.key(5), (4, 4), minval=0.1, maxval=0.9
  ) + jnp.arange(4.0)
  carry = cell.initial_carry(2)._replace(
    z=jnp.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
  )
  x = _inputs((2, 2), seed=6)
  probe = jax.random.normal(jax.random.key(7), (2, 4, 5))

  def f(d):
    new, out = cell.step({**params, "d_rec": d}, carry, x)
    return jnp.sum(new.i_future * probe[..., :5]) + jnp.sum(out.v)

  check_grads(f, (d_rec,), order=1, modes=("rev", "fwd"), eps=0.05)
  assert float(jnp.max(jnp.abs(jax.grad(f)(d_rec)))) > 0


def test_the_clip_passes_the_gradient_of_its_end():
  cell = plstm.ALIF(1, n_delay=3, learn_delays=True)
  w = jnp.ones((1, 1))
  probe = jnp.array([1.0, 2.0, 5.0])
  grad = jax.grad(lambda d: jnp.sum(cell._delayed(w, d) * probe))
  # Past the end the gradient is that of the end's slot pair [1, 2].
  np.testing.assert_allclose(grad(jnp.full((1, 1), 9.0)), [[3.0]])
  np.testing.assert_allclose(grad(jnp.full((1, 1), 2.0)), [[3.0]])
  np.testing.assert_allclose(grad(jnp.full((1, 1), -4.0)), [[1.0]])


def test_dormant_synapses_get_no_delay_gradient():
  _, cell, _, q = _spiking_pair()
  q = {**q, "w_in": q["w_in"].at[0].set(0.0)}
  x = _inputs()

  def loss(d):
    _, out = plstm.scan(cell, {**q, "d_in": d}, x)
    return jnp.sum(out.v**2)

  g = jax.grad(loss)(q["d_in"] + 0.5)
  np.testing.assert_array_equal(np.asarray(g[0]), 0.0)
  assert float(jnp.max(jnp.abs(g[1:]))) > 0


def _lag_batch(key, batch=64, steps=24, lag=5, n_delay=8):
  """Two input channels spike once each, `lag` steps apart; the class says
  which spikes first."""
  k_t, k_c = jax.random.split(key)
  t0 = jax.random.randint(k_t, (batch,), 0, steps - n_delay - lag - 2)
  c = jax.random.bernoulli(k_c, 0.5, (batch,)).astype(jnp.int32)
  t_a = jnp.where(c == 0, t0, t0 + lag)
  t_b = jnp.where(c == 0, t0 + lag, t0)
  t = jnp.arange(steps)[None]
  x = jnp.stack([t == t_a[:, None], t == t_b[:, None]], -1)
  return x.astype(jnp.float32), c


def _train_on_lag(learn: bool, n_steps=200, n_rec=16, n_delay=8) -> float:
  """Accuracy after training a feed-forward LIF layer (no recurrence, a
  membrane that forgets in a step) whose delays start at 0: it can tell the
  order only by delaying one channel onto the other."""
  cell = plstm.LIF(n_rec, tau=0.5, thr=1.0, n_delay=n_delay, learn_delays=learn)
  k_init, k_out, k_data = jax.random.split(jax.random.key(0), 3)
  params = cell.init(k_init, 2)
  params |= {
    "w_in": 2 * jnp.abs(params["w_in"]),
    "w_rec": jnp.zeros((n_rec, n_rec)),
    "d_in": jnp.zeros_like(params["d_in"]),
    "d_rec": jnp.zeros_like(params["d_rec"]),
  }
  trained = {
    "w_in": params["w_in"],
    "w_out": 0.1 * jax.random.normal(k_out, (n_rec, 2)),
  }
  if learn:
    trained["d_in"] = params["d_in"]

  def loss(trained, x, c):
    net = {**params, **{k: v for k, v in trained.items() if k != "w_out"}}
    _, out = plstm.scan(cell, net, x)
    logits = out.z.sum(1) @ trained["w_out"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, c)
    return jnp.mean(ce), jnp.mean(logits.argmax(-1) == c)

  delays_faster = {k: k == "d_in" for k in trained}
  tx = optax.chain(
    optax.adam(0.05), optax.masked(optax.scale(3.0), delays_faster)
  )

  @jax.jit
  def step(trained, state, key):
    grads, _ = jax.grad(loss, has_aux=True)(trained, *_lag_batch(key))
    with jax.numpy_dtype_promotion("standard"):  # optax.adam: float ** int.
      updates, state = tx.update(grads, state, trained)
    return optax.apply_updates(trained, updates), state

  state = tx.init(trained)
  for key in jax.random.split(k_data, n_steps):
    trained, state = step(trained, state, key)
  x, c = _lag_batch(jax.random.key(99), batch=256)
  return float(loss(trained, x, c)[1])


def test_a_lag_task_is_solved_with_learned_delays_and_not_with_fixed():
  assert _train_on_lag(learn=True) >= 0.95
  assert _train_on_lag(learn=False) <= 0.65


def test_redraw_gives_reconnected_synapses_fresh_delays():
  n_delay = 6
  w = jnp.array([[0.0, 0.5, 0.0], [0.0, -0.2, 0.3]])
  params = {
    "w_in": w,
    "d_in": jnp.full(w.shape, 2.5),
    "w_rec": jnp.zeros((2, 2)),
    "d_rec": jnp.full((2, 2), 1.5),
  }
  updates = jax.tree.map(jnp.zeros_like, params)
  # Reconnect w_in[0, 0] and w_in[1, 0]; w_in[0, 2] stays dormant.
  updates["w_in"] = updates["w_in"].at[0, 0].set(1e-12).at[1, 0].set(-1e-12)
  updates["d_in"] = jnp.full(w.shape, 0.1)
  tx = plstm.redraw_delays(n_delay, jax.random.key(3))
  new_updates, _ = tx.update(updates, tx.init(params), params)
  new = optax.apply_updates(params, new_updates)
  fresh = np.asarray(new["d_in"][:, 0])
  np.testing.assert_allclose(fresh, np.round(fresh), atol=1e-6)
  assert np.all((fresh >= 0) & (fresh <= n_delay - 1))
  np.testing.assert_allclose(new["d_in"][:, 1:], 2.6)
  np.testing.assert_array_equal(new["d_rec"], params["d_rec"])


def test_redraw_after_deep_r_keeps_delays_of_survivors():
  cell = plstm.ALIF(8, n_delay=5, learn_delays=True)
  params = cell.init(jax.random.key(0), 4)
  params["w_in"] = plstm.weight_sampler(jax.random.key(1), 4, 8, 0.3)[0]
  params["w_rec"] = plstm.weight_sampler(jax.random.key(2), 8, 8, 0.3)[0]
  rewired = lambda p: {k: k in ("w_in", "w_rec") for k in p}
  tx = optax.chain(
    optax.sgd(1.0),
    plstm.deep_r(1.0, 0.3, l1=0.05, temperature=0.0, mask=rewired, seed=0),
    plstm.redraw_delays(5, jax.random.key(4)),
  )
  state = tx.init(params)
  grads = jax.tree.map(jnp.zeros_like, params)
  new = params
  for _ in range(30):
    old = new
    updates, state = tx.update(grads, state, new)
    new = optax.apply_updates(new, updates)
  reconnected = (old["w_in"] == 0) & (new["w_in"] != 0)
  surviving = (old["w_in"] != 0) & (new["w_in"] != 0)
  assert bool(jnp.any(reconnected))
  np.testing.assert_array_equal(
    np.asarray(new["d_in"])[np.asarray(surviving)],
    np.asarray(old["d_in"])[np.asarray(surviving)],
  )
  d = np.asarray(new["d_in"])
  np.testing.assert_array_equal(d, np.round(d))


def test_redraw_errors_name_the_fix():
  with pytest.raises(ValueError, match="n_delay must be an integer >= 2"):
    plstm.redraw_delays(1, jax.random.key(0))
  tx = plstm.redraw_delays(3, jax.random.key(0))
  fixed = plstm.ALIF(3, n_delay=3).init(jax.random.key(0), 2)
  zeros = jax.tree.map(jnp.zeros_like, fixed)
  with pytest.raises(ValueError, match="learn_delays=True"):
    tx.update(zeros, tx.init(fixed), fixed)
  with pytest.raises(ValueError, match="have no"):
    tx.update({"w_in": 0}, tx.init({}), {"w_in": jnp.zeros(2)})


def test_flax_wrappers_train_learnable_delays_and_hold_fixed_ones():
  x = _inputs((2, 6, 3))
  learnable = plstm.nn.NNXRNN(
    plstm.ALIF(4, n_delay=3, learn_delays=True), 3, rngs=nnx.Rngs(0)
  )
  fixed = plstm.nn.NNXRNN(plstm.ALIF(4, n_delay=3), 3, rngs=nnx.Rngs(0))
  assert isinstance(learnable.d_in, nnx.Param)
  assert isinstance(fixed.d_in, nnx.Variable)
  assert not isinstance(fixed.d_in, nnx.Param)
  np.testing.assert_array_equal(
    np.asarray(learnable(x).v), np.asarray(fixed(x).v)
  )

  module = plstm.nn.LinenRNN(plstm.ALIF(4, n_delay=3, learn_delays=True))
  variables = module.init(jax.random.key(0), x)
  assert set(variables) == {"params"}
  assert variables["params"]["d_rec"].dtype == jnp.float32
