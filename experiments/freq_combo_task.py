"""Superimposed frequencies (Neil, Pfeiffer & Liu 2016, task 2).

Sums of two sines sampled asynchronously at times t in milliseconds; class 1
iff both periods are special: P1 in [5, 6] and P2 in [13, 15]. The data are
generated on the fly as the official `SinWaveComboIterator` (public_plstm
`freq_task.py`), per sample:

  n = int(U(100, 1000)) points, duration ~ U(1, 100),
  start ~ U(0, 100 - duration), s1, s2 ~ U(0, duration),
  P1, P2 ~ exp(U(log 1, log 100)), and in the first half of every batch
  P1 ~ U(5, 6), P2 ~ U(13, 15) (so about 50% positives);
  t = sorted U(0, 1)^n * duration + start;
  x = sin(t / P1 - s1) + sin(t / P2 - s2)                 (official, no 2 pi)
  x = sin(2 pi t / P1 - s1) + sin(2 pi t / P2 - s2)       (`two_pi=True`)

Sequences are left-padded with a mask to a fixed 1000 steps. The models are
task 1's (`experiments/common/models.py`): Phased LSTM on x with t driving
the time gate, peephole LSTM on [x, t], and that LSTM with batch-normalised
input. Training batches are fresh, drawn from the data key with the step;
validation batches are fresh every epoch, from the eval key with the epoch.

Notes:
  The official code omits the 2 pi of task 1, so its "periods" are 2 pi
  times longer in t (P1 in [5, 6] is a period of 31-38 ms, often longer than
  the sequence); whether that is intended is not stated. `two_pi` selects
  either. Padding to the longest possible sequence, not the batch's longest,
  lets one compiled step serve every batch; masked steps change nothing.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from experiments.common import models
from plstm.train.task import Task, fresh_batches

MAX_LENGTH = 1000
MAX_DURATION = 100.0
NUM_POINTS = (100.0, 1000.0)
SPECIAL_PERIODS = ((5.0, 6.0), (13.0, 15.0))


class Waves(NamedTuple):
  """The drawn parameters of a batch of two-sine sequences."""

  period: jax.Array  # [B, 2] (P1, P2)
  shift: jax.Array  # [B, 2] (s1, s2)
  start: jax.Array  # [B]
  duration: jax.Array  # [B]
  num_points: jax.Array  # [B] int32, in [100, 999]


def draw_waves(key: jax.Array, batch_size: int) -> Waves:
  """Draws the per-sample parameters as `SinWaveComboIterator`."""
  k = jax.random.split(key, 6)
  u = functools.partial(jax.random.uniform, shape=(batch_size,))
  num_points = u(k[0], minval=NUM_POINTS[0], maxval=NUM_POINTS[1])
  duration = u(k[1], minval=1.0, maxval=MAX_DURATION)
  start = u(k[2]) * (MAX_DURATION - duration)
  period = jnp.exp(
    jax.random.uniform(k[3], (batch_size, 2), maxval=math.log(100.0))
  )
  half = batch_size // 2
  lo, hi = jnp.array(SPECIAL_PERIODS, jnp.float32).T
  special = jax.random.uniform(k[4], (half, 2), minval=lo, maxval=hi)
  period = period.at[:half].set(special)
  shift = jax.random.uniform(k[5], (batch_size, 2)) * duration[:, None]
  return Waves(period, shift, start, duration, num_points.astype(jnp.int32))


def label(period: jax.Array) -> jax.Array:
  """1 iff P1 in [5, 6] and P2 in [13, 15]: period [B, 2] -> [B] int32."""
  (lo1, hi1), (lo2, hi2) = SPECIAL_PERIODS
  p1, p2 = period[:, 0], period[:, 1]
  return ((p1 >= lo1) & (p1 <= hi1) & (p2 >= lo2) & (p2 <= hi2)).astype(
    jnp.int32
  )


def render(waves: Waves, key: jax.Array, two_pi: bool) -> dict:
  """Samples `waves` at random times: x [B, T, 1], t, mask [B, T], label."""
  batch_size = waves.start.shape[0]
  # Any n of T iid uniforms are iid: mark the first T - n as padding and sort,
  # so the padding lands on the left and the rest is in time order.
  pad = jnp.arange(MAX_LENGTH) < MAX_LENGTH - waves.num_points[:, None]
  rand = jax.random.uniform(key, (batch_size, MAX_LENGTH))
  t = jnp.sort(jnp.where(pad, -1.0, rand), axis=1) * waves.duration[:, None]
  t = jnp.where(pad, 0.0, t + waves.start[:, None])
  scale = 2 * math.pi if two_pi else 1.0
  phase = scale * t[..., None] / waves.period[:, None] - waves.shift[:, None]
  x = jnp.sum(jnp.sin(phase), axis=-1)
  mask = ~pad
  return {
    "x": jnp.where(mask, x, 0.0)[..., None],
    "t": t,
    "mask": mask,
    "label": label(waves.period),
  }


@functools.partial(jax.jit, static_argnames=("batch_size", "two_pi"))
def sample(key: jax.Array, batch_size: int, two_pi: bool = False) -> dict:
  """One batch: x [B, 1000, 1], t, mask [B, 1000], label [B] int32."""
  k_waves, k_times = jax.random.split(key)
  return render(draw_waves(k_waves, batch_size), k_times, two_pi)


def make_task(config) -> Task:
  """Task 2 of `config`: fresh batches (`config.data.two_pi`), the
  classifier of `config.model` (task 1's)."""
  d = config.data
  cell = models.make_cell(config.model)
  train_batch, eval_batches = fresh_batches(
    lambda key: sample(key, d.batch_size, d.two_pi), d.eval_size, d.batch_size
  )

  return Task(
    init=lambda key, _: models.init_classifier(config.model, cell, key, 1, 2),
    loss=functools.partial(models.classifier_loss, config.model, cell),
    train_batch=train_batch,
    eval_batches=eval_batches,
  )
