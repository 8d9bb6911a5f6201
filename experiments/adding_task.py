"""The adding problem (Hochreiter & Schmidhuber 1997) at long T.

Each sequence has T = `config.data.seq_len` steps of two features, a value
and a marker that flags exactly two steps; the target is the sum of the two
flagged values. Per sample:

  v_t ~ U(0, 1) for t = 0, ..., T - 1;
  a ~ U{0, ..., T//2 - 1},  b ~ U{T//2, ..., T - 1},  m_t = [t = a] + [t = b];
  x [T, 2] = (v_t, m_t),  y = v_a + v_b in [0, 2],
  timestamps t = 0, 1, ..., T - 1 (the step index) for the time gate.

`config.data.form = "paper"` is the setting of Neil, Pfeiffer & Liu (2016)
as recalled (not checked against its text, see `configs/adding_task.py`):
per sample a length n ~ U{T - jitter, ..., T + jitter}, values
v_t ~ U(-0.5, 0.5), a ~ U{0, ..., ceil(n / 10) - 1} (the first 10%),
b ~ U{floor(n / 2), ..., n - 1} (the last half), y = v_a + v_b in [-1, 1];
sequences are left-padded to T + jitter with a mask (padding leaves the
carry unchanged), timestamps 0, ..., n - 1. Predicting E[y] = 0 gives MSE
2/12 ~ 0.167 here too.

Models (`config.model.name`, any cell of task 1,
`experiments.common.models.CELLS`):
  plstm: Phased LSTM on x, with the step index driving the time gate;
  lstm:  peephole LSTM on x alone (bn_lstm: on batch-normalised x).
The last step's h goes through Dense(1) to the prediction; the loss and the
headline metric "mse" are the mean squared error. Predicting the mean
E[y] = 1 gives MSE Var(y) = 2/12 ~ 0.167; a model must get well below this
to have learned anything.

Notes:
  This is the formulation of Le et al. (2015) and Arjovsky et al. (2016), not
  Hochreiter & Schmidhuber's original, which has values in [-1, 1], lengths
  in [T, 1.1 T], the first marker among the first ten steps and the second
  among the first T/2 - 1, -1 markers on the first and last steps, and the
  target 0.5 + (v_a + v_b) / 4 (correct if the error is below 0.04; here
  the error is reported as the MSE instead of that fraction).
  The LSTM gets no time feature: sampling is regular, and the markers, not
  the time, say which values count. The Phased LSTM paper's adding-task
  architecture and settings are not in our reference (no code was
  released), so the ones here (see `configs/adding_task.py`) are our choice.
"""

import functools

import jax
import jax.numpy as jnp

import plstm
from experiments.common import models
from plstm.cell import timed
from plstm.train.task import Task, fresh_batches

FORMS = ("le", "paper")  # Le et al. (2015); Neil et al. (2016) as recalled


@functools.partial(jax.jit, static_argnames=("batch_size", "seq_len"))
def sample(key: jax.Array, batch_size: int, seq_len: int) -> dict:
  """One batch: x [B, T, 2] (value, marker), t [B, T], target [B]."""
  k_v, k_a, k_b = jax.random.split(key, 3)
  half = seq_len // 2
  values = jax.random.uniform(k_v, (batch_size, seq_len))
  first = jax.random.randint(k_a, (batch_size, 1), 0, half)
  second = jax.random.randint(k_b, (batch_size, 1), half, seq_len)
  steps = jnp.arange(seq_len)
  marker = (steps == first) | (steps == second)
  return {
    "x": jnp.stack([values, marker.astype(jnp.float32)], axis=-1),
    "t": jnp.broadcast_to(steps.astype(jnp.float32), (batch_size, seq_len)),
    "target": jnp.sum(jnp.where(marker, values, 0.0), axis=1),
  }


@functools.partial(jax.jit, static_argnames=("batch_size", "seq_len", "jitter"))
def sample_paper(
  key: jax.Array, batch_size: int, seq_len: int, jitter: int
) -> dict:
  """One batch of the paper's form (module docstring): x [B, L, 2] (value,
  marker), t [B, L], mask [B, L] bool, target [B], L = seq_len + jitter."""
  k_n, k_v, k_a, k_b = jax.random.split(key, 4)
  longest = seq_len + jitter
  n = jax.random.randint(k_n, (batch_size, 1), seq_len - jitter, longest + 1)
  pad = longest - n  # real steps are pad, ..., longest - 1
  u = functools.partial(jax.random.uniform, shape=(batch_size, 1))
  first = jnp.floor(u(k_a) * jnp.ceil(n / 10)).astype(jnp.int32)
  half = n // 2
  rest = (n - half).astype(jnp.float32)
  second = half + jnp.floor(u(k_b) * rest).astype(jnp.int32)
  steps = jnp.arange(longest)
  mask = steps >= pad
  values = jax.random.uniform(
    k_v, (batch_size, longest), minval=-0.5, maxval=0.5
  )
  values = jnp.where(mask, values, 0.0)
  marker = (steps == pad + first) | (steps == pad + second)
  return {
    "x": jnp.stack([values, marker.astype(jnp.float32)], axis=-1),
    "t": jnp.where(mask, steps - pad, 0).astype(jnp.float32),
    "mask": mask,
    "target": jnp.sum(jnp.where(marker, values, 0.0), axis=1),
  }


def init_params(cell, key: jax.Array) -> dict:
  """Params {"rnn", "head": {"w" [H, 1], "b" [1]}} of the regressor."""
  k_rnn, k_head = jax.random.split(key)
  return {
    "rnn": cell.init(k_rnn, 2),
    "head": {
      "w": jax.nn.initializers.glorot_uniform()(
        k_head, (cell.hidden_size, 1), jnp.float32
      ),
      "b": jnp.zeros((1,), jnp.float32),
    },
  }


def predict(cell, params: dict, batch: dict, *, training: bool):
  """The predicted sums [B], from the last step of the recurrent layer.

  A timed cell (the Phased LSTM) gets the step index for its time gate; an
  untimed one reads (value, marker) alone, with no time feature.
  """
  x = models.normalise(params, batch["x"], batch.get("mask"))
  inputs = (x, batch["t"]) if timed(cell) else x
  _, h = plstm.scan(
    cell, params["rnn"], inputs, mask=batch.get("mask"), training=training
  )
  head = params["head"]
  return (h[:, -1] @ head["w"] + head["b"])[:, 0]


def loss_fn(cell, params: dict, batch: dict, key: jax.Array, *, training):
  """The mean squared error, and {"loss", "mse"} (the same number) for one
  batch; `key` is unused (the models draw no randomness)."""
  del key
  error = predict(cell, params, batch, training=training) - batch["target"]
  mse = jnp.mean(error**2)
  return mse, {"loss": mse, "mse": mse}


def make_task(config) -> Task:
  """The adding problem of `config`: fresh batches of T =
  `config.data.seq_len` steps, the regressor of `config.model`."""
  d = config.data
  if d.seq_len < 2:
    raise ValueError(
      "config.data.seq_len must be at least 2 (a marker in each half), got "
      f"{d.seq_len}."
    )
  if d.form not in FORMS:
    raise ValueError(
      f"config.data.form must be one of {FORMS}, got {d.form!r}."
    )
  if d.form == "paper" and not 0 <= d.jitter <= d.seq_len - 20:
    raise ValueError(
      f"config.data.jitter must be in [0, seq_len - 20] (each sequence "
      f"at least 20 steps), got {d.jitter} with seq_len {d.seq_len}."
    )
  cell = models.make_cell(config.model)

  def draw(key):
    if d.form == "paper":
      return sample_paper(key, d.batch_size, d.seq_len, d.jitter)
    return sample(key, d.batch_size, d.seq_len)

  train_batch, eval_batches = fresh_batches(draw, d.eval_size, d.batch_size)

  return Task(
    init=lambda key, _: {
      **init_params(cell, key),
      **models.init_norm(config.model, 2),
    },
    loss=functools.partial(loss_fn, cell),
    train_batch=train_batch,
    eval_batches=eval_batches,
  )
