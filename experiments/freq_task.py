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
import optax

import plstm

CONDITIONS = {"async": None, "regular": 1.0, "highres": 0.1}
MODELS = ("plstm", "lstm", "bn_lstm")
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


def train_key(config, step: int) -> jax.Array:
  """The key of training batch `step`: data are a function of (seed, step)."""
  return jax.random.fold_in(jax.random.key(config.seed), step)


def eval_keys(config, epoch: int) -> jax.Array:
  """Keys of the fresh validation batches of `epoch`, one per batch:
  ceil(eval_size / batch_size) of them."""
  key = jax.random.fold_in(jax.random.key(config.seed + 1), epoch)
  return jax.random.split(
    key, math.ceil(config.data.eval_size / config.data.batch_size)
  )


def train_batch(config, step: int) -> dict:
  """The training batch of `step`, a pure function of (seed, step)."""
  return sample(
    train_key(config, step), config.data.batch_size, config.data.condition
  )


def eval_batches(config, epoch: int) -> list[dict]:
  """Fresh validation batches for `epoch`."""
  return [
    sample(k, config.data.batch_size, config.data.condition)
    for k in eval_keys(config, epoch)
  ]


def make_cell(config):
  """The recurrent cell of `config.model`."""
  m = config.model
  if m.name not in MODELS:
    raise ValueError(
      f"config.model.name must be one of {MODELS}, got {m.name!r}."
    )
  if m.name == "plstm":
    return plstm.PhasedLSTM(
      m.hidden,
      peepholes=m.peepholes,
      alpha=m.alpha,
      r_on=m.r_on,
      train_r_on=m.train_r_on,
      tau_range=tuple(m.tau_range),
      shift_range=tuple(m.shift_range),
    )
  normal = jax.nn.initializers.normal(0.1)
  # Lasagne's LSTMLayer as the official baselines set it up.
  return plstm.LSTM(
    m.hidden,
    peepholes=m.peepholes,
    forget_bias=0.0,
    input_bias=-0.1,
    kernel_init=normal,
    recurrent_kernel_init=normal,
  )


def init_params(config, key: jax.Array) -> dict:
  """The classifier's params, after checking `config.data.condition`."""
  if config.data.condition not in CONDITIONS:
    raise ValueError(
      f"config.data.condition must be one of {tuple(CONDITIONS)}, got "
      f"{config.data.condition!r}."
    )
  return init_classifier(config, key)


def init_classifier(config, key: jax.Array) -> dict:
  """Params {"rnn", "head"} (+ "bn" for bn_lstm) of the classifier."""
  cell = make_cell(config)
  timed = config.model.name == "plstm"
  input_size = 1 if timed else 2
  k_rnn, k_head = jax.random.split(key)
  params = {
    "rnn": cell.init(k_rnn, input_size),
    "head": {
      "w": jax.nn.initializers.glorot_uniform()(
        k_head, (config.model.hidden, 2), jnp.float32
      ),
      "b": jnp.zeros((2,), jnp.float32),
    },
  }
  if config.model.name == "bn_lstm":
    params["bn"] = {
      "scale": jnp.ones((input_size,), jnp.float32),
      "bias": jnp.zeros((input_size,), jnp.float32),
    }
  return params


def batch_norm(
  params: dict, x: jax.Array, mask: jax.Array, eps: float = 1e-4
) -> jax.Array:
  """Normalises each feature of x [B, T, I] over the real steps of B and T."""
  w = mask[..., None].astype(x.dtype)
  count = jnp.sum(w, axis=(0, 1))
  mean = jnp.sum(w * x, axis=(0, 1)) / count
  var = jnp.sum(w * (x - mean) ** 2, axis=(0, 1)) / count
  return (x - mean) * jax.lax.rsqrt(var + eps) * params["scale"] + params[
    "bias"
  ]


def logits_fn(config, params: dict, batch: dict, *, training: bool):
  """Class scores [B, 2] from the last step of the recurrent layer."""
  cell = make_cell(config)
  if config.model.name == "plstm":
    inputs = (batch["x"], batch["t"])
  else:
    inputs = jnp.concatenate([batch["x"], batch["t"][..., None]], axis=-1)
    if config.model.name == "bn_lstm":
      inputs = batch_norm(params["bn"], inputs, batch["mask"])
  _, h = plstm.scan(
    cell, params["rnn"], inputs, mask=batch["mask"], training=training
  )
  head = params["head"]
  return jax.nn.leaky_relu(h[:, -1] @ head["w"] + head["b"], 0.01)


def loss_fn(
  config, params: dict, batch: dict, rng: jax.Array, *, training: bool
):
  """Mean cross-entropy and {"loss", "accuracy"} for one batch."""
  del rng  # The models here draw no randomness.
  logits = logits_fn(config, params, batch, training=training)
  loss = optax.softmax_cross_entropy_with_integer_labels(
    logits, batch["label"]
  ).mean()
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
  return loss, {"loss": loss, "accuracy": accuracy}
