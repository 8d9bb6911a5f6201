"""Tests of plstm.lsnn: a NumPy re-derivation of the original's step, hand-built
refractory and delay cases, the pseudo-derivative, the sparse signed
initialisation and the readout helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import plstm
from plstm import lsnn


def _np_reference(cell, params, x):
  """The original's ALIF step (spec 2.1) in float64 NumPy, written apart.

  Delays go through a current schedule indexed by absolute time (not a
  rolling buffer), and refractoriness through the time of each neuron's last
  spike (not a spike buffer). Returns z, v, A, each [B, T, R], and the number
  of spikes the refractory period suppressed.
  """
  x = np.asarray(x, np.float64)
  n_batch, n_time, n_in = x.shape
  r, n_delay, dt = cell.n_rec, cell.n_delay, cell.dt
  # The delays of the params (none with n_delay = 1: every delay is 0).
  d_in = np.asarray(params.get("d_in", np.zeros((n_in, r), int)))
  d_rec = np.asarray(params.get("d_rec", np.zeros((r, r), int)))
  w_in = np.asarray(params["w_in"], np.float64)
  w_rec = np.array(params["w_rec"], np.float64)
  np.fill_diagonal(w_rec, 0.0)

  def per_neuron(value):
    return np.broadcast_to(np.asarray(value, np.float64), (r,))

  alpha = np.exp(-dt / per_neuron(cell.tau))
  rho = np.exp(-dt / per_neuron(cell.tau_a))
  thr0, beta = per_neuron(cell.thr), per_neuron(cell.beta)
  schedule = np.zeros((n_batch, r, n_time + n_delay))
  z = np.zeros((n_batch, r))
  v = np.zeros((n_batch, r))
  b = np.zeros((n_batch, r))
  last_spike = np.full((n_batch, r), -np.inf)
  zs, vs, thrs = [], [], []
  suppressed = 0
  for t in range(n_time):
    for k in range(n_delay):
      schedule[:, :, t + k] += x[:, t] @ np.where(d_in == k, w_in, 0.0)
      schedule[:, :, t + k] += z @ np.where(d_rec == k, w_rec, 0.0)
    b = rho * b + (1 - rho) * z
    a = thr0 + beta * b
    v_new = alpha * v + (1 - alpha) * schedule[:, :, t] - z * a * dt
    spike = (v - a) / a > 0
    refractory = t - last_spike <= cell.n_refractory
    suppressed += int(np.sum(spike & refractory))
    spike &= ~refractory
    last_spike = np.where(spike, t, last_spike)
    z, v = spike / dt, v_new
    zs.append(z)
    vs.append(v)
    thrs.append(a)
  return (*(np.stack(s, axis=1) for s in (zs, vs, thrs)), suppressed)


def _spike_trains(shape, rate, seed):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.random(shape) < rate, jnp.float32)


def test_matches_numpy_rederivation_of_the_original():
  r = 12
  cell = lsnn.ALIF(
    r,
    tau=np.linspace(5.0, 30.0, r),
    thr=0.03,
    dt=0.5,
    n_refractory=3,
    n_delay=4,
    tau_a=np.linspace(30.0, 300.0, r),
    beta=[0.0] * 5 + [1.7] * 7,
  )
  params = cell.init(jax.random.key(0), 6)
  x = _spike_trains((3, 240, 6), 0.1, seed=1)
  _, out = jax.jit(lambda p, x: plstm.scan(cell, p, x))(params, x)
  z, v, thr, suppressed = _np_reference(cell, params, x)
  np.testing.assert_array_equal(out.z, z)
  np.testing.assert_allclose(out.v, v, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out.thr, thr, rtol=1e-5, atol=1e-5)
  # The run exercises spikes, refractoriness, adaptation and every delay.
  np.testing.assert_array_equal(np.unique(z), [0.0, 2.0])  # spikes are 1/dt
  assert 0.01 < np.mean(z > 0) < 0.3
  assert suppressed > 0
  assert np.ptp(thr[..., 5:]) > 0.01
  assert set(np.unique(params["d_in"])) == {0, 1, 2, 3}
  assert set(np.unique(params["d_rec"])) == {0, 1, 2, 3}


@pytest.mark.parametrize("n_refractory", [0, 1, 3])
def test_refractory_period(n_refractory):
  # Neuron 0 is driven hard from t = 0: its v crosses thr at t = 0, it spikes
  # at t = 1 (spikes read the previous v) and then every n_refractory + 1
  # steps, silent for exactly n_refractory steps after each spike.
  cell = lsnn.LIF(2, n_refractory=n_refractory)
  params = {"w_in": jnp.array([[10.0, 0.0]]), "w_rec": jnp.zeros((2, 2))}
  _, out = plstm.scan(cell, params, jnp.ones((1, 12, 1)))
  expected = np.zeros(12)
  expected[1 :: n_refractory + 1] = 1.0
  np.testing.assert_array_equal(out.z[0, :, 0], expected)
  np.testing.assert_array_equal(out.z[0, :, 1], np.zeros(12))


def _first_nonzero(a):
  return int(np.flatnonzero(np.asarray(a))[0])


def test_input_delay():
  # A single input spike at t = 0 through a synapse of delay d first moves
  # v at step d (slot 0 of the buffer is consumed at once).
  seen = set()
  cell = lsnn.LIF(2, thr=1e3, n_delay=4)
  for seed in (0, 3, 4, 9):  # keys whose delay d_in[0, 0] is 3, 0, 2, 1
    delays = cell.delays(jax.random.key(seed), 1)
    d = int(delays["d_in"][0, 0])
    seen.add(d)
    params = {
      "w_in": jnp.array([[1.0, 0.0]]),
      "w_rec": jnp.zeros((2, 2)),
      **delays,
    }
    x = jnp.zeros((1, 8, 1)).at[0, 0, 0].set(1.0)
    _, out = plstm.scan(cell, params, x)
    assert _first_nonzero(out.v[0, :, 0]) == d
    alpha = np.exp(-1.0 / 20.0)
    np.testing.assert_allclose(out.v[0, d, 0], 1.0 - alpha, rtol=1e-6)
  assert seen == {0, 1, 2, 3}


def test_recurrent_delay():
  # Neuron 0 spikes once (its refractory period hides the late reset);
  # neuron 1 (never spiking) hears it through the
  # synapse 0 -> 1 of delay d one step later than an input would: at
  # t_spike + 1 + d.
  seen = set()
  cell = lsnn.LIF(2, thr=(0.03, 1e3), n_refractory=2, n_delay=4)
  for seed in (0, 1, 2, 16):  # keys whose delay d_rec[0, 1] is 2, 0, 1, 3
    delays = cell.delays(jax.random.key(seed), 1)
    d_in, d_rec = delays["d_in"], delays["d_rec"]
    d = int(d_rec[0, 1])
    seen.add(d)
    params = {
      "w_in": jnp.array([[1.0, 0.0]]),
      "w_rec": jnp.array([[0.0, 1.0], [0.0, 0.0]]),
      **delays,
    }
    x = jnp.zeros((1, 16, 1)).at[0, 0, 0].set(1.0)
    _, out = plstm.scan(cell, params, x)
    spikes = np.flatnonzero(np.asarray(out.z[0, :, 0]))
    assert spikes.tolist() == [int(d_in[0, 0]) + 1]
    assert _first_nonzero(out.v[0, :, 1]) == spikes[0] + 1 + d
  assert seen == {0, 1, 2, 3}


def test_delays_are_integer_params_of_the_key():
  cell = lsnn.ALIF(9, n_delay=5)
  params = cell.init(jax.random.key(0), 4)
  assert params["d_in"].shape == (4, 9) and params["d_rec"].shape == (9, 9)
  assert params["d_in"].dtype == params["d_rec"].dtype == jnp.int32
  for d in (params["d_in"], params["d_rec"]):
    assert set(np.unique(d)) == set(range(5))
  same = cell.delays(jax.random.key(7), 4)
  jax.tree.map(
    np.testing.assert_array_equal, same, cell.delays(jax.random.key(7), 4)
  )
  other = cell.delays(jax.random.key(8), 4)
  assert not np.array_equal(same["d_in"], other["d_in"])
  assert not np.array_equal(same["d_rec"], other["d_rec"])
  # d_rec is drawn from a stream of its own: it does not depend on I.
  np.testing.assert_array_equal(
    same["d_rec"], cell.delays(jax.random.key(7), 6)["d_rec"]
  )
  # n_delay = 1: no delays in the params; n_delay > 1 needs them.
  assert set(lsnn.ALIF(9).init(jax.random.key(0), 4)) == {"w_in", "w_rec"}
  weights = {k: params[k] for k in ("w_in", "w_rec")}
  with pytest.raises(ValueError, match=r"params\['d_in'\] is missing"):
    plstm.scan(cell, weights, jnp.zeros((1, 3, 4)))
  with pytest.raises(ValueError, match=r"cell.delays\(key, input_size\)"):
    cell.step(weights, cell.initial_carry(1), jnp.zeros((1, 4)))


def test_training_takes_the_floating_leaves():
  # The docstring's recipe: jax.grad refuses the int delays, so a loop of
  # one's own trains `trainable(params)` and merges the delays back.
  cell = lsnn.ALIF(6, n_delay=3, thr=0.05)
  params = cell.init(jax.random.key(4), 4)
  x = _spike_trains((2, 30, 4), 0.3, seed=5)

  def loss(p):
    return jnp.sum(plstm.scan(cell, p, x)[1].v)

  with pytest.raises(TypeError, match="allow_int"):
    jax.grad(loss)(params)
  tx = optax.adam(1e-2)
  trained = plstm.trainable(params)
  grads = jax.grad(lambda t: loss(plstm.merge(t, params)))(trained)
  with jax.numpy_dtype_promotion("standard"):  # optax.adam: float ** int.
    updates, _ = tx.update(grads, tx.init(trained), trained)
  new = plstm.merge(optax.apply_updates(trained, updates), params)
  for k in ("d_in", "d_rec"):
    np.testing.assert_array_equal(new[k], params[k])
    assert new[k].dtype == jnp.int32
  assert not np.array_equal(new["w_in"], params["w_in"])


def test_lif_is_alif_without_adaptation():
  lif = lsnn.LIF(8, n_delay=3, n_refractory=2)
  alif = lsnn.ALIF(8, thr=0.03, beta=0.0, n_delay=3, n_refractory=2)
  params = lif.init(jax.random.key(1), 5)
  x = _spike_trains((2, 60, 5), 0.2, seed=2)
  _, out_lif = plstm.scan(lif, params, x)
  _, out_alif = plstm.scan(alif, params, x)
  assert out_lif.z.sum() > 0
  for a, b in zip(out_lif, out_alif, strict=True):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(out_lif.thr, np.float32(0.03))
  with pytest.raises(TypeError):
    lsnn.LIF(8, beta=1.0)


def test_no_self_connection():
  cell = lsnn.ALIF(6, n_delay=2)
  params = cell.init(jax.random.key(2), 4)
  x = _spike_trains((2, 50, 4), 0.3, seed=3)

  @jax.jit
  def spikes(p):
    return plstm.scan(cell, p, x)[1].z

  changed = dict(params, w_rec=params["w_rec"] + 5.0 * jnp.eye(6))
  assert spikes(params).sum() > 0
  np.testing.assert_array_equal(spikes(params), spikes(changed))
  g = jax.grad(lambda w: jnp.sum(spikes(dict(params, w_rec=w))))(
    params["w_rec"]
  )
  np.testing.assert_array_equal(np.diag(g), np.zeros(6))
  assert np.abs(g).sum() > 0


V_SCALED = jnp.array([-2.0, -0.5, 0.0, 0.25, 1.5])
PSEUDO = np.array([0.0, 0.15, 0.3, 0.225, 0.0])


def test_spike_function_forward_and_pseudo_derivative():
  np.testing.assert_array_equal(
    lsnn.spike_function(V_SCALED, 0.3), [0.0, 0.0, 0.0, 1.0, 1.0]
  )
  grad = jax.grad(lambda v: jnp.sum(lsnn.spike_function(v, 0.3)))(V_SCALED)
  np.testing.assert_allclose(grad, PSEUDO, rtol=1e-6)
  _, tangent = jax.jvp(
    lambda v: lsnn.spike_function(v, 0.3), (V_SCALED,), (2.0 * jnp.ones(5),)
  )
  np.testing.assert_allclose(tangent, 2.0 * PSEUDO, rtol=1e-6)
  g_damp = jax.grad(
    lambda g: jnp.sum(lsnn.spike_function(V_SCALED, g)), argnums=0
  )(jnp.float32(0.3))
  assert g_damp == 0.0


def test_gradient_through_the_threshold():
  # dz/dv = gamma max(0, 1 - |v - A| / A) / A at the spike's step.
  cell = lsnn.LIF(2, thr=0.05)
  params = cell.init(jax.random.key(0), 1)
  carry = cell.initial_carry(1)._replace(v=jnp.array([[0.06, 0.2]]))
  x = jnp.zeros((1, 1))
  g = jax.jit(jax.grad(lambda c: jnp.sum(cell.step(params, c, x)[1].z)))
  g = g(carry).v
  expected = 0.3 * np.maximum(
    0.0, 1.0 - np.abs(np.array([0.06, 0.2]) - 0.05) / 0.05
  )
  np.testing.assert_allclose(g[0], expected / 0.05, rtol=1e-5)


def test_scan_matches_loop_with_mask_and_grad_is_finite():
  cell = lsnn.ALIF(7, n_delay=3, n_refractory=2, beta=[0.0] * 3 + [1.6] * 4)
  params = cell.init(jax.random.key(3), 4)
  x = _spike_trains((2, 30, 4), 0.3, seed=4)
  carry = cell.initial_carry(2)
  outs = []
  for t in range(30):
    carry, out = cell.step(params, carry, x[:, t])
    outs.append(out)
  final, out = plstm.scan(cell, params, x)
  looped = jax.tree.map(lambda *o: jnp.stack(o, 1), *outs)
  np.testing.assert_array_equal(out.z, looped.z)
  assert out.z.sum() > 0
  for a, b in zip((*out, *final), (*looped, *carry), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)

  # Left padding: the padded sample ends with the carry of its real steps.
  pad = 5
  x_pad = jnp.concatenate([jnp.ones((2, pad, 4)), x], axis=1)
  mask = jnp.ones((2, 30 + pad), bool).at[0, :pad].set(False)
  final_pad, out_pad = plstm.scan(cell, params, x_pad, mask=mask)
  np.testing.assert_array_equal(out_pad.z[0, pad:], out.z[0])
  for a, b in zip(final_pad, final, strict=True):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(out_pad.z[0, :pad], 0.0)

  def loss(p):
    return jnp.sum(plstm.scan(cell, p, x_pad, mask=mask)[1].z)

  # The floating leaves: the delays are integer params, not trained.
  trained = plstm.trainable(params)
  grads = jax.grad(lambda t: loss(plstm.merge(t, params)))(trained)
  assert set(grads) == {"w_in", "w_rec", "d_in", "d_rec"}
  assert grads["d_in"] is None and grads["d_rec"] is None
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


def test_invalid_hyperparameters():
  for kwargs in (
    dict(n_rec=0),
    dict(n_rec=3, tau=0.0),
    dict(n_rec=3, n_delay=0),
    dict(n_rec=3, n_refractory=-1),
    dict(n_rec=3, beta=[1.0, 2.0]),
  ):
    with pytest.raises(ValueError):
      lsnn.ALIF(**kwargs)
  cell = lsnn.ALIF(3, tau=[10.0, 20.0, 30.0])
  assert cell.tau == (10.0, 20.0, 30.0)
  hash(cell)


def test_weight_sampler_unsigned():
  n_in, n_out, p = 40, 30, 0.1
  w, sign = jax.jit(lsnn.weight_sampler, static_argnums=(1, 2, 3))(
    jax.random.key(0), n_in, n_out, p
  )
  assert w.dtype == sign.dtype == jnp.float32
  nonzero = int(jnp.sum(w != 0))
  assert 0.85 * int(n_in * n_out * p) < nonzero <= int(n_in * n_out * p)
  np.testing.assert_array_equal(np.abs(sign), 1.0)
  assert 0.3 < np.mean(np.asarray(sign) > 0) < 0.7
  np.testing.assert_array_equal(np.sign(w)[w != 0], sign[w != 0])
  # |N(0, 1)| / sqrt(n_in) has mean sqrt(2 / pi) / sqrt(n_in).
  mean = np.mean(np.abs(w[w != 0])) * np.sqrt(n_in)
  assert abs(mean - np.sqrt(2 / np.pi)) < 0.15


_signed_matrix = jax.jit(lsnn._random_signed_matrix, static_argnums=2)
SIGNS = lsnn.neuron_signs(20, 0.75, shuffle_key=jax.random.key(5))


def test_signed_matrix_is_balanced_with_unit_spectral_radius():
  theta = _signed_matrix(jax.random.key(2), SIGNS, 20)
  w = np.asarray(SIGNS[:, None] * theta, np.float64)
  assert np.all(np.asarray(theta) > 0)
  np.testing.assert_allclose(w.sum(axis=0), 0.0, atol=1e-5)
  radius = np.max(np.abs(np.linalg.eigvals(w)))
  np.testing.assert_allclose(radius, 1.0, rtol=1e-5)
  # n < n_out: columns drawn (with replacement) from the square matrix.
  wide = np.asarray(_signed_matrix(jax.random.key(2), SIGNS, 25))
  for col in wide.T:
    assert np.any(np.all(np.asarray(theta) == col[:, None], axis=0))


def test_weight_sampler_signed_under_jit_vmap():
  n_in, n_out, p = 20, 25, 0.3
  keys = jax.random.split(jax.random.key(3), 2)

  def sample(k):
    return lsnn.weight_sampler(k, n_in, n_out, p, SIGNS)

  w_batched, sign_batched = jax.jit(jax.vmap(sample))(keys)
  w, sign = jax.jit(sample)(keys[0])
  np.testing.assert_allclose(w_batched[0], w, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(sign_batched[0], sign)
  assert not np.allclose(w_batched[0], w_batched[1])
  for w, sign, key in zip(w_batched, sign_batched, keys, strict=True):
    w = np.asarray(w)
    np.testing.assert_array_equal(sign, np.tile(SIGNS[:, None], (1, n_out)))
    assert 0 < np.sum(w != 0) <= int(n_in * n_out * p)
    assert np.all(w[SIGNS > 0] >= 0) and np.all(w[SIGNS < 0] <= 0)
    assert np.sum(w < 0) > 0
    # The nonzero weights are those of the balanced signed matrix.
    theta = _signed_matrix(jax.random.split(key, 4)[2], SIGNS, n_out)
    signed = np.asarray(SIGNS[:, None] * theta)
    np.testing.assert_allclose(w[w != 0], signed[w != 0], rtol=1e-5)


def test_neuron_signs():
  signs = np.asarray(lsnn.neuron_signs(220, 0.75))
  np.testing.assert_array_equal(signs, [-1.0] * 54 + [1.0] * 166)
  shuffled = np.asarray(
    lsnn.neuron_signs(80, 0.75, shuffle_key=jax.random.key(0))
  )
  assert np.sum(shuffled > 0) == 61 and np.sum(shuffled < 0) == 19
  assert not np.array_equal(shuffled, np.sort(shuffled))


def test_exp_convolve_matches_loop():
  x = np.random.default_rng(0).normal(size=(2, 50, 3)).astype(np.float32)
  decay = np.exp(-1.0 / 20.0)
  expected = np.zeros_like(x, np.float64)
  a = np.zeros((2, 3))
  for t in range(50):
    a = decay * a + (1 - decay) * x[:, t]
    expected[:, t] = a
  exp_convolve = jax.jit(lsnn.exp_convolve, static_argnums=2)
  np.testing.assert_allclose(
    exp_convolve(jnp.asarray(x), decay, 1), expected, rtol=1e-5, atol=1e-6
  )
  time_first = exp_convolve(jnp.asarray(x.transpose(1, 0, 2)), decay, 0)
  np.testing.assert_allclose(
    time_first, expected.transpose(1, 0, 2), rtol=1e-5, atol=1e-6
  )


def test_firing_rate_loss_hand_value():
  # Rates over batch and time: neuron 0: 2/4 = 0.5, neuron 1: 1/4 = 0.25.
  z = jnp.array([[[1.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
  loss = lsnn.firing_rate_loss(z, 0.25)
  np.testing.assert_allclose(loss, 0.25**2, rtol=1e-6)
  np.testing.assert_allclose(
    lsnn.firing_rate_loss(z, 0.25, dt=0.5), 0.75**2 + 0.25**2, rtol=1e-6
  )
