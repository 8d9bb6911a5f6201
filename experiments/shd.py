"""Spoken words as spikes (SHD, SSC) with an LSNN: learned delays or not.

Data (`experiments/common/heidelberg.py`): the dataset's HDF5 files,
each sample binned to `config.data.n_bins` steps of `data.bin_ms` over
700 / `data.channel_pool` input channels (spike counts). Training batches
walk a fresh permutation of the training split each pass
(`numpy_rng(data key, pass)`); the evaluation is `data.eval_split` (its
first `data.eval_size` samples in file order, 0 for all), padded with
weight-0 copies to whole batches and binned a batch at a time.

Model (`experiments/common/lsnn.py`): one recurrent population of
n_regular LIF and n_adaptive ALIF neurons (`plstm.ALIF`), one step per
bin, its synaptic delays learned (`model.learn_delays`, their updates
scaled by `model.delay_lr_scale` after the optimiser) or fixed, and the
LSNN's filtered linear readout out_t (tau_out). The class scores are its
mean over all steps:

  loss = CE(mean_t out_t, label) + reg * sum_j (rate_j - reg_rate)^2.

Metrics: loss, ce, accuracy (the headline), firing rates in Hz (a step
being `model.step_ms`) and, with rewiring, the connectivity.
"""

import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from experiments.common import heidelberg, lsnn
from plstm.train.task import Task, numpy_rng


class _EvalBatches(Sequence):
  """The evaluation batches, binned when read (a whole split binned at once
  would hold N x T x 700 floats)."""

  def __init__(self, data, spikes: heidelberg.Spikes, batch_size: int):
    n = data.eval_size or len(spikes)
    if n > len(spikes):
      raise ValueError(
        f"config.data.eval_size ({n}) exceeds the {len(spikes)} samples of "
        f"the {data.eval_split} split."
      )
    self._num = math.ceil(n / batch_size)
    weight = np.full(self._num * batch_size, self._num * batch_size / n)
    weight[n:] = 0
    idx = np.pad(np.arange(n), (0, self._num * batch_size - n))
    self._idx = np.split(idx, self._num)
    self._weight = np.split(weight.astype(np.float32), self._num)
    self._data, self._spikes = data, spikes

  def __len__(self) -> int:
    return self._num

  def __getitem__(self, i: int) -> dict:
    if not 0 <= i < self._num:
      raise IndexError(i)
    return _batch(self._data, self._spikes, self._idx[i], self._weight[i])


def _batch(data, spikes, idx, weight) -> dict:
  x = heidelberg.binned(
    spikes, idx, data.n_bins, data.bin_ms, data.channel_pool
  )
  return {"x": x, "label": spikes.labels[idx], "weight": weight}


def make_data(data):
  """(train_batch, eval_batches) of `data` (a config's block)."""
  if data.n_bins < 1 or data.bin_ms <= 0:
    raise ValueError(
      f"config.data.n_bins must be >= 1 and bin_ms > 0, got {data.n_bins} "
      f"and {data.bin_ms}."
    )
  if data.channel_pool < 1 or heidelberg.N_CHANNELS % data.channel_pool:
    raise ValueError(
      "config.data.channel_pool must divide the 700 channels, got "
      f"{data.channel_pool}."
    )
  load = lambda split: heidelberg.load(
    data.dataset, split, data.dir, data.cache
  )
  train, test = load("train"), load(data.eval_split)
  batch_size = data.batch_size
  per_pass = len(train) // batch_size
  if per_pass == 0:
    raise ValueError(
      f"config.data.batch_size ({batch_size}) exceeds the {len(train)} "
      "training samples."
    )
  evaluation = _EvalBatches(data, test, batch_size)

  def train_batch(key, step: int) -> dict:
    epoch, i = divmod(step, per_pass)
    perm = numpy_rng(key, epoch).permutation(len(train))
    idx = perm[i * batch_size : (i + 1) * batch_size]
    return _batch(data, train, idx, np.ones(batch_size, np.float32))

  def eval_batches(key, epoch: int) -> Sequence[dict]:
    del key, epoch  # The same samples every epoch.
    return evaluation

  return train_batch, eval_batches


def make_task(config) -> Task:
  """The SHD/SSC task of `config`."""
  m, data = config.model, config.data
  train_batch, eval_batches = make_data(data)
  n_in = heidelberg.N_CHANNELS // data.channel_pool
  if m.n_in != n_in:
    raise ValueError(
      f"config.model.n_in must be 700 / config.data.channel_pool = {n_in}, "
      f"got {m.n_in}."
    )
  net = lsnn.make_network(
    config, n_in, heidelberg.CLASSES[data.dataset], bias=True
  )
  return Task(
    init=net.init,
    loss=make_loss(net),
    train_batch=train_batch,
    eval_batches=eval_batches,
    optimizer=net.optimizer,
  )


def make_loss(net: lsnn.Network):
  """The task's loss of `net`: (params, batch, key, *, training) ->
  (loss, metrics), for batches {"x" [B, T, C], "label" [B], "weight" [B]}."""

  def loss(params, batch, key, *, training):
    del key, training  # The network is deterministic.
    _, outputs, out = net.run(params, batch["x"])
    return lsnn.classify(net, params, batch, outputs, jnp.mean(out, axis=1))

  return loss
