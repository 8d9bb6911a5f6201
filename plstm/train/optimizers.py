"""The trainer's one optimiser schema: `config.optimizer` of every config.

`make(config)` builds an optax chain (clipping, then SGD, AdaGrad, AdaDelta
or Adam, with an optional staircase learning-rate decay) from the ConfigDict
of `default_config(name)`, whose defaults are theano_lstm's
`create_optimization_updates` (max_norm 5, lr 0.01, eps 1e-6, rho 0.95).
A task that adds a transform of its own (DEEP R) chains it after
`make(config)` with the same `learning_rate(config)`.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from plstm.cell import is_traced

Array = jax.Array

# The original's lr (AdaDelta has none: 1.0 leaves its step as written);
# Adam is not in the original, so it gets Kingma & Ba's 1e-3.
_LEARNING_RATES = {"sgd": 0.01, "adagrad": 0.01, "adadelta": 1.0, "adam": 1e-3}
_CLIPS = ("none", "tensor", "global", "elementwise")


def default_config(
  name: str = "adadelta", **fields
) -> ml_collections.ConfigDict:
  """The optimiser config, with the original's defaults, for `name`, and
  `fields` set over them (`default_config("adam", learning_rate=3e-3)`).

  Fields (each number a float, or a JAX scalar in a packed sweep, which
  `make` does not check):
    name: sgd | adagrad | adadelta | adam.
    learning_rate: the original's default for `name`; set it again when
      changing `name` on the command line.
    clip: none | tensor (the original: each tensor's L2 norm) | global (one
      norm over all tensors) | elementwise (each entry to [-v, v]).
    clip_value: max_norm for tensor and global, v for elementwise.
    decay_every, decay_rate: the learning rate times decay_rate **
      floor(step / decay_every), the LSNN tutorials' staircase decay; 0 and
      1.0 (no decay) here.
    adadelta.rho, adadelta.eps: 0.95 and 1e-6 (optax's rho is 0.9).
    adagrad.initial_accumulator_value, adagrad.eps: 0 and 1e-6 (optax's are
      0.1 and 1e-7).
    adam.b1, adam.b2, adam.eps: optax's 0.9, 0.999, 1e-8.

  The dict is locked: a mistyped field raises at once.
  """
  if name not in _LEARNING_RATES:
    raise _unknown("name", name, tuple(_LEARNING_RATES))
  config = ml_collections.ConfigDict()
  config.name = name
  config.learning_rate = _LEARNING_RATES[name]
  config.clip = "tensor"
  config.clip_value = 5.0
  config.decay_every = 0
  config.decay_rate = 1.0
  config.adadelta = ml_collections.ConfigDict({"rho": 0.95, "eps": 1e-6})
  config.adagrad = ml_collections.ConfigDict(
    {"initial_accumulator_value": 0.0, "eps": 1e-6}
  )
  config.adam = ml_collections.ConfigDict({"b1": 0.9, "b2": 0.999, "eps": 1e-8})
  config.lock()
  config.update(fields)
  return config


def _unknown(field: str, value: str, choices: tuple[str, ...]) -> ValueError:
  return ValueError(
    f"optimizer.{field} must be one of {', '.join(choices)}; got {value!r}."
  )


def clip_by_tensor_norm(
  max_norm: float | Array, eps: float = 1e-6
) -> optax.GradientTransformation:
  r"""theano_lstm's clipping: each tensor's gradient rescaled by its own norm.

  .. math::
    g \leftarrow g \, \frac{\min(m, \|g\|_2)}{\|g\|_2 + \epsilon}

  with m = max_norm (a float or a JAX scalar), for every leaf g separately
  (not one global norm).
  Below max_norm this still shrinks g by \|g\| / (\|g\| + eps), as the
  original does.

  optax has no exact match (`clip_by_block_rms` uses the RMS, not the norm,
  and no eps), so this is `optax.stateless_with_tree_map` of the formula.
  """

  def clip(g: Array, _) -> Array:
    norm = jnp.sqrt(jnp.sum(jnp.square(g)))
    return g * (jnp.minimum(max_norm, norm) / (norm + eps))

  return optax.stateless_with_tree_map(clip)


def _clipping(config) -> optax.GradientTransformation | None:
  if config.clip not in _CLIPS:
    raise _unknown("clip", config.clip, _CLIPS)
  if config.clip == "none":
    return None
  if not is_traced(config.clip_value) and config.clip_value <= 0:
    raise ValueError(
      f"optimizer.clip_value must be positive with clip={config.clip!r}; got "
      f"{config.clip_value}."
    )
  if config.clip == "tensor":
    return clip_by_tensor_norm(config.clip_value)
  if config.clip == "global":
    return optax.clip_by_global_norm(config.clip_value)
  return optax.clip(config.clip_value)


def make(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  r"""The optimiser of `config` (see `default_config`), after its clipping.

  Update rules with accumulators starting at 0 (theano_lstm, spec §3.5):

  .. math::
    \text{sgd:}\quad & \theta \leftarrow \theta - \eta g \\
    \text{adagrad:}\quad & G \leftarrow G + g^2, \quad
      \theta \leftarrow \theta - \eta g / \sqrt{G + \epsilon} \\
    \text{adadelta:}\quad & E_g \leftarrow \rho E_g + (1 - \rho) g^2, \quad
      \Delta = -\sqrt{(E_x + \epsilon) / (E_g + \epsilon)} \, g, \\
      & E_x \leftarrow \rho E_x + (1 - \rho) \Delta^2, \quad
      \theta \leftarrow \theta + \eta \Delta

  which are optax's `sgd`, `adagrad` and `adadelta` with the config's knobs
  (optax's AdaGrad skips entries whose G is still 0, where g is 0 anyway).
  Adam is optax's `adam`. eta is `learning_rate(config)`. Every number of
  `config` may be a JAX scalar (a packed sweep's).

  Notes:
    The original's AdaDelta has no learning rate (eta = 1 here) and it takes
    SGD for any unknown method name; here an unknown name raises. Its
    elementwise clipping (`GradClip`) bounds the backprop messages at layer
    inputs; `clip="elementwise"` bounds the parameter gradients instead.
  """
  name, lr = config.name, learning_rate(config)
  if name == "sgd":
    tx = optax.sgd(lr)
  elif name == "adagrad":
    tx = optax.adagrad(
      lr,
      initial_accumulator_value=config.adagrad.initial_accumulator_value,
      eps=config.adagrad.eps,
    )
  elif name == "adadelta":
    tx = optax.adadelta(lr, rho=config.adadelta.rho, eps=config.adadelta.eps)
  elif name == "adam":
    tx = optax.adam(
      lr, b1=config.adam.b1, b2=config.adam.b2, eps=config.adam.eps
    )
  else:
    raise _unknown("name", name, tuple(_LEARNING_RATES))
  clipping = _clipping(config)
  return tx if clipping is None else optax.chain(clipping, tx)


def learning_rate(config) -> float | Array | optax.Schedule:
  """The learning rate of `config`: `config.learning_rate`, or its staircase
  decay, lr x decay_rate ** floor(step / decay_every), when decay_every > 0
  and decay_rate != 1 (optax's staircase `exponential_decay`; where either
  is traced, its constant cases, decay_every <= 0 or decay_rate == 0, are
  `jnp.where`s)."""
  lr, every, rate = config.learning_rate, config.decay_every, config.decay_rate
  if not is_traced(every, rate):
    if every <= 0 or rate == 1:
      return lr
    return optax.exponential_decay(lr, every, rate, staircase=True)

  def schedule(count):
    count = jnp.asarray(count, jnp.float32)
    p = jnp.floor(count / jnp.asarray(every, jnp.float32))
    decayed = jnp.where(count <= 0, lr, lr * jnp.power(rate, p))
    return jnp.where((every <= 0) | (rate == 0), lr, decayed)

  return schedule
