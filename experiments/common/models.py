"""The models of the Phased LSTM experiments, from `config.model`.

`make_cell` gives the cell that `CELLS` maps `config.model.name` to: the
Phased LSTM (`plstm`) or its LSTM baselines (`lstm`, `bn_lstm`, peephole
LSTMs initialised as the official Lasagne baselines, bn_lstm's inputs
batch-normalised by `normalise`);
`inputs` feeds a cell the timestamps as it consumes them (the time gate's
t, or a feature); `init_classifier` and `classifier_loss` are the official
`get_rnn` classifier: the last step -> Dense(classes, leaky ReLU) ->
softmax.
"""

import jax
import jax.numpy as jnp
import optax

import plstm
from experiments.common import precision
from plstm.cell import timed


def phased_lstm(model) -> plstm.PhasedLSTM:
  """The Phased LSTM of `model` (a config's `model` block), the paper's."""
  return plstm.PhasedLSTM(
    model.hidden,
    peepholes=model.peepholes,
    alpha=model.alpha,
    r_on=model.r_on,
    train_r_on=model.train_r_on,
    tau_range=tuple(model.tau_range),
    shift_range=tuple(model.shift_range),
  )


def lasagne_lstm(model) -> plstm.LSTM:
  """The LSTM of `model` as the official baselines set up Lasagne's
  LSTMLayer: N(0, 0.1) weights, forget bias 0, input bias -0.1."""
  normal = jax.nn.initializers.normal(0.1)
  return plstm.LSTM(
    model.hidden,
    peepholes=model.peepholes,
    forget_bias=0.0,
    input_bias=-0.1,
    kernel_init=normal,
    recurrent_kernel_init=normal,
  )


# `config.model.name` -> the cell of a config's `model` block, for every
# Phased LSTM experiment: a new cell runs in all of them once it is here.
# bn_lstm is the LSTM on batch-normalised inputs (`normalise`).
CELLS = {"plstm": phased_lstm, "lstm": lasagne_lstm, "bn_lstm": lasagne_lstm}


def make_cell(model):
  """The recurrent cell of `model` (a config's `model` block), computing
  its products in `model.dtype`."""
  if model.name not in CELLS:
    raise ValueError(
      f"config.model.name must be one of {tuple(CELLS)}, got {model.name!r}."
    )
  return precision.with_dtype(CELLS[model.name](model), model)


def input_size(cell, features: int) -> int:
  """The cell's I for `features` features besides t."""
  return features if timed(cell) else features + 1


def inputs(cell, x: jax.Array, t: jax.Array):
  """`(x [B, T, I], t [B, T])` for a timed cell, else [x, t] [B, T, I + 1]
  (the raw time as one more feature)."""
  if timed(cell):
    return x, t
  return jnp.concatenate([x, t[..., None].astype(x.dtype)], axis=-1)


def batch_norm(
  params: dict, x: jax.Array, mask: jax.Array, eps: float = 1e-4
) -> jax.Array:
  """Normalises each feature of x [B, T, I] over the real steps of B and T
  (of the whole batch, when its rows are split over devices)."""
  w = mask[..., None].astype(x.dtype)
  count = plstm.parallel.data_sum(jnp.sum(w, axis=(0, 1)))
  mean = plstm.parallel.data_sum(jnp.sum(w * x, axis=(0, 1))) / count
  var = plstm.parallel.data_sum(jnp.sum(w * (x - mean) ** 2, axis=(0, 1)))
  var = var / count
  return (x - mean) * jax.lax.rsqrt(var + eps) * params["scale"] + params[
    "bias"
  ]


def init_norm(model, size: int) -> dict:
  """{"bn": {"scale", "bias"} [size]} for bn_lstm's input batch norm, else
  {}."""
  if model.name != "bn_lstm":
    return {}
  return {
    "bn": {
      "scale": jnp.ones((size,), jnp.float32),
      "bias": jnp.zeros((size,), jnp.float32),
    }
  }


def normalise(params: dict, x: jax.Array, mask: jax.Array | None):
  """x [B, T, I] batch-normalised (`batch_norm`, over the real steps of
  mask [B, T]; None: every step) if the params hold "bn" (`init_norm`'s,
  bn_lstm's), else x."""
  if "bn" not in params:
    return x
  if mask is None:
    mask = jnp.ones(x.shape[:2], bool)
  return batch_norm(params["bn"], x, mask)


def init_classifier(
  model, cell, key: jax.Array, features: int, classes: int
) -> dict:
  """Params {"rnn", "head"} (+ "bn" for bn_lstm) of the classifier of
  `features` input features besides t."""
  size = input_size(cell, features)
  k_rnn, k_head = jax.random.split(key)
  params = {
    "rnn": cell.init(k_rnn, size),
    "head": {
      "w": jax.nn.initializers.glorot_uniform()(
        k_head, (model.hidden, classes), jnp.float32
      ),
      "b": jnp.zeros((classes,), jnp.float32),
    },
  }
  return {**params, **init_norm(model, size)}


def logits(model, cell, params: dict, batch: dict, *, training: bool):
  """Class scores [B, classes] from the last step of the recurrent layer,
  for a batch of x [B, T, I], t [B, T] and mask [B, T]."""
  x = normalise(params, inputs(cell, batch["x"], batch["t"]), batch["mask"])
  _, h = plstm.scan(
    cell, params["rnn"], x, mask=batch["mask"], training=training
  )
  head = params["head"]
  return jax.nn.leaky_relu(h[:, -1] @ head["w"] + head["b"], 0.01)


def classifier_loss(
  model, cell, params: dict, batch: dict, key: jax.Array, *, training: bool
):
  """Mean cross-entropy and {"loss", "accuracy"} for one batch (`label`
  [B] int); `key` is unused (the models draw no randomness)."""
  del key
  scores = logits(model, cell, params, batch, training=training)
  loss = optax.softmax_cross_entropy_with_integer_labels(
    scores, batch["label"]
  ).mean()
  accuracy = jnp.mean(jnp.argmax(scores, -1) == batch["label"])
  return loss, {"loss": loss, "accuracy": accuracy}
