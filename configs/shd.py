r"""Spiking Heidelberg Digits (and Spiking Speech Commands): an LSNN with
learned synaptic delays, against an adaptive-LIF network without delays.

The datasets: Cramer et al., IEEE TNNLS 2020 (arXiv:1910.07407); 700 input
channels, about 1 s a word; SHD 20 classes, SSC 35. Data and model:
`experiments/shd.py`, `experiments/common/heidelberg.py`,
`experiments/common/lsnn.py`. Each sample is binned to 100 steps of 10 ms
(spikes after 1 s dropped); one step of the network is one bin, so dt = 1
and tau, tau_a and the delays count bins (`model.step_ms` = 10 turns rates
into Hz).

Network (our choice, not tuned on the data, which is not on this
machine): 128 LIF + 128 ALIF neurons (R = 256), dense (no DEEP R),
tau = 2 bins (20 ms), tau_a = 20 bins (200 ms), beta = 1.8, thr = 0.1,
synaptic delays of 0-24 bins (up to 240 ms) learned from integer starts,
their updates 10x the weights' (`model.delay_lr_scale`); readout filter
tau_out = 2 bins, the scores its mean over the word; Adam 1e-3, batch 256,
firing-rate regulariser 0.1 towards 10 Hz.

Expected accuracies on SHD's test set, from the literature (recalled, not
checked against the papers here): about 95% with learned delays
(Hammouamri, Khalfaoui-Hassani & Masquelier, ICLR 2024, DCLS), about
93.5% for adaptive LIF networks trained with EventProp, about 71% for a
plain recurrent LIF network (Cramer et al. 2020). Nothing has been measured
here: the data is not on this machine.

Data: `--config.data.dir=DIR`, a directory holding shd_train.h5 and
shd_test.h5 (for SSC ssc_train.h5, ssc_valid.h5, ssc_test.h5; unpacked),
or `--config.data.dir=''` (the default) for tonic to download them into
`config.data.cache` (`pip install tonic`).

Small (CPU-sized: 64 neurons, 700 channels pooled by 5, 4 passes):
  python -m plstm.train --config=configs/shd.py --workdir=/tmp/shd \
      --config.data.dir=DIR
Paper-sized (GPU; 100 passes over SHD's training split):
  python -m plstm.train --config=configs/shd.py:paper --workdir=/tmp/shd_p \
      --config.data.dir=DIR
The adaptive-LIF baseline, 256 ALIF neurons without delays:
  ... --config.model.n_regular=0 --config.model.n_adaptive=256 \
      --config.model.learn_delays=False --config.model.n_delay=1
(or only the last two flags: the same LSNN without delays).
SSC: `--config.data.dataset=ssc --config.data.eval_split=valid` (35
classes; evaluate on `test` at the end with `--config.data.eval_split=test`).

Smoke (seconds; the tests run it on a small file they write in the
dataset's layout): `configs/shd.py:smoke --config.data.dir=DIR`.
"""

import ml_collections

from configs import common
from plstm.train import optimizers


def get_config(arg: str = "small") -> ml_collections.ConfigDict:
  """`small` (CPU, the default), `paper` (GPU-sized) or `smoke`."""
  common.check_variant(__file__, arg)
  config = common.base("experiments.shd")

  config.model = ml_collections.ConfigDict()
  config.model.name = "lsnn"
  config.model.n_in = 700  # 700 / data.channel_pool
  config.model.n_regular = 128  # LIF neurons (beta = 0)
  config.model.n_adaptive = 128  # ALIF neurons
  config.model.tau = 2.0  # membrane time constant [bins]
  config.model.thr = 0.1
  config.model.dt = 1.0  # one bin
  config.model.step_ms = 10.0  # a bin's length, for rates in Hz
  config.model.n_refractory = 0
  config.model.n_delay = 25  # delays 0..24 bins
  config.model.learn_delays = True
  config.model.delay_lr_scale = 10.0  # delays' updates / weights'
  config.model.tau_a = 20.0  # adaptation time constant [bins]
  config.model.beta = 1.8
  config.model.dampening_factor = 0.3
  config.model.tau_out = 2.0  # readout filter [bins]
  config.model.reg = 0.1  # firing-rate regulariser coefficient
  config.model.reg_rate = 10.0  # its target rate [Hz]
  config.model.dtype = common.DTYPE

  config.rewiring = ml_collections.ConfigDict()
  config.rewiring.connectivity = 1.0  # dense; in (0, 1): DEEP R
  config.rewiring.l1 = 1e-2
  config.rewiring.temperature = 0.0
  config.rewiring.neuron_sign = False
  config.rewiring.proportion_excitatory = 0.75

  config.data = ml_collections.ConfigDict()
  config.data.dataset = "shd"  # shd | ssc
  config.data.dir = ""  # the HDF5 files' directory; '' to download (tonic)
  config.data.cache = "data/heidelberg"  # tonic's download directory
  config.data.n_bins = 100
  config.data.bin_ms = 10.0
  config.data.channel_pool = 1  # channels summed in groups of this many
  config.data.batch_size = 256
  config.data.eval_split = "test"  # ssc: valid, then test
  config.data.eval_size = 0  # 0: the whole split

  config.optimizer = optimizers.default_config(
    "adam", learning_rate=1e-3, clip="none"
  )

  config.steps_per_epoch = 31  # one pass over SHD's training split
  config.num_epochs = 100
  config.target = 0.9
  config.log_every = 10
  config.checkpoint_every = 31
  config.keep_checkpoints = 2

  if arg == "small":
    config.model.n_regular = 32
    config.model.n_adaptive = 32
    config.model.n_in = 140
    config.data.channel_pool = 5
    config.data.batch_size = 64
    config.steps_per_epoch = 127  # one pass at batch 64
    config.num_epochs = 4
    config.target = 0.6
    config.checkpoint_every = 127
  elif arg == "smoke":
    config.model.n_regular = 4
    config.model.n_adaptive = 4
    config.model.n_in = 70
    config.model.n_delay = 3
    config.data.channel_pool = 10
    config.data.n_bins = 12
    config.data.batch_size = 8
    config.data.eval_size = 12  # not a whole batch: exercises the padding
    common.smoke(config, steps_per_epoch=2, checkpoint_every=2)
  return config
