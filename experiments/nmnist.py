r"""Event-based MNIST (Neil, Pfeiffer & Liu 2016, sec. 4.3, N-MNIST).

The Phased LSTM reads a digit's event stream one event at a time, at the
events' own times, and is compared with an LSTM on frames of binned events;
the paper reports about 97.3% for the Phased LSTM with an order of magnitude
fewer state updates (as recalled in seeds-spec 1.8, "Paper-only tasks",
unverified against the PDF). The paper's exact architecture is not in our
spec; the choices below are ours.

Data (`config.data.source`):
  mnist:     MNIST digits (`experiments/common/mnist_data.py`, from
             `config.data.dir`) converted to N-MNIST-like streams by
             `experiments/common/events.py` (three saccades, 300 ms, 34x34,
             ON/OFF; the simulated sensor's mismatch is fixed, the same for
             every seed: it is part of the data set, as N-MNIST's camera);
  nmnist:    real N-MNIST read with tonic from `config.data.dir`;
  synthetic: `mnist_data.synthetic` patterns converted likewise (no files).
Every digit of the split is converted (or read) once per process and cached
as its encoding, [N, P] arrays left-padded to P events:
  address = p * 34 * 34 + y * 34 + x of each event, in 0..2311,
  t       = event time in ms (float32; the time gate's unit),
  mask    = real events,
  label [N] int32.
A stream of n > P events keeps an evenly strided P of them (event
floor((j + 1/2) n / P), j = 0..P-1). Test digits keep P = `max_events`.
Training digits keep P = `pool * max_events`, and each batch draws
`max_events` of a digit's pool at random (in time order): the same density
of events as in testing, a different subset every time.
Training batches: a permutation of the (first `train_size`) training digits
per data epoch, drawn from the data key with the epoch (and each batch's
events with the epoch and the batch), the last partial batch dropped.
Evaluation: the test set, or a fixed random `eval_size` of it, the same for
every seed and epoch (the benchmark's test digits: the eval key is unused).

Models (both embed each event's address, E = `config.model.embed`, N(0, 1)):
  plstm: embedding [B, T, E] -> Phased LSTM, t driving the time gate, masked
         padding -> h after the last event -> Dense(10) -> softmax;
  lstm:  the same events binned into frames of `frame_ms` (F = 300 / frame_ms
         of them): a frame's input is the sum of its events' embeddings, i.e.
         a linear layer on the 34 x 34 x 2 event-count frame -> LSTM over
         the F frames -> h -> Dense(10);
  event_lstm: the LSTM on the events themselves, one step per event, its
         input the embedding and the time t / 100 ms as one more feature
         (the paper's baseline was a BN-LSTM, on frames or on events: not
         confirmed; this one has no batch norm), masked padding -> h after
         the last event -> Dense(10).
A timed cell (`plstm.cell.timed`) reads the events at their times, any
other cell reads the frames. The cells are those of
`experiments.common.models.CELLS` (any of them; the LSTMs with
peepholes, N(0, 0.1) weights, input-gate bias -0.1). tau ~ exp(U(log 5,
log 100)) ms spans 5 ms up to one saccade and s ~ U(0, 100) ms covers it, so
every unit starts out opening at least three times in the 300 ms of a
recording.

Metrics, besides loss and accuracy:
  update_fraction: the fraction of units whose time gate is open, k > 0,
    with alpha = 0 (as in evaluation), averaged over the real events; 1 for
    the LSTM, which updates every unit at every frame;
  updates_per_sample: state updates per digit, events x H x fraction for
    the Phased LSTM, F x H for the LSTM, events x H for the event LSTM;
  updates_per_neuron: the same per unit, updates_per_sample / H (the
    paper's measure of cost: state updates per neuron per digit);
  events_per_sample: the real events fed per digit.

Notes:
  Both models see the same (capped) events; the paper's frame baselines saw
  all events. Batches of test digits are weighted as in
  `experiments/smnist.py`: padding copies weigh 0, so the plain mean over
  batches is the exact mean. The models draw no randomness: the loss's key
  is unused.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import plstm
from experiments.common import events, mnist_data, models, precision
from plstm.cell import timed
from plstm.train.task import Task, numpy_rng

# The LSTM of `models.CELLS["lstm"]` stepping through the events, the time a
# feature; every other config.model.name is a cell of `models.CELLS`.
EVENT_LSTM = "event_lstm"
TIME_UNIT_MS = 100.0  # the event LSTM's time feature: t / 100 ms
SOURCES = ("mnist", "nmnist", "synthetic")
NUM_ADDRESSES = 2 * events.SIZE * events.SIZE
DURATION_MS = events.Sensor().duration_ms
CONVERT_CHUNK = 512  # digits converted, then encoded, at a time


def encode(stream: np.ndarray, length: int) -> dict:
  """One recording as (address, t in ms, mask) [length], left-padded; an
  evenly strided `length` of its events if it has more."""
  n = len(stream)
  if n > length:
    stream = stream[((np.arange(length) + 0.5) * n / length).astype(int)]
  address = stream["p"].astype(np.int32) * events.SIZE**2
  address += stream["y"].astype(np.int32) * events.SIZE + stream["x"]
  pad = length - len(stream)
  return {
    "address": np.pad(address, (pad, 0)).astype(np.int16),
    "t": np.pad(stream["t"] / 1000, (pad, 0)).astype(np.float32),
    "mask": np.arange(length) >= pad,
  }


def _stack(encoded: list[dict]) -> dict:
  return {k: np.stack([e[k] for e in encoded]) for k in encoded[0]}


def _selection(split: str, total: int, size: int) -> np.ndarray:
  """The first `size` training digits, or a fixed random `size` test digits,
  the same for every seed (0: all)."""
  if size > total:
    raise ValueError(
      f"config.data.{'train' if split == 'train' else 'eval'}_size ({size}) "
      f"exceeds the {total} {split} digits."
    )
  if not size or size == total:
    return np.arange(total)
  if split == "train":
    return np.arange(size)
  return np.sort(np.random.default_rng(0).permutation(total)[:size])


@functools.lru_cache(maxsize=4)
def _dataset(
  source: str, data_dir: str, split: str, size: int, length: int
) -> dict:
  """The digits of `split` encoded with `length` events (see the module
  docstring), cached."""
  print(f"Encoding the {split} {source} digits as events (once).", flush=True)
  if source == "nmnist":
    recordings = events.load_nmnist(data_dir, train=split == "train")
    idx = _selection(split, len(recordings), size)
    encoded, labels = [], []
    for i in idx:
      try:
        stream, label = recordings[i]
      except Exception as e:  # tonic reads a recording's file here.
        reason = " ".join(str(e).split())[:200]
        raise ValueError(
          f"tonic could not read N-MNIST {split} recording {i} in "
          f"{data_dir!r} ({type(e).__name__}: {reason}); replace the damaged "
          "file, or set config.data.dir to tonic's N-MNIST directory."
        ) from e
      encoded.append(encode(events.as_events(stream), length))
      labels.append(label)
    return {**_stack(encoded), "label": np.array(labels, np.int32)}
  if source == "synthetic":
    images, labels = mnist_data.synthetic(split)
  else:
    images, labels = mnist_data.load(split, data_dir)
  idx = _selection(split, len(labels), size)
  encoded = []
  for i in range(0, len(idx), CONVERT_CHUNK):
    streams = events.convert(images[idx[i : i + CONVERT_CHUNK]])
    encoded += [encode(s, length) for s in streams]
  return {**_stack(encoded), "label": labels[idx].astype(np.int32)}


def _check_source(source: str):
  if source not in SOURCES:
    raise ValueError(
      f"config.data.source must be one of {SOURCES}, got {source!r}."
    )


def dataset(data, split: str) -> dict:
  """The cached encoded digits of `split` for `data` (a config's `data`
  block): at most `max_events` per test digit and `pool * max_events` per
  training digit."""
  _check_source(data.source)
  if split == "train":
    length = data.pool * data.max_events
    return _dataset(data.source, data.dir, split, data.train_size, length)
  return _dataset(data.source, data.dir, split, data.eval_size, data.max_events)


def _batch(data: dict, idx: np.ndarray, weight: np.ndarray) -> dict:
  return {
    "address": data["address"][idx].astype(np.int32),
    "t": data["t"][idx],
    "mask": data["mask"][idx],
    "label": data["label"][idx],
    "weight": weight.astype(np.float32),
  }


def subsample(batch: dict, max_events: int, rng: np.random.Generator) -> dict:
  """`max_events` of each row's real events [B, P], at random, in order.

  Rows with fewer keep them all, still left-padded (padding sorts first).
  """
  keys = np.where(batch["mask"], rng.random(batch["mask"].shape), 2.0)
  keep = np.sort(np.argsort(keys, axis=1)[:, :max_events], axis=1)
  return {
    **batch,
    **{
      k: np.take_along_axis(batch[k], keep, axis=1)
      for k in ("address", "t", "mask")
    },
  }


def train_batch(data, key: jax.Array, step: int) -> dict:
  """Training batch `step` (from 0) of `data` (a config's `data` block):
  epoch `step // (N // batch_size)` permutes the digits with
  `numpy_rng(key, epoch)`, and batch i of it draws each digit's events
  with `numpy_rng(key, epoch, i)`."""
  digits = dataset(data, "train")
  n, size = len(digits["label"]), data.batch_size
  per_epoch = n // size
  if per_epoch == 0:
    raise ValueError(
      f"config.data.batch_size ({size}) exceeds the {n} training digits."
    )
  epoch, i = divmod(step, per_epoch)
  perm = numpy_rng(key, epoch).permutation(n)
  batch = _batch(digits, perm[i * size : (i + 1) * size], np.ones(size))
  rng = numpy_rng(key, epoch, i)
  return subsample(batch, data.max_events, rng)


def eval_batches(data) -> list[dict]:
  """The test batches of `data` (the same every epoch); padding copies
  weigh 0 and the real digits num_batches * B / n, so the plain mean metric
  is the exact mean."""
  digits = dataset(data, "test")
  n, size = len(digits["label"]), data.batch_size
  num = math.ceil(n / size)
  weight = np.where(np.arange(num * size) < n, num * size / n, 0.0)
  idx = np.pad(np.arange(n), (0, num * size - n))
  return [
    _batch(digits, i, w)
    for i, w in zip(np.split(idx, num), np.split(weight, num), strict=True)
  ]


def num_frames(frame_ms: float) -> int:
  """The LSTM's frames F of `frame_ms` in a recording."""
  return math.ceil(DURATION_MS / frame_ms)


def _check(config):
  m, d = config.model, config.data
  names = (*models.CELLS, EVENT_LSTM)
  if m.name not in names:
    raise ValueError(
      f"config.model.name must be one of {names}, got {m.name!r}."
    )
  _check_source(d.source)
  if d.source == "synthetic" and d.dir:
    raise ValueError(
      f"config.data.dir is set ({d.dir!r}) but config.data.source is "
      "'synthetic', which reads no files; unset one (--config.data.dir='' "
      "or another config.data.source)."
    )
  if d.source == "nmnist" and not d.dir:
    raise ValueError(
      "config.data.source is 'nmnist', which reads tonic's N-MNIST files "
      "from config.data.dir, but config.data.dir is empty; pass "
      "--config.data.dir=DIR."
    )
  for field, value in (
    ("model.embed", m.embed),
    ("data.max_events", d.max_events),
    ("data.pool", d.pool),
    ("data.frame_ms", d.frame_ms),
    ("data.batch_size", d.batch_size),
  ):
    if value <= 0:
      raise ValueError(f"config.{field} must be positive, got {value}.")
  for field in ("train_size", "eval_size"):
    if d[field] < 0:
      raise ValueError(f"config.data.{field} must be >= 0, got {d[field]}.")


def init_params(cell, embed_size: int, key: jax.Array, time_feature=False):
  """Params {"embed", "rnn", "head"} of the classifier on `cell` (whose
  input has one more feature, the time, with `time_feature`)."""
  k_embed, k_rnn, k_head = jax.random.split(key, 3)
  return {
    "embed": jax.random.normal(
      k_embed, (NUM_ADDRESSES, embed_size), jnp.float32
    ),
    "rnn": cell.init(k_rnn, embed_size + int(time_feature)),
    "head": {
      "w": jax.nn.initializers.glorot_uniform()(
        k_head, (cell.hidden_size, 10), jnp.float32
      ),
      "b": jnp.zeros((10,), jnp.float32),
    },
  }


def frames(
  x: jax.Array, t: jax.Array, mask: jax.Array, frame_ms: float
) -> jax.Array:
  """Sums per-event inputs x [B, T, E] into frames [B, F, E] of `frame_ms`
  by time t [B, T] (ms; events after the last frame's end go to the last
  frame)."""
  f = num_frames(frame_ms)
  index = jnp.clip(jnp.floor(t / frame_ms), 0, f - 1)
  binned = jax.nn.one_hot(index.astype(jnp.int32), f)
  binned = binned * mask[..., None].astype(binned.dtype)
  return jnp.einsum("btf,bte->bfe", binned, x)


def embed(table: jax.Array, address: jax.Array) -> jax.Array:
  """Rows of table [A, E] at address [B, T] -> [B, T, E]."""
  return table[address]


def logits(
  cell, frame_ms: float | None, params: dict, batch: dict, *, training: bool
):
  """Class scores [B, 10] from h after the last event (a timed cell, fed
  the events at their times; an untimed one with `frame_ms` None, fed the
  events with their time as a feature) or the last frame of `frame_ms`."""
  x = embed(params["embed"], batch["address"])
  x = models.normalise(params, x, batch["mask"])
  if timed(cell) or frame_ms is None:
    inputs = (x, batch["t"])
    if not timed(cell):
      time = (batch["t"] / TIME_UNIT_MS)[..., None]
      inputs = jnp.concatenate([x, time], axis=-1)
    carry, _ = plstm.scan(
      cell, params["rnn"], inputs, mask=batch["mask"], training=training
    )
  else:
    inputs = frames(x, batch["t"], batch["mask"], frame_ms)
    carry, _ = plstm.scan(cell, params["rnn"], inputs, training=training)
  return carry.h @ params["head"]["w"] + params["head"]["b"]


def update_metrics(
  cell, frame_ms: float | None, params: dict, batch: dict
) -> dict:
  """update_fraction, updates_per_sample, updates_per_neuron,
  events_per_sample (see above)."""
  weight, mask = batch["weight"], batch["mask"].astype(jnp.float32)
  events_per_sample = jnp.sum(mask, axis=1)
  if timed(cell):
    rnn = params["rnn"]
    k = plstm.time_gate(batch["t"], rnn["tau"], rnn["shift"], rnn["r_on"])
    updates = jnp.sum((k > 0).astype(jnp.float32), axis=-1) * mask
    fraction = plstm.parallel.global_mean(
      jnp.sum(weight[:, None] * updates),
      cell.hidden_size * jnp.maximum(jnp.sum(weight * events_per_sample), 1),
    )
    per_sample = jnp.sum(updates, axis=1)
  elif frame_ms is None:  # every unit at every event
    fraction = jnp.float32(1)
    per_sample = events_per_sample * cell.hidden_size
  else:  # every unit at every frame
    fraction = jnp.float32(1)
    per_sample = jnp.full_like(weight, num_frames(frame_ms) * cell.hidden_size)
  return {
    "update_fraction": fraction,
    "updates_per_sample": jnp.mean(weight * per_sample),
    "updates_per_neuron": jnp.mean(weight * per_sample) / cell.hidden_size,
    "events_per_sample": jnp.mean(weight * events_per_sample),
  }


def make_task(config) -> Task:
  """Event-based MNIST with the cell of `config.model`; the digits are
  encoded at the first batch that needs them."""
  _check(config)
  data, frame_ms = config.data, config.data.frame_ms
  events = config.model.name == EVENT_LSTM
  if events:
    frame_ms = None
    cell = precision.with_dtype(
      models.CELLS["lstm"](config.model), config.model
    )
  else:
    cell = models.make_cell(config.model)

  def loss(params, batch, key, *, training):
    """Weighted mean cross-entropy, accuracy and the update counts."""
    del key  # The models here draw no randomness.
    scores = logits(cell, frame_ms, params, batch, training=training)
    weight = batch["weight"]
    ce = optax.softmax_cross_entropy_with_integer_labels(scores, batch["label"])
    correct = (jnp.argmax(scores, -1) == batch["label"]).astype(jnp.float32)
    loss = jnp.mean(weight * ce)
    return loss, {
      "loss": loss,
      "accuracy": jnp.mean(weight * correct),
      **update_metrics(cell, frame_ms, params, batch),
    }

  def evaluate(key, epoch):
    del key, epoch  # A fixed evaluation set keeps the curve comparable.
    return eval_batches(data)

  return Task(
    init=lambda key, _: {
      **init_params(cell, config.model.embed, key, events),
      **models.init_norm(config.model, config.model.embed),
    },
    loss=loss,
    train_batch=functools.partial(train_batch, data),
    eval_batches=evaluate,
  )
