r"""Double-pendulum forecasting with a stacked LSTM (theano_lstm's README).

Data: trajectories of the frictionless double pendulum, state
x = (theta1, omega1, theta2, omega2) in the README's order, with
Delta = theta2 - theta1 and the README's (matplotlib's) equations of motion:

  d theta1 = omega1,   d theta2 = omega2,
  den1 = (M1 + M2) L1 - M2 L1 cos^2 Delta,   den2 = (L2 / L1) den1,
  d omega1 = (M2 L1 omega1^2 sin Delta cos Delta + M2 G sin theta2 cos Delta
              + M2 L2 omega2^2 sin Delta - (M1 + M2) G sin theta1) / den1,
  d omega2 = (-M2 L2 omega2^2 sin Delta cos Delta
              + (M1 + M2) G sin theta1 cos Delta
              - (M1 + M2) L1 omega1^2 sin Delta - (M1 + M2) G sin theta2)
             / den2,

with M1 = M2 = 1 kg, L1 = L2 = 1 m, G = 9.8 m/s^2 and observations every
dt = 0.05 s (matplotlib's example, which the README's equations match).
Each trajectory starts at theta ~ U(-max_angle, max_angle),
omega ~ U(-max_speed, max_speed) and is integrated with classical RK4 at
dt / substeps, so its energy (`energy`) is conserved to float32 precision.

Model: LSTM [20, 20] -> Dense(4) gives the change of state, so the
one-step forecast is x_hat_{t+1} = x_t + W h_t + b. Training is teacher
forced: the loss is the MSE of x_hat_{t+1} against x_{t+1} over all four
variables and T = `seq_len` transitions.

Metrics: besides the one-step "loss", a closed-loop forecast of the last
`horizon` states: the network reads the first T + 1 - horizon states, then
feeds its own predictions back for `horizon` steps. "forecast_mse" is its
MSE over the two angles (the README's observed variables), against
"baseline_mse", the constant-velocity extrapolation
theta(t_0 + k dt) = theta(t_0) + k dt omega(t_0) from the last observed
state. "forecast_mse" is the headline metric (lower is better).

Batches: training trajectories are drawn from the data key folded with the
step, validation ones (ceil(eval_size / batch_size) batches, fresh each
epoch) from the eval key folded with the epoch. The figure
(`pendulum_forecast.png`) shows one trajectory drawn from a fixed key
(`FIGURE_KEY`), the same in every run.

Notes:
  The README does not forecast: its network is a controller whose output u
  is added to d omega2 inside a 10-step differentiable Euler rollout, with
  a loss on the final angles. That example is pseudo-code (undefined
  `stacked_rnn`, `dynamics`, M1, ..., G, dt; integer observations; a
  2-way softmax added to a scalar), so here the same model and equations
  serve the forecasting task the README names. Its first LSTM layer has a
  linear input modulation (in_gate2); plstm.LSTM uses tanh there. Its
  Euler step is replaced by RK4, which conserves energy. Weights are
  plstm.LSTM's (Flax's) initialisers and the head is a Flax Dense (LeCun
  normal kernel, zero bias).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import plstm
from plstm.train.task import Task, fresh_batches

FIGURE_KEY = 0  # the key of the figure's trajectory
ANGLES = (0, 2)  # theta1, theta2 in the state (theta1, omega1, theta2, omega2)
NAMES = ("theta1", "omega1", "theta2", "omega2")


def derivatives(x, m1=1.0, m2=1.0, l1=1.0, l2=1.0, g=9.8):
  """dx/dt of the README's equations: x [..., 4] -> [..., 4]."""
  th1, w1, th2, w2 = (x[..., i] for i in range(4))
  delta = th2 - th1
  sin, cos = jnp.sin(delta), jnp.cos(delta)
  den1 = (m1 + m2) * l1 - m2 * l1 * cos * cos
  dw1 = (
    m2 * l1 * w1 * w1 * sin * cos
    + m2 * g * jnp.sin(th2) * cos
    + m2 * l2 * w2 * w2 * sin
    - (m1 + m2) * g * jnp.sin(th1)
  ) / den1
  den2 = (l2 / l1) * den1
  dw2 = (
    -m2 * l2 * w2 * w2 * sin * cos
    + (m1 + m2) * g * jnp.sin(th1) * cos
    - (m1 + m2) * l1 * w1 * w1 * sin
    - (m1 + m2) * g * jnp.sin(th2)
  ) / den2
  return jnp.stack([w1, dw1, w2, dw2], axis=-1)


def energy(x, m1=1.0, m2=1.0, l1=1.0, l2=1.0, g=9.8):
  r"""Total energy of state(s) x [..., 4] (zero with both arms horizontal).

  .. math::
    E = \tfrac12 (m_1 + m_2) l_1^2 \omega_1^2 + \tfrac12 m_2 l_2^2 \omega_2^2
      + m_2 l_1 l_2 \omega_1 \omega_2 \cos(\theta_1 - \theta_2)
      - (m_1 + m_2) g l_1 \cos\theta_1 - m_2 g l_2 \cos\theta_2
  """
  th1, w1, th2, w2 = (x[..., i] for i in range(4))
  kinetic = (
    0.5 * (m1 + m2) * l1**2 * w1**2
    + 0.5 * m2 * l2**2 * w2**2
    + m2 * l1 * l2 * w1 * w2 * jnp.cos(th1 - th2)
  )
  return (
    kinetic - (m1 + m2) * g * l1 * jnp.cos(th1) - m2 * g * l2 * jnp.cos(th2)
  )


def simulate(x0, num_steps: int, dt: float, substeps: int, **constants):
  """States x0 [B, 4] and the `num_steps` after it, every dt: [B, N + 1, 4].

  Classical RK4 with step h = dt / substeps between observations.
  """
  f = functools.partial(derivatives, **constants)
  h = dt / substeps

  def rk4(x, _):
    k1 = f(x)
    k2 = f(x + 0.5 * h * k1)
    k3 = f(x + 0.5 * h * k2)
    k4 = f(x + h * k3)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

  def observe(x, _):
    x, _ = jax.lax.scan(rk4, x, length=substeps)
    return x, x

  _, xs = jax.lax.scan(observe, x0, length=num_steps)
  return jnp.concatenate([x0[:, None], jnp.swapaxes(xs, 0, 1)], axis=1)


@functools.partial(jax.jit, static_argnames=("batch_size", "num_steps", "data"))
def _sample(key, batch_size: int, num_steps: int, data: tuple):
  """One batch: x [B, T + 1, 4] of T = `num_steps` transitions; `data` is
  (dt, substeps, max_angle, max_speed, g, masses, lengths)."""
  dt, substeps, max_angle, max_speed, g, masses, lengths = data
  k_angle, k_speed = jax.random.split(key)
  theta = jax.random.uniform(
    k_angle, (batch_size, 2), minval=-max_angle, maxval=max_angle
  )
  omega = jax.random.uniform(
    k_speed, (batch_size, 2), minval=-max_speed, maxval=max_speed
  )
  x0 = jnp.stack([theta[:, 0], omega[:, 0], theta[:, 1], omega[:, 1]], -1)
  (m1, m2), (l1, l2) = masses, lengths
  x = simulate(x0, num_steps, dt, substeps, m1=m1, m2=m2, l1=l1, l2=l2, g=g)
  return {"x": x}


def make_cells(model) -> tuple:
  """The stack of `model` (a config's `model` block): one plstm.LSTM per
  entry of `model.hidden`."""
  return tuple(plstm.LSTM(h, peepholes=model.peepholes) for h in model.hidden)


def init_params(cells, key: jax.Array) -> dict:
  """Params {"rnn": one per layer, "head": {"w" [H, 4], "b" [4]}}."""
  k_rnn, k_head = jax.random.split(key)
  return {
    "rnn": plstm.init_stack(cells, k_rnn, 4),
    "head": {
      "w": jax.nn.initializers.lecun_normal()(
        k_head, (cells[-1].hidden_size, 4), jnp.float32
      ),
      "b": jnp.zeros((4,), jnp.float32),
    },
  }


def _next(params: dict, x, h):
  """The forecast x_t + W h_t + b of the next state."""
  return x + h @ params["head"]["w"] + params["head"]["b"]


def one_step(cells, params: dict, x):
  """Teacher-forced forecasts of x[:, 1:] from x[:, :-1]: [B, T, 4]."""
  _, h = plstm.scan(cells, params["rnn"], x[:, :-1])
  return _next(params, x[:, :-1], h)


@dataclasses.dataclass(frozen=True)
class _ClosedLoop:
  """The stack fed its own forecasts, as a cell of `plstm.scan`.

  Carry: (the layers' carries, the last forecast x [B, 4]). A step feeds x
  to the stack and outputs the next forecast; its input is a [B, 0]
  placeholder that only sets the number of steps.
  """

  cells: tuple

  def project(self, params: dict, inputs):
    return inputs

  def step(self, params: dict, carry, inputs, *, training: bool = False):
    del inputs
    carries, x = carry
    new_carries, y = [], x
    for cell, p, c in zip(self.cells, params["rnn"], carries, strict=True):
      c, y = cell.step(p, c, y, training=training)
      new_carries.append(c)
    x_next = _next(params, x, y)
    return (tuple(new_carries), x_next), x_next

  recur = step


def forecast(cells, params: dict, context, horizon: int):
  """Closed-loop forecast of the `horizon` states after `context` [B, C, 4].

  The network reads the context, then its own predictions: [B, horizon, 4].
  """
  cells = tuple(cells)
  carry, h = plstm.scan(cells, params["rnn"], context)
  first = _next(params, context[:, -1], h[:, -1])
  steps = jnp.zeros((context.shape[0], horizon - 1, 0), context.dtype)
  _, rest = plstm.scan(_ClosedLoop(cells), params, steps, carry=(carry, first))
  return jnp.concatenate([first[:, None], rest], axis=1)


def constant_velocity(dt: float, context, horizon: int):
  """The baseline: angles move on with the last omega, observations dt
  apart: [B, horizon, 4]."""
  last = context[:, -1]
  k = jnp.arange(1, horizon + 1, dtype=last.dtype)[None, :, None]
  omega = last[:, None, [1, 1, 3, 3]] * jnp.array([1.0, 0.0, 1.0, 0.0])
  return last[:, None] + k * dt * omega


def loss_fn(
  cells,
  dt: float,
  horizon: int,
  params: dict,
  batch: dict,
  key: jax.Array,
  *,
  training: bool,
):
  """Teacher-forced MSE, and {"loss", "forecast_mse", "baseline_mse"};
  `key` is unused (the model draws no randomness)."""
  del key, training
  x = batch["x"]
  loss = jnp.mean((one_step(cells, params, x) - x[:, 1:]) ** 2)
  context, future = x[:, :-horizon], x[:, -horizon:]
  predicted = forecast(cells, params, context, horizon)
  baseline = constant_velocity(dt, context, horizon)
  metrics = {"loss": loss}
  for name, guess in (("forecast", predicted), ("baseline", baseline)):
    error = (guess - future)[..., ANGLES]
    metrics[f"{name}_mse"] = jnp.mean(error**2)
  return loss, metrics


def plot_forecast(x, predicted, baseline, dt: float, path) -> None:
  """Draws trajectory x [T + 1, 4], its closed-loop forecast and the
  baseline [horizon, 4] of its last states, for all four variables."""
  horizon = predicted.shape[0]
  t = dt * np.arange(x.shape[0])
  t_future = t[-horizon:]
  fig = Figure(figsize=(8, 6))
  axes = fig.subplots(2, 2, sharex=True).T.ravel()
  for i, ax in enumerate(axes):
    ax.plot(t, x[:, i], color="k", lw=1, label="true")
    ax.plot(t_future, predicted[:, i], color="C0", label="LSTM forecast")
    ax.plot(t_future, baseline[:, i], color="C1", ls="--", label="const. vel.")
    ax.axvspan(t_future[0], t_future[-1], color="0.9")
    ax.set_ylabel(NAMES[i])
    ax.grid(alpha=0.3)
  axes[1].set_xlabel("time [s]")
  axes[3].set_xlabel("time [s]")
  axes[0].legend(fontsize=8)
  fig.suptitle("double pendulum: closed-loop forecast (shaded)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def make_task(config) -> Task:
  """Forecasting the double pendulum of `config.data` with the stack of
  `config.model`, trained by the optimiser of `config.optimizer`
  (`plstm.train.optimizers.default_config`)."""
  d = config.data
  if not 1 <= d.horizon <= d.seq_len:
    raise ValueError(
      f"config.data.horizon must be in [1, seq_len = {d.seq_len}], got "
      f"{d.horizon}."
    )
  cells = make_cells(config.model)
  draw = functools.partial(
    _sample,
    batch_size=d.batch_size,
    num_steps=d.seq_len,
    data=(
      d.dt,
      d.substeps,
      d.max_angle,
      d.max_speed,
      d.g,
      tuple(d.masses),
      tuple(d.lengths),
    ),
  )
  train_batch, eval_batches = fresh_batches(draw, d.eval_size, d.batch_size)

  def plot(params, workdir):
    """`pendulum_forecast.png`: the figure's trajectory, its closed-loop
    forecast and the constant-velocity baseline."""
    x = draw(jax.random.key(FIGURE_KEY))["x"][:1]
    context = x[:, : -d.horizon]
    run = jax.jit(functools.partial(forecast, cells), static_argnums=2)
    predicted = run(params, context, d.horizon)
    baseline = constant_velocity(d.dt, context, d.horizon)
    plot_forecast(
      np.asarray(x[0]),
      np.asarray(predicted[0]),
      np.asarray(baseline[0]),
      d.dt,
      workdir / "pendulum_forecast.png",
    )

  return Task(
    init=lambda key, _: init_params(cells, key),
    loss=functools.partial(loss_fn, cells, d.dt, d.horizon),
    train_batch=train_batch,
    eval_batches=eval_batches,
    plot=plot,
  )
