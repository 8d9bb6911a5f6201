r"""Sequential MNIST, pixel by pixel: Phased LSTM vs LSTM, 32 units.

The MNIST experiment of the Phased LSTM TensorFlow repository (Philippe
Remy's tensorflow-phased-lstm, `mnist_phased_lstm.py`, README figure
`fig/mnist_acc.png`): 784 steps of one pixel, t = pixel index, 32 units,
batch 256, Adam 1e-3. Its training-accuracy curves after 2000 steps: Phased
LSTM about 0.9, LSTM 0.1-0.45. Data and model: `experiments/smnist.py`.

Data: `config.data.dir` holds the MNIST IDX files. It defaults to the
offline copy `../shared/data/mnist` (relative to the repo root, where the
commands run): the full 10,000-image test set and only the first 22,699
training images, so every number below is "MNIST, first 22,699 training
images". `--config.data.dir=''` loads the full MNIST with tensorflow-datasets
(not installed by default).

Small (the default; CPU-sized): as the paper variant but with batches of 64,
not 256 (the same 2000 steps, a quarter of the images), evaluated every 200
steps on a fixed random 2,048 of the test images:
  python -m plstm.train --config=configs/smnist.py --workdir=/tmp/smnist
  python -m plstm.train --config=configs/smnist.py --workdir=/tmp/smnist_lstm \
      --config.model.name=lstm
Measured (seed 0 of an earlier build, whose batches came from other
streams; MNIST, first 22,699 training images; accuracy on the fixed 2,048
test images; wall times in docs/results.md):
  Phased LSTM 83.3% after 2000 steps (46.4, 64.7, 71.0, 73.6, 76.4, 79.1,
    79.8, 81.1, 82.4, 83.3% every 200 steps; training accuracy about 0.82
    at the end);
  LSTM peaks at 27.8% (step 400), then collapses to chance (10-13% from
    step 800 on; training accuracy 0.09-0.34).

Paper setting (2000 steps of batch 256; the full test set every 200 steps):
  python -m plstm.train --config=configs/smnist.py:paper \
      --workdir=/tmp/smnist_paper [--config.model.name=lstm]
Expected: Phased LSTM >= 85% test accuracy after 2000 steps (the original's
training curve reaches about 0.9; `config.target` = 0.85, the fraction of
test images classified right); the LSTM far lower (0.1-0.45 there). The
docs/results.md records a run of an earlier build.

Smoke (seconds; run by the tests; no MNIST needed): a tiny deterministic
digit-like stand-in (`mnist_data.synthetic`), 8 units, batch 8, 6 steps:
  python -m plstm.train --config=configs/smnist.py:smoke --workdir=/tmp/s
"""

import math

import ml_collections

from configs import common
from plstm.train import optimizers


def get_config(arg: str = "small") -> ml_collections.ConfigDict:
  """`small` (CPU, the default), `paper` (the original) or `smoke`."""
  common.check_variant(__file__, arg)
  config = common.base("experiments.smnist")

  config.model = ml_collections.ConfigDict()
  config.model.name = "plstm"  # plstm | lstm
  config.model.hidden = 32
  config.model.init_state_std = 0.1  # c, h ~ N(0, 0.1^2); 0 for zeros
  # Phased LSTM (the custom cell's defaults).
  config.model.alpha = 1e-3
  config.model.r_on = 0.05
  config.model.tau_range = (1.0, math.exp(6.0))  # tau ~ exp(U(0, 6))
  # LSTM (TF BasicLSTMCell).
  config.model.forget_bias = 1.0
  config.model.dtype = common.DTYPE

  config.data = ml_collections.ConfigDict()
  config.data.dir = "../shared/data/mnist"  # '' for tensorflow-datasets
  config.data.synthetic = False  # the digit-like stand-in (with dir '')
  config.data.batch_size = 64
  config.data.eval_size = 2048  # a fixed random subset; 0 for all 10,000

  # The original does not clip.
  config.optimizer = optimizers.default_config(
    "adam", learning_rate=1e-3, clip="none"
  )

  config.steps_per_epoch = 200  # an evaluation every 200 steps
  config.num_epochs = 10
  config.target = 0.85
  config.log_every = 20
  config.checkpoint_every = 200
  config.keep_checkpoints = 2

  if arg == "paper":
    config.data.batch_size = 256
    config.data.eval_size = 0
  elif arg == "smoke":
    config.model.hidden = 8
    config.data.dir = ""
    config.data.synthetic = True
    config.data.batch_size = 8
    config.data.eval_size = 12  # not a whole batch: exercises the padding
    common.smoke(config)
  return config
