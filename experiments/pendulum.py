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
state. "accuracy" is the fraction of forecast angles within 0.1 rad of the
truth ("baseline_accuracy" the same for the baseline).

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
import optax
from matplotlib.figure import Figure

import plstm
from experiments import freq_task

TOLERANCE = 0.1  # rad
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


def sample(config, key: jax.Array) -> dict:
  """One batch: x [B, T + 1, 4], T = config.data.seq_len transitions."""
  d = config.data
  data = (
    d.dt,
    d.substeps,
    d.max_angle,
    d.max_speed,
    d.g,
    tuple(d.masses),
    tuple(d.lengths),
  )
  return _sample(key, d.batch_size, d.seq_len, data)


def train_batch(config, step: int) -> dict:
  """The training batch of `step`, a pure function of (seed, step)."""
  return sample(config, freq_task.train_key(config, step))


def eval_batches(config, epoch: int) -> list[dict]:
  """Fresh validation trajectories for `epoch`."""
  return [sample(config, k) for k in freq_task.eval_keys(config, epoch)]


def make_optimizer(config) -> optax.GradientTransformation:
  """`config.optimizer` (`plstm.optimizers.default_config`) as optax."""
  return plstm.optimizers.make(config.optimizer)


def _cells(config) -> list:
  return [
    plstm.LSTM(h, peepholes=config.model.peepholes) for h in config.model.hidden
  ]


def init_params(config, key: jax.Array) -> dict:
  """Params {"rnn": one per layer, "head": {"w" [H, 4], "b" [4]}}."""
  d = config.data
  if not 1 <= d.horizon <= d.seq_len:
    raise ValueError(
      f"config.data.horizon must be in [1, seq_len = {d.seq_len}], got "
      f"{d.horizon}."
    )
  k_rnn, k_head = jax.random.split(key)
  return {
    "rnn": plstm.init_stack(_cells(config), k_rnn, 4),
    "head": {
      "w": jax.nn.initializers.lecun_normal()(
        k_head, (config.model.hidden[-1], 4), jnp.float32
      ),
      "b": jnp.zeros((4,), jnp.float32),
    },
  }


def _next(params: dict, x, h):
  """The forecast x_t + W h_t + b of the next state."""
  return x + h @ params["head"]["w"] + params["head"]["b"]


def one_step(config, params: dict, x):
  """Teacher-forced forecasts of x[:, 1:] from x[:, :-1]: [B, T, 4]."""
  _, h = plstm.scan(_cells(config), params["rnn"], x[:, :-1])
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


def forecast(config, params: dict, context, horizon: int):
  """Closed-loop forecast of the `horizon` states after `context` [B, C, 4].

  The network reads the context, then its own predictions: [B, horizon, 4].
  """
  cells = tuple(_cells(config))
  carry, h = plstm.scan(cells, params["rnn"], context)
  first = _next(params, context[:, -1], h[:, -1])
  steps = jnp.zeros((context.shape[0], horizon - 1, 0), context.dtype)
  _, rest = plstm.scan(_ClosedLoop(cells), params, steps, carry=(carry, first))
  return jnp.concatenate([first[:, None], rest], axis=1)


def constant_velocity(config, context, horizon: int):
  """The baseline: angles move on with the last omega: [B, horizon, 4]."""
  last = context[:, -1]
  k = jnp.arange(1, horizon + 1, dtype=last.dtype)[None, :, None]
  omega = last[:, None, [1, 1, 3, 3]] * jnp.array([1.0, 0.0, 1.0, 0.0])
  return last[:, None] + k * config.data.dt * omega


def loss_fn(
  config, params: dict, batch: dict, rng: jax.Array, *, training: bool
):
  """Teacher-forced MSE, and the closed-loop forecast metrics."""
  del rng, training  # The model draws no randomness.
  x = batch["x"]
  loss = jnp.mean((one_step(config, params, x) - x[:, 1:]) ** 2)
  horizon = config.data.horizon
  context, future = x[:, :-horizon], x[:, -horizon:]
  predicted = forecast(config, params, context, horizon)
  baseline = constant_velocity(config, context, horizon)
  metrics = {"loss": loss}
  for name, guess in (("forecast", predicted), ("baseline", baseline)):
    error = (guess - future)[..., ANGLES]
    metrics[f"{name}_mse"] = jnp.mean(error**2)
    hits = jnp.mean(jnp.abs(error) < TOLERANCE)
    metrics["accuracy" if name == "forecast" else "baseline_accuracy"] = hits
  return loss, metrics


def plot(config, params: dict, workdir) -> None:
  """`pendulum_forecast.png`: one validation trajectory, its closed-loop
  forecast and the constant-velocity baseline, for all four variables."""
  x = eval_batches(config, 0)[0]["x"][:1]
  horizon = config.data.horizon
  context = x[:, :-horizon]
  run = jax.jit(functools.partial(forecast, config), static_argnums=2)
  predicted = np.asarray(run(params, context, horizon))[0]
  baseline = np.asarray(constant_velocity(config, context, horizon))[0]
  x = np.asarray(x[0])
  t = config.data.dt * np.arange(x.shape[0])
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
  fig.savefig(workdir / "pendulum_forecast.png", dpi=120)
