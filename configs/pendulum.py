r"""Double-pendulum forecasting, theano_lstm's README example (seeds-spec §3.7).

A stacked LSTM [20, 20] predicts the next state (theta1, omega1, theta2,
omega2) of a double pendulum (M1 = M2 = 1, L1 = L2 = 1, G = 9.8, dt =
0.05 s, RK4 at dt / 10) from its past, trained with teacher forcing on 5 s
trajectories from theta, omega ~ U(-1.5, 1.5); it is scored by a
closed-loop forecast of the last 40 states (2 s) against the
constant-velocity extrapolation. Data, model and departures:
`experiments/pendulum.py`.

Headline metric: `forecast_mse`, the forecast angles' MSE [rad^2] over the
2 s (lower is better), beside the baseline's (`baseline_mse`). Target:
0.01 rad^2, an RMS angle error of 0.1 rad.

Small (the default; Adam 3e-3 after clipping the global norm to 1, 8000
batches of 32 trajectories):
  python -m plstm.train --config=configs/pendulum.py --workdir=/tmp/pendulum
Measured (seed 0, 2026-12-04): after 8000 steps the 2 s forecast's angle
MSE is 0.0031 rad^2 (best 0.0020; the target first reached at step 1200)
against the baseline's 5.95; one-step MSE 4e-5. The forecast MSE jumps
between evaluations (0.002 to 0.14 after step 1000), as a few chaotic
trajectories run away. Expected: a forecast MSE at least 10x below the
baseline's. `pendulum_forecast.png` shows one trajectory.

Paper setting (the README's model and AdaDelta with theano_lstm's defaults,
rho 0.95, eps 1e-6, each tensor's gradient clipped to norm 5; the README
gives no data, batch or step counts, so those are the small variant's):
  python -m plstm.train --config=configs/pendulum.py:paper --workdir=/tmp/p
Measured (as above): forecast MSE 0.030 (best 0.022, the target not
reached) against 5.95; one-step MSE 9e-4.

Smoke (seconds; run by the tests):
  python -m plstm.train --config=configs/pendulum.py:smoke --workdir=/tmp/s
"""

import ml_collections

from configs import common
from plstm.train import optimizers


def get_config(arg: str = "small") -> ml_collections.ConfigDict:
  """`small` (the default), `paper` (AdaDelta) or `smoke` (seconds)."""
  common.check_variant(__file__, arg)
  config = common.base(
    "experiments.pendulum", metric="forecast_mse", mode="min"
  )

  config.model = ml_collections.ConfigDict()
  config.model.name = "lstm"
  config.model.hidden = (20, 20)  # the README's StackedCells layers
  config.model.peepholes = False  # theano_lstm's LSTM has none

  config.data = ml_collections.ConfigDict()
  config.data.batch_size = 32
  config.data.seq_len = 100  # T transitions: 5 s of trajectory
  config.data.horizon = 40  # closed-loop forecast of the last 2 s
  config.data.dt = 0.05  # [s] between observations
  config.data.substeps = 10  # RK4 steps per observation
  config.data.max_angle = 1.5  # theta(0) ~ U(-1.5, 1.5) rad
  config.data.max_speed = 1.5  # omega(0) ~ U(-1.5, 1.5) rad/s
  config.data.g = 9.8
  config.data.masses = (1.0, 1.0)
  config.data.lengths = (1.0, 1.0)
  config.data.eval_size = 256  # fresh each epoch

  config.optimizer = optimizers.default_config("adam")
  config.optimizer.learning_rate = 3e-3
  config.optimizer.clip = "global"
  config.optimizer.clip_value = 1.0

  config.steps_per_epoch = 200
  config.num_epochs = 40
  config.target = 0.01  # forecast_mse [rad^2]: an RMS error of 0.1 rad
  config.log_every = 50
  config.checkpoint_every = 1000
  config.keep_checkpoints = 3

  if arg == "paper":
    config.optimizer = optimizers.default_config("adadelta")
  elif arg == "smoke":
    config.model.hidden = (8, 8)
    config.data.batch_size = 8
    config.data.seq_len = 12
    config.data.horizon = 4
    config.data.substeps = 2
    config.data.eval_size = 16
    common.smoke(config)
  return config
