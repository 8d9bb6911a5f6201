"""Double-pendulum forecasting (experiments/pendulum.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import pendulum as pendulum_config
from experiments import pendulum

CONSTANTS = {"m1": 1.3, "m2": 0.7, "l1": 0.9, "l2": 1.2, "g": 9.8}


def _lagrange(x, m1, m2, l1, l2, g):
  """dx/dt from the Euler-Lagrange equations, solved as a 2x2 system."""
  th1, w1, th2, w2 = x
  d = th1 - th2
  mass = np.array([[(m1 + m2) * l1, m2 * l2 * np.cos(d)], [l1 * np.cos(d), l2]])
  force = -np.array(
    [
      m2 * l2 * w2**2 * np.sin(d) + (m1 + m2) * g * np.sin(th1),
      -l1 * w1**2 * np.sin(d) + g * np.sin(th2),
    ]
  )
  a1, a2 = np.linalg.solve(mass, force)
  return np.array([w1, a1, w2, a2])


def _rk4_numpy(x, num_steps, h, **constants):
  f = functools.partial(_lagrange, **constants)
  out = [x]
  for _ in range(num_steps):
    k1 = f(x)
    k2 = f(x + h / 2 * k1)
    k3 = f(x + h / 2 * k2)
    k4 = f(x + h * k3)
    x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    out.append(x)
  return np.array(out)


def _states(n, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform([-2, -3, -2, -3], [2, 3, 2, 3], (n, 4))


def test_readme_equations_match_a_lagrangian_derivation():
  x = _states(64)
  expected = np.array([_lagrange(s, **CONSTANTS) for s in x])
  got = pendulum.derivatives(jnp.asarray(x, jnp.float32), **CONSTANTS)
  np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)


def test_energy_by_hand():
  c = CONSTANTS
  hanging = jnp.zeros(4)
  np.testing.assert_allclose(
    pendulum.energy(hanging, **c),
    -(c["m1"] + c["m2"]) * c["g"] * c["l1"] - c["m2"] * c["g"] * c["l2"],
    rtol=1e-6,
  )
  # Both arms horizontal, the lower one spinning: only its kinetic energy.
  x = jnp.array([np.pi / 2, 0.0, np.pi / 2, 2.0])
  np.testing.assert_allclose(
    pendulum.energy(x, **c), 0.5 * c["m2"] * c["l2"] ** 2 * 4.0, atol=1e-5
  )


def test_rk4_conserves_energy_and_matches_float64():
  x0 = _states(16, seed=1) * 0.5
  xs = pendulum.simulate(
    jnp.asarray(x0, jnp.float32), 200, 0.05, 10, **CONSTANTS
  )
  assert xs.shape == (16, 201, 4)
  e = np.asarray(pendulum.energy(xs, **CONSTANTS))
  assert np.max(np.abs(e - e[:, :1])) < 1e-4 * np.max(np.abs(e))
  # One coarse step per observation drifts visibly: the test can fail.
  coarse = pendulum.simulate(
    jnp.asarray(x0, jnp.float32), 200, 0.05, 1, **CONSTANTS
  )
  e_coarse = np.asarray(pendulum.energy(coarse, **CONSTANTS))
  assert np.max(np.abs(e_coarse - e_coarse[:, :1])) > 1e-3
  # A short stretch (before chaos amplifies rounding) against NumPy float64.
  expected = _rk4_numpy(x0[0], 20 * 10, 0.005, **CONSTANTS)[::10]
  np.testing.assert_allclose(xs[0, :21], expected, atol=1e-4)


def test_batches_start_in_range_and_are_a_function_of_key_and_step():
  config = pendulum_config.get_config("smoke")
  d = config.data
  task = pendulum.make_task(config)
  key = jax.random.key(0)
  x = np.asarray(task.train_batch(key, 3)["x"])
  assert x.shape == (d.batch_size, d.seq_len + 1, 4) and x.dtype == np.float32
  assert np.all(np.abs(x[:, 0, [0, 2]]) <= d.max_angle)
  assert np.all(np.abs(x[:, 0, [1, 3]]) <= d.max_speed)
  np.testing.assert_array_equal(x, task.train_batch(key, 3)["x"])
  assert not np.array_equal(x, task.train_batch(key, 4)["x"])
  other = jax.random.key(1)
  assert not np.array_equal(x, task.train_batch(other, 3)["x"])
  evals = task.eval_batches(key, 1)
  assert len(evals) == d.eval_size // d.batch_size


def test_constant_velocity_by_hand():
  config = pendulum_config.get_config("smoke")
  context = jnp.array([[[9.0, 9.0, 9.0, 9.0], [0.1, 2.0, -0.2, -1.0]]])
  got = pendulum.constant_velocity(config.data.dt, context, 3)
  dt = config.data.dt
  expected = [
    [0.1 + k * dt * 2.0, 2.0, -0.2 - k * dt * 1.0, -1.0] for k in (1, 2, 3)
  ]
  np.testing.assert_allclose(got[0], expected, rtol=1e-6)


def _setup(seed=0):
  """(config, task, cells, params, batch) of the smoke config."""
  config = pendulum_config.get_config("smoke")
  task = pendulum.make_task(config)
  key = jax.random.key(seed)
  params = task.init(key, key)
  batch = task.train_batch(jax.random.key(0), 0)
  cells = pendulum.make_cells(config.model)
  return config, task, cells, params, batch


def test_forecast_starts_as_one_step_and_is_causal():
  config, _, cells, params, batch = _setup()
  x, h = batch["x"], config.data.horizon
  context = x[:, :-h]
  predicted = pendulum.forecast(cells, params, context, h)
  assert predicted.shape == (x.shape[0], h, 4)
  teacher = pendulum.one_step(cells, params, x)
  np.testing.assert_allclose(predicted[:, 0], teacher[:, -h], atol=1e-5)
  # Later steps feed back the model's own guesses, not the truth.
  assert np.abs(np.asarray(predicted[:, 1] - teacher[:, 1 - h])).max() > 1e-4
  moved = x.at[:, -h:].add(1.0)
  np.testing.assert_array_equal(
    predicted, pendulum.forecast(cells, params, moved[:, :-h], h)
  )


@pytest.mark.parametrize("horizon", [1, 3])
def test_forecast_feeds_back_each_prediction(horizon):
  """Against a Python loop that steps the stack on its last forecast."""
  _, _, cells, params, batch = _setup()
  context = batch["x"][:, :-horizon]
  carries = [c.initial_carry(context.shape[0]) for c in cells]
  x, expected = None, []
  for t in range(context.shape[1] + horizon - 1):
    x_in = context[:, t] if t < context.shape[1] else x
    y = x_in
    for i, (cell, p) in enumerate(zip(cells, params["rnn"], strict=True)):
      carries[i], y = cell.step(p, carries[i], y)
    x = pendulum._next(params, x_in, y)
    if t >= context.shape[1] - 1:
      expected.append(x)
  predicted = pendulum.forecast(cells, params, context, horizon)
  np.testing.assert_allclose(
    predicted, np.stack(expected, axis=1), rtol=1e-5, atol=1e-5
  )


def test_zero_head_predicts_no_change():
  """With W = 0, b = 0 the forecast is x_t: the loss is mean (dx)^2."""
  config, task, _, params, batch = _setup()
  params["head"] = jax.tree.map(jnp.zeros_like, params["head"])
  x, h = np.asarray(batch["x"]), config.data.horizon
  loss, metrics = task.loss(params, batch, jax.random.key(0), training=True)
  np.testing.assert_allclose(loss, np.mean((x[:, 1:] - x[:, :-1]) ** 2), 1e-5)
  error = (x[:, -h - 1 : -h] - x[:, -h:])[..., [0, 2]]
  np.testing.assert_allclose(metrics["forecast_mse"], np.mean(error**2), 1e-5)
  assert set(metrics) == {"loss", "forecast_mse", "baseline_mse"}
  assert all(np.shape(v) == () for v in metrics.values())


def test_plot_writes_the_forecast_figure(tmp_path):
  _, task, _, params, _ = _setup()
  task.plot(params, tmp_path)
  assert (tmp_path / "pendulum_forecast.png").stat().st_size > 10_000


@pytest.mark.parametrize("horizon", [0, 13])
def test_bad_horizon_is_reported(horizon):
  config = pendulum_config.get_config("smoke")
  config.data.horizon = horizon
  with pytest.raises(ValueError, match="config.data.horizon"):
    pendulum.make_task(config)


def test_paper_variant_is_the_readme_model_with_adadelta():
  config = pendulum_config.get_config("paper")
  assert tuple(config.model.hidden) == (20, 20)
  assert config.optimizer.name == "adadelta"
  assert config.optimizer.clip == "tensor" and config.optimizer.clip_value == 5
