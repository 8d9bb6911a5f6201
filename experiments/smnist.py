"""Sequential MNIST, one pixel per step, as the Phased LSTM TensorFlow repo.

After Philippe Remy's `mnist_phased_lstm.py` (tensorflow-phased-lstm, the
custom cell), whose README shows the Phased LSTM near 0.9 training accuracy
after 2000 steps of batch 256 while the LSTM stays at 0.1-0.45.

Data (`experiments/common/mnist_data.py`): each 28 x 28 image is read row by
row as T = 784 steps of one pixel,
  x [B, 784, 1] = pixel / 255 in [0, 1],
  t [B, 784]    = 0, 1, ..., 783 (the pixel index, for the time gate),
  label [B] int32, weight [B] float32 (see `eval_batches`).
Training batches: a permutation of the training set per data epoch, drawn
from the data key with the epoch, cut into batches; the last partial batch
of each epoch is dropped (a different remainder every epoch). Evaluation:
the test set, or a fixed random subset of it, the same for every seed and
epoch (the benchmark's test images, not a random stream: the eval key is
unused).

Model: a 32-unit cell on the pixel alone -> h of the last step [B, H] ->
Dense(10) -> softmax cross-entropy, Adam 1e-3, no gradient clipping:
  plstm: the custom `PhasedLSTMCell`: diagonal peepholes, no gate biases,
    tau ~ exp(U(0, 6)), s ~ U(0, tau), r_on = 0.05 (trained), leak 1e-3 in
    training and 0 in evaluation;
  lstm:  TF's `BasicLSTMCell`: no peepholes, forget bias 1, and no time
    (the pixel alone, as the original: t is not a feature).
Weights as TF's defaults: Glorot-uniform over the fused [1 + H, 4H] kernel
of `_linear([x, h])` (limit sqrt(6 / (1 + 5H))), peephole vectors
Glorot-uniform over [H] (limit sqrt(3 / H)), zero biases; the head
Glorot-uniform with a zero bias. Both models start every batch from a random
state c, h ~ N(0, 0.1^2) [B, H] (`config.model.init_state_std`), drawn from
the loss's key (the step's noise key in training, the eval key in
evaluation).

`make_data(config.data)` gives the batch functions alone, for other models
of the same data (`experiments/smnist_lsnn.py`).

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
from experiments.common import mnist_data, precision
from plstm.cell import is_traced, timed
from plstm.train.task import Task, numpy_rng

SEQ_LEN = 784
# The fixed test subset of `eval_size` images: part of the benchmark's
# definition (the same images for every seed), so not drawn from a run's key.
EVAL_SUBSET_KEY = 0


def load(data, split: str):
  """(images uint8 [N, 28, 28], labels int32 [N]) of `split` for `data` (a
  config's `data` block): MNIST from `data.dir`, or the synthetic stand-in."""
  if data.synthetic:
    return mnist_data.synthetic(split)
  return mnist_data.load(split, data.dir)


def batch(images: np.ndarray, labels: np.ndarray, weight: np.ndarray) -> dict:
  """The batch of images [B, 28, 28] uint8, labels [B] and weight [B]."""
  n = len(labels)
  return {
    "x": images.reshape(n, SEQ_LEN, 1).astype(np.float32) / np.float32(255),
    "t": np.tile(np.arange(SEQ_LEN, dtype=np.float32), (n, 1)),
    "label": labels.astype(np.int32),
    "weight": weight.astype(np.float32),
  }


def train_batch(
  images: np.ndarray,
  labels: np.ndarray,
  batch_size: int,
  key: jax.Array,
  step: int,
) -> dict:
  """Training batch `step` (from 0) of `batch_size` of the images: epoch
  `step // (N // batch_size)` permutes them with `numpy_rng(key, epoch)`."""
  per_epoch = len(labels) // batch_size
  if per_epoch == 0:
    raise ValueError(
      f"config.data.batch_size ({batch_size}) exceeds the {len(labels)} "
      "training images."
    )
  epoch, i = divmod(step, per_epoch)
  perm = numpy_rng(key, epoch).permutation(len(labels))
  idx = perm[i * batch_size : (i + 1) * batch_size]
  return batch(images[idx], labels[idx], np.ones(batch_size))


def eval_batches(
  images: np.ndarray, labels: np.ndarray, batch_size: int, eval_size: int
) -> list[dict]:
  """The evaluation batches, weighted so that their plain mean metrics are
  the exact means over the evaluated images.

  `eval_size` images (0: all of them, in order; else a fixed random subset,
  the same for every seed) are padded with weight-0 copies to whole batches;
  the real ones weigh batches * B / eval_size.
  """
  n = eval_size or len(labels)
  if n > len(labels):
    raise ValueError(
      f"config.data.eval_size ({n}) exceeds the {len(labels)} test images."
    )
  idx = np.arange(n)
  if n < len(labels):
    key = jax.random.key(EVAL_SUBSET_KEY)
    idx = np.asarray(jax.random.permutation(key, len(labels)))[:n]
  num = math.ceil(n / batch_size)
  weight = np.full(num * batch_size, num * batch_size / n)
  weight[n:] = 0
  idx = np.pad(idx, (0, num * batch_size - n), constant_values=idx[0])
  return [
    batch(images[j], labels[j], w)
    for j, w in zip(np.split(idx, num), np.split(weight, num), strict=True)
  ]


def make_data(data):
  """`(train_batch(data_key, step), eval_batches(eval_key, epoch))` of
  `data` (a config's `data` block), the `Task` fields: the training images
  in a permutation per epoch, and the same test batches every epoch (the
  key and epoch are unused: a fixed evaluation set keeps the curve
  comparable). MNIST is loaded at the first batch."""
  if data.synthetic and data.dir:
    raise ValueError(
      f"config.data.dir is set ({data.dir!r}) but config.data.synthetic is "
      "True, which reads no files; unset one (--config.data.dir='' or "
      "--config.data.synthetic=False)."
    )
  if data.batch_size <= 0:
    raise ValueError(
      f"config.data.batch_size must be positive, got {data.batch_size}."
    )
  if data.eval_size < 0:
    raise ValueError(
      f"config.data.eval_size must be >= 0, got {data.eval_size}."
    )

  def train(key, step):
    return train_batch(*load(data, "train"), data.batch_size, key, step)

  def evaluate(key, epoch):
    del key, epoch
    return eval_batches(*load(data, "test"), data.batch_size, data.eval_size)

  return train, evaluate


def _uniform(limit: float):
  """U(-limit, limit), as TF's Glorot-uniform initialiser draws."""
  return lambda key, shape, dtype: jax.random.uniform(
    key, shape, dtype, -limit, limit
  )


def _kernel(model):
  """One Glorot limit for the x and h parts: they are one kernel in TF."""
  return _uniform(math.sqrt(6 / (1 + 5 * model.hidden)))


def tf_lstm(model) -> plstm.LSTM:
  """The LSTM of `model` (a config's `model` block), as TF's LSTMCell."""
  return plstm.LSTM(
    model.hidden,
    forget_bias=model.forget_bias,
    kernel_init=_kernel(model),
    recurrent_kernel_init=_kernel(model),
  )


def tf_phased_lstm(model) -> plstm.PhasedLSTM:
  """The Phased LSTM of `model`, as the TF code's PhasedLSTMCell."""
  kernel = _kernel(model)
  return plstm.PhasedLSTM(
    model.hidden,
    forget_bias=0.0,
    input_bias=0.0,
    kernel_init=kernel,
    recurrent_kernel_init=kernel,
    peephole_init=_uniform(math.sqrt(3 / model.hidden)),
    alpha=model.alpha,
    r_on=model.r_on,
    tau_range=tuple(model.tau_range),
  )


# `config.model.name` -> the cell, initialised as the TF code's (TF's
# defaults), unlike the Lasagne-initialised `experiments.common.models.CELLS`
# of the other Phased LSTM experiments.
CELLS = {"plstm": tf_phased_lstm, "lstm": tf_lstm}


def make_cell(model):
  """The recurrent cell of `model` (a config's `model` block)."""
  if model.name not in CELLS:
    raise ValueError(
      f"config.model.name must be one of {tuple(CELLS)}, got {model.name!r}."
    )
  return precision.with_dtype(CELLS[model.name](model), model)


def init_params(cell, key: jax.Array) -> dict:
  """Params {"rnn", "head"} of the classifier on `cell`."""
  k_rnn, k_shift, k_head = jax.random.split(key, 3)
  rnn = cell.init(k_rnn, input_size=1)
  if timed(cell):
    # s ~ U(0, tau) per unit, as the custom cell; plstm draws a fixed range.
    rnn["shift"] = jax.random.uniform(k_shift, rnn["tau"].shape) * rnn["tau"]
  return {
    "rnn": rnn,
    "head": {
      "w": jax.nn.initializers.glorot_uniform()(
        k_head, (cell.hidden_size, 10), jnp.float32
      ),
      "b": jnp.zeros((10,), jnp.float32),
    },
  }


def logits(
  cell,
  init_state_std: float | jax.Array,
  params: dict,
  batch: dict,
  key: jax.Array,
  *,
  training: bool,
):
  """Class scores [B, 10] from the last step's h, from the initial state
  c, h ~ N(0, init_state_std^2) drawn with `key`. A timed cell gets the
  pixel index as its time; the LSTM gets the pixel alone."""
  normal = functools.partial(
    jax.random.normal, shape=(batch["x"].shape[0], cell.hidden_size)
  )
  k_c, k_h = jax.random.split(key)
  carry = plstm.LSTMState(
    c=init_state_std * normal(k_c), h=init_state_std * normal(k_h)
  )
  inputs = (batch["x"], batch["t"]) if timed(cell) else batch["x"]
  carry, _ = plstm.scan(
    cell, params["rnn"], inputs, carry=carry, training=training
  )
  return carry.h @ params["head"]["w"] + params["head"]["b"]


def make_task(config) -> Task:
  """Sequential MNIST with the cell of `config.model`."""
  std = config.model.init_state_std
  if not is_traced(std) and std < 0:
    raise ValueError(
      "config.model.init_state_std must be >= 0, got "
      f"{config.model.init_state_std}."
    )
  cell = make_cell(config.model)
  train, evaluate = make_data(config.data)

  def loss(params, batch, key, *, training):
    """Weighted mean cross-entropy and accuracy for one batch."""
    scores = logits(cell, std, params, batch, key, training=training)
    weight = batch["weight"]
    ce = optax.softmax_cross_entropy_with_integer_labels(scores, batch["label"])
    correct = (jnp.argmax(scores, -1) == batch["label"]).astype(jnp.float32)
    loss = jnp.mean(weight * ce)
    return loss, {"loss": loss, "accuracy": jnp.mean(weight * correct)}

  return Task(
    init=lambda key, _: init_params(cell, key),
    loss=loss,
    train_batch=train,
    eval_batches=evaluate,
  )
