"""Frequency discrimination (Neil, Pfeiffer & Liu 2016, task 1, Fig. 3).

Sine waves sin(2 pi t / P - s) sampled at times t in milliseconds; class 1 iff
the period P is in [5, 6] ms. The data are generated on the fly exactly as the
official `SinWaveIterator` (public_plstm `freq_task.py`):

  duration ~ U(15, 125), start ~ U(0, 125 - duration), s ~ U(0, duration),
  P ~ exp(U(log 1, log 100)), and the first half of every batch P ~ U(5, 6);
  async:   int(U(15, 125)) times, sorted U(0, 1) * duration + start;
  regular: arange(start, start + duration, resolution), 1 ms or 0.1 ms.

Sequences are left-padded with a mask. Models (110 units, last step ->
Dense(2, leaky ReLU) -> softmax, as the official `get_rnn`):
  plstm:   Phased LSTM on x, with t driving the time gate;
  lstm:    peephole LSTM on [x, t] (the raw time as a second feature);
  bn_lstm: the same LSTM with its input normalised over batch and time.

Notes:
  Batches are padded to the longest possible sequence (125 steps; 1250 at
  0.1 ms), not to the batch's longest, so that one compiled step serves every
  batch. Masked steps leave the carry untouched, so this changes nothing.
  The official BN uses batch statistics in validation too and includes the
  padding; here statistics are over the real (unmasked) steps, in both
  training and evaluation.
"""

import functools
import math

import jax
import jax.numpy as jnp

from experiments.common import models
from plstm.train.task import Task, fresh_batches

CONDITIONS = {"async": None, "regular": 1.0, "highres": 0.1}
MAX_DURATION = 125.0
SPECIAL_PERIOD = (5.0, 6.0)


def max_length(condition: str) -> int:
  resolution = CONDITIONS[condition]
  return 125 if resolution is None else math.ceil(MAX_DURATION / resolution)


@functools.partial(jax.jit, static_argnames=("batch_size", "condition"))
def sample(key: jax.Array, batch_size: int, condition: str) -> dict:
  """One batch: x [B, T, 1], t [B, T], mask [B, T] bool, label [B] int32."""
  k = jax.random.split(key, 7)
  u = functools.partial(jax.random.uniform, shape=(batch_size,))
  num_points = u(k[0], minval=15.0, maxval=125.0).astype(jnp.int32)
  duration = u(k[1], minval=15.0, maxval=MAX_DURATION)
  start = u(k[2]) * (MAX_DURATION - duration)
  period = jnp.exp(u(k[3], maxval=math.log(100.0)))
  half = batch_size // 2
  period = period.at[:half].set(
    jax.random.uniform(
      k[4], (half,), minval=SPECIAL_PERIOD[0], maxval=SPECIAL_PERIOD[1]
    )
  )
  shift = u(k[5]) * duration

  length = max_length(condition)
  j = jnp.arange(length)
  resolution = CONDITIONS[condition]
  if resolution is None:
    n = num_points
    # Any n of the iid uniforms are iid: mark the first T - n as padding and
    # sort, so the padding lands on the left and the rest is in time order.
    pad = j < length - n[:, None]
    rand = jax.random.uniform(k[6], (batch_size, length))
    t = jnp.sort(jnp.where(pad, -1.0, rand), axis=1) * duration[:, None]
  else:
    n = jnp.ceil(duration / resolution).astype(jnp.int32)
    pad = j < length - n[:, None]
    t = (j - (length - n[:, None])).astype(jnp.float32) * resolution
  t = jnp.where(pad, 0.0, t + start[:, None])
  x = jnp.sin(2 * jnp.pi / period[:, None] * t - shift[:, None])
  mask = ~pad
  return {
    "x": jnp.where(mask, x, 0.0)[..., None],
    "t": t,
    "mask": mask,
    "label": (
      (period >= SPECIAL_PERIOD[0]) & (period <= SPECIAL_PERIOD[1])
    ).astype(jnp.int32),
  }


def make_task(config) -> Task:
  """Task 1 of `config`: fresh batches of `config.data.condition`, the
  classifier of `config.model`."""
  d = config.data
  if d.condition not in CONDITIONS:
    raise ValueError(
      f"config.data.condition must be one of {tuple(CONDITIONS)}, got "
      f"{d.condition!r}."
    )
  cell = models.make_cell(config.model)
  train_batch, eval_batches = fresh_batches(
    lambda key: sample(key, d.batch_size, d.condition),
    d.eval_size,
    d.batch_size,
  )

  return Task(
    init=lambda key, _: models.init_classifier(config.model, cell, key, 1, 2),
    loss=functools.partial(models.classifier_loss, config.model, cell),
    train_batch=train_batch,
    eval_batches=eval_batches,
  )
