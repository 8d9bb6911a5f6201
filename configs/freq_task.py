r"""Frequency discrimination, Neil, Pfeiffer & Liu (NIPS 2016), task 1, Fig. 3.

Classify sines by period (class 1 iff 5 <= P <= 6 ms), sampled
asynchronously (`async`), every 1 ms (`regular`) or every 0.1 ms (`highres`).
Data: `experiments/freq_task.py`.

Small (the default; CPU-sized: Phased LSTM, async, 110 units, 30 epochs of
157 batches of 32):
  python -m plstm.train --config=configs/freq_task.py --workdir=/tmp/freq
Expected: >= 95% validation accuracy (docs/results.md has the measured
number and wall time on a 2-core CPU).

Paper setting (70 epochs; the paper's 5 seeds x 3 models x 3 conditions):
  python -m plstm.train --config=configs/freq_task.py:paper \
      --workdir=/tmp/freq_paper --config.model.name=bn_lstm \
      --config.data.condition=highres --config.seed=1
Expected at epoch 70 (regular / highres / async), from two sources that
differ in three cells:
  the paper's Fig. 3d, read off (approximate): Phased LSTM 99.0 / 99.5 /
    98.2, BN-LSTM 99.1 / 62 / 65.5, LSTM 99.0 / 51.7 / 63.2;
  the official notebook (exact, mean of 5 seeds): Phased LSTM 99.3 / 99.6 /
    97.9, BN-LSTM 98.9 / 62.4 / 74.3, LSTM 89.3 / 51.7 / 69.0.

Smoke (seconds; run by the tests):
  python -m plstm.train --config=configs/freq_task.py:smoke --workdir=/tmp/s

The study in docs/results.md (results/task1): every cell of the grid with 5
seeds packed, 17 epochs (the most that fit all nine in about 2.5 h on a 2-core
CPU; the 0.1 ms condition costs 10x the others):
  scripts/freq_task_sweep.sh /tmp/task1 paper 5 --config.num_epochs=17

The paper's grid (`get_sweep`: 3 conditions x 3 models), 5 seeds a run:
  python scripts/sweep.py --config=configs/freq_task.py:paper \
      --root=/tmp/task1 --run --config.seed=1 --config.num_seeds=5
"""

import math

import ml_collections

from configs import common
from plstm.train import optimizers


def get_config(arg: str = "small") -> ml_collections.ConfigDict:
  """`small` (CPU, the default), `paper` (70 epochs) or `smoke` (seconds)."""
  common.check_variant(__file__, arg)
  config = common.base("experiments.freq_task")

  config.model = common.phased_lstm_model(
    name="plstm",  # plstm | lstm | bn_lstm
    hidden=110,
    tau_range=(math.e, math.e**3),  # tau ~ exp(U(1, 3))
    shift_range=(0.0, 100.0),
  )

  config.data = ml_collections.ConfigDict()
  config.data.condition = "async"  # async | regular | highres
  config.data.batch_size = 32
  config.data.eval_size = 500  # fresh each epoch: ceil(500 / 32) batches

  # Global-norm clip; the official code clips backprop messages at +-10.
  config.optimizer = optimizers.default_config(
    "adam", learning_rate=1e-3, clip="global", clip_value=10.0
  )

  config.steps_per_epoch = 157  # ceil(5000 / 32) fresh batches
  config.num_epochs = 30
  config.target = 0.95
  config.log_every = 50
  config.checkpoint_every = 157 * 5
  config.keep_checkpoints = 3

  if arg == "paper":
    config.num_epochs = 70
  elif arg == "smoke":
    config.model.hidden = 8
    config.data.batch_size = 8
    config.data.eval_size = 16
    common.smoke(config)
  return config


def get_sweep() -> list[dict]:
  """Task 1's grid: every condition with every model (scripts/sweep.py)."""
  return [
    {"data.condition": condition, "model.name": model}
    for condition in ("regular", "highres", "async")
    for model in ("plstm", "bn_lstm", "lstm")
  ]
