"""Sequential MNIST, one pixel per step, as the Phased LSTM TensorFlow repo.

After Philippe Remy's `mnist_phased_lstm.py` (tensorflow-phased-lstm, the
custom cell), whose README shows the Phased LSTM near 0.9 training accuracy
after 2000 steps of batch 256 while the LSTM stays at 0.1-0.45.

Data (`experiments/mnist_data.py`): each 28 x 28 image is read row by row as
T = 784 steps of one pixel,
  x [B, 784, 1] = pixel / 255 in [0, 1],
  t [B, 784]    = 0, 1, ..., 783 (the pixel index, for the time gate),
  label [B] int32, weight [B] float32 (see `eval_batches`).
Training batches: a permutation of the training set per data epoch, drawn
from (config.seed, epoch), cut into batches; the last partial batch of each
epoch is dropped (a different remainder every epoch).

Model: a 32-unit cell on the pixel alone -> h of the last step [B, H] ->
Dense(10) -> softmax cross-entropy, Adam 1e-3, no gradient clipping:
  plstm: the custom `PhasedLSTMCell`: diagonal peepholes, no gate biases,
    tau ~ exp(U(0, 6)), s ~ U(0, tau), r_on = 0.05 (trained), leak 1e-3 in
    training and 0 in evaluation;
  lstm:  TF's `BasicLSTMCell`: no peepholes, forget bias 1.
Weights as TF's defaults: Glorot-uniform over the fused [1 + H, 4H] kernel
of `_linear([x, h])` (limit sqrt(6 / (1 + 5H))), peephole vectors
Glorot-uniform over [H] (limit sqrt(3 / H)), zero biases; the head
Glorot-uniform with a zero bias. Both models start every batch from a random
state c, h ~ N(0, 0.1^2) [B, H] (`config.model.init_state_std`), drawn from
the step's rng (a fixed key in evaluation).

Notes:
  BasicLSTMCell adds its forget bias 1 at every step; here the trainable
  bias starts at 1, which is the same model with the same gradients. The
  Phased LSTM's tau and r_on act through their absolute values (the original
  uses them as they are: they differ only once one turns negative), and at
  phi = r_on exactly the gate is 0 here, alpha r_on there. The original
  evaluates the first 256 test images every step; here the test set (or a
  fixed random subset of it) is evaluated every `steps_per_epoch` steps.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import plstm
from experiments.common import mnist_data

SEQ_LEN = 784
MODELS = ("plstm", "lstm")


def _source(config, split: str):
  if config.data.synthetic:
    return mnist_data.synthetic(split)
  return mnist_data.load(split, config.data.dir)


def _batch(images: np.ndarray, labels: np.ndarray, weight: np.ndarray):
  n = len(labels)
  return {
    "x": images.reshape(n, SEQ_LEN, 1).astype(np.float32) / np.float32(255),
    "t": np.tile(np.arange(SEQ_LEN, dtype=np.float32), (n, 1)),
    "label": labels.astype(np.int32),
    "weight": weight.astype(np.float32),
  }


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  key = jax.random.fold_in(jax.random.key(seed), epoch)
  return np.asarray(jax.random.permutation(key, n))


def train_batch(config, step: int) -> dict:
  """The training batch of `step`, a pure function of (seed, step)."""
  images, labels = _source(config, "train")
  size = config.data.batch_size
  per_epoch = len(labels) // size
  if per_epoch == 0:
    raise ValueError(
      f"config.data.batch_size ({size}) exceeds the {len(labels)} training "
      "images."
    )
  epoch, i = divmod(step, per_epoch)
  idx = _permutation(config.seed, epoch, len(labels))[i * size : (i + 1) * size]
  return _batch(images[idx], labels[idx], np.ones(size))


def eval_batches(config, epoch: int) -> list[dict]:
  """The same test batches every epoch, weighted so that their plain mean
  metrics are the exact means over the evaluated images.

  `config.data.eval_size` images (0: the whole test set, in order; else a
  fixed random subset, the same for every seed) are padded with weight-0
  copies to whole batches; the real ones weigh batches * B / eval_size.
  """
  del epoch  # A fixed evaluation set keeps the curve comparable.
  images, labels = _source(config, "test")
  n = config.data.eval_size or len(labels)
  if n > len(labels):
    raise ValueError(
      f"config.data.eval_size ({n}) exceeds the {len(labels)} test images."
    )
  idx = np.arange(n)
  if n < len(labels):
    idx = np.asarray(jax.random.permutation(jax.random.key(0), len(labels)))[:n]
  size = config.data.batch_size
  num = math.ceil(n / size)
  weight = np.full(num * size, num * size / n)
  weight[n:] = 0
  idx = np.pad(idx, (0, num * size - n), constant_values=idx[0])
  return [
    _batch(images[j], labels[j], w)
    for j, w in zip(np.split(idx, num), np.split(weight, num), strict=True)
  ]


def _uniform(limit: float):
  """U(-limit, limit), as TF's Glorot-uniform initialiser draws."""
  return lambda key, shape, dtype: jax.random.uniform(
    key, shape, dtype, -limit, limit
  )


def make_cell(config):
  """The recurrent cell of `config.model`, initialised as TF's defaults."""
  m = config.model
  if m.name not in MODELS:
    raise ValueError(
      f"config.model.name must be one of {MODELS}, got {m.name!r}."
    )
  # One Glorot limit for the x and h parts: they are one kernel in TF.
  kernel = _uniform(math.sqrt(6 / (1 + 5 * m.hidden)))
  if m.name == "lstm":
    return plstm.LSTM(
      m.hidden,
      forget_bias=m.forget_bias,
      kernel_init=kernel,
      recurrent_kernel_init=kernel,
    )
  return plstm.PhasedLSTM(
    m.hidden,
    forget_bias=0.0,
    input_bias=0.0,
    kernel_init=kernel,
    recurrent_kernel_init=kernel,
    peephole_init=_uniform(math.sqrt(3 / m.hidden)),
    alpha=m.alpha,
    r_on=m.r_on,
    tau_range=tuple(m.tau_range),
  )


def init_params(config, key: jax.Array) -> dict:
  """Params {"rnn", "head"}; checks the config fields it reads."""
  if config.data.batch_size <= 0:
    raise ValueError(
      f"config.data.batch_size must be positive, got {config.data.batch_size}."
    )
  if config.model.init_state_std < 0:
    raise ValueError(
      "config.model.init_state_std must be >= 0, got "
      f"{config.model.init_state_std}."
    )
  if config.data.eval_size < 0:
    raise ValueError(
      f"config.data.eval_size must be >= 0, got {config.data.eval_size}."
    )
  cell = make_cell(config)
  k_rnn, k_shift, k_head = jax.random.split(key, 3)
  rnn = cell.init(k_rnn, input_size=1)
  if config.model.name == "plstm":
    # s ~ U(0, tau) per unit, as the custom cell; plstm draws a fixed range.
    rnn["shift"] = jax.random.uniform(k_shift, rnn["tau"].shape) * rnn["tau"]
  hidden = config.model.hidden
  return {
    "rnn": rnn,
    "head": {
      "w": jax.nn.initializers.glorot_uniform()(
        k_head, (hidden, 10), jnp.float32
      ),
      "b": jnp.zeros((10,), jnp.float32),
    },
  }


def logits_fn(config, params: dict, batch: dict, rng: jax.Array, *, training):
  """Class scores [B, 10] from the last step's h."""
  cell = make_cell(config)
  normal = functools.partial(
    jax.random.normal, shape=(batch["x"].shape[0], config.model.hidden)
  )
  k_c, k_h = jax.random.split(rng)
  std = config.model.init_state_std
  carry = plstm.LSTMState(c=std * normal(k_c), h=std * normal(k_h))
  inputs = (
    (batch["x"], batch["t"]) if config.model.name == "plstm" else batch["x"]
  )
  carry, _ = plstm.scan(
    cell, params["rnn"], inputs, carry=carry, training=training
  )
  return carry.h @ params["head"]["w"] + params["head"]["b"]


def loss_fn(config, params: dict, batch: dict, rng: jax.Array, *, training):
  """Weighted mean cross-entropy and accuracy for one batch."""
  logits = logits_fn(config, params, batch, rng, training=training)
  weight = batch["weight"]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
  loss = jnp.mean(weight * ce)
  return loss, {"loss": loss, "accuracy": jnp.mean(weight * correct)}
