"""Packable hyperparameters: the task of a config whose numbers are JAX
scalars (`plstm.train.packing.substitute` under `jax.vmap`, as a packed sweep
builds it) computes what the tasks of the concrete configs compute, and the
fields that set a shape or the structure refuse to trace.

PACKABLE lists, per config's `smoke` variant (with overrides), a field and
the values of two models. A config's rows are packed together, model i
taking every row's value i, and compared with the two concrete configs
(`test_packed_equals_separate`): the params at init, the training loss and
its gradients, the evaluation loss and two optimiser updates (the task's
optimiser, or the trainer's `plstm.train.optimizers.make`). Compiling is
what costs here (the three runs of a config are one program), so by
default one config per family of fields is compared (COMPARED) and the
others are only traced (`test_packs`); `-m slow` compares them too. A
failure to trace names the fields that fail alone.
"""

import functools
import importlib

import jax
import numpy as np
import optax
import pytest

import plstm
from plstm.train import optimizers, packing
from plstm.train import task as task_lib

PHASED = (
  ("model.alpha", (1e-3, 0.05)),
  ("model.r_on", (0.05, 0.2)),
  ("model.tau_range", ((2.0, 50.0), (3.0, 400.0))),
  ("model.shift_range", ((0.0, 100.0), (5.0, 20.0))),
)
DRIVER = (
  ("optimizer.learning_rate", (1e-3, 3e-2)),
  ("optimizer.clip_value", (10.0, 1e-3)),
)
LSNN = (
  ("model.tau", (20.0, 10.0)),
  ("model.thr", (0.01, 0.02)),
  ("model.dt", (1.0, 0.5)),
  ("model.tau_a", (700.0, 50.0)),
  ("model.beta", (1.8, 0.5)),
  ("model.dampening_factor", (0.3, 0.5)),
  ("model.tau_out", (20.0, 5.0)),
  ("model.reg", (0.1, 1.0)),
  ("model.reg_rate", (10.0, 50.0)),
  ("optimizer.learning_rate", (1e-2, 3e-3)),
  # The second update (count 1) decays for the first model only.
  ("optimizer.decay_every", (1, 2)),
  ("optimizer.decay_rate", (0.8, 0.3)),
)
DEEP_R = (
  ("rewiring.l1", (1e-2, 0.5)),
  ("rewiring.temperature", (0.0, 1e-4)),
)
ADADELTA = (
  ("optimizer.learning_rate", (1.0, 0.5)),
  ("optimizer.clip_value", (5.0, 1e-3)),
  ("optimizer.adadelta.rho", (0.95, 0.8)),
  ("optimizer.adadelta.eps", (1e-6, 1e-4)),
)
ADAGRAD = (
  ("optimizer.learning_rate", (0.01, 0.1)),
  ("optimizer.clip_value", (5.0, 1e-3)),
  ("optimizer.adagrad.initial_accumulator_value", (0.0, 0.1)),
  ("optimizer.adagrad.eps", (1e-6, 1e-3)),
)
ADAM = (
  ("optimizer.learning_rate", (3e-3, 1e-2)),
  ("optimizer.clip_value", (1.0, 1e-3)),
  ("optimizer.adam.b1", (0.9, 0.5)),
  ("optimizer.adam.b2", (0.999, 0.9)),
  ("optimizer.adam.eps", (1e-8, 1e-3)),
)
REWIRED = (("rewiring.connectivity", 0.3),)

# (config, overrides of its smoke variant, field, (model 0's, model 1's)).
PACKABLE = [
  *[
    (name, (), field, values)
    for name in ("adding_task", "freq_task", "freq_combo_task", "nmnist")
    for field, values in PHASED + DRIVER
  ],
  *[("smnist", (), field, values) for field, values in PHASED[:3] + DRIVER],
  ("smnist", (), "model.init_state_std", (0.1, 0.0)),
  *[
    ("smnist", (("model.name", "lstm"),), field, values)
    for field, values in (
      ("model.forget_bias", (1.0, -0.5)),
      ("model.init_state_std", (0.1, 0.0)),
    )
  ],
  (
    "smnist",
    (("model.name", "lstm"), ("optimizer.clip", "global")),
    "optimizer.clip_value",
    (1.0, 1e-3),
  ),
  ("language_model", (), "model.dropout", (0.0, 0.3)),  # 0: no dropout
  *[("language_model", (), field, values) for field, values in ADADELTA],
  *[
    ("language_model", (("optimizer.name", "adagrad"),), field, values)
    for field, values in ADAGRAD
  ],
  *[("pendulum", (), field, values) for field, values in ADAM],
  ("series", (), "optimizer.learning_rate", (0.2, 0.05)),
  *[("smnist_lsnn", (), field, values) for field, values in LSNN + DEEP_R],
  *[("store_recall", (), field, values) for field, values in LSNN],
  *[("store_recall", REWIRED, f, values) for f, values in LSNN + DEEP_R],
]

# The configs compared by default: every field family once, cheaply.
COMPARED = (
  ("adding_task", ()),
  ("language_model", ()),
  ("store_recall", ()),
)

# (config, field, a value): fields that set a shape or the structure.
STRUCTURAL = [
  ("adding_task", "model.hidden", 8),
  ("nmnist", "model.embed", 4),
  ("smnist", "model.hidden", 8),
  ("language_model", "model.hidden", (4, 4)),
  ("language_model", "model.embed", 4),
  ("pendulum", "model.hidden", (8, 8)),
  ("series", "model.hidden", 4),
  ("smnist_lsnn", "model.n_in", 80),
  ("smnist_lsnn", "model.n_regular", 6),
  ("smnist_lsnn", "model.n_adaptive", 4),
  ("smnist_lsnn", "model.n_delay", 3),
  ("smnist_lsnn", "model.n_refractory", 2),
  ("smnist_lsnn", "rewiring.connectivity", 0.3),
  ("smnist_lsnn", "rewiring.proportion_excitatory", 0.75),
  ("store_recall", "rewiring.connectivity", 0.0),
]

KEYS = task_lib.seed_keys(0)


def _config(name: str, overrides=(), values=None):
  config = importlib.import_module(f"configs.{name}").get_config("smoke")
  config.update_from_flattened_dict(dict(overrides))
  config.update_from_flattened_dict(values or {})
  return config


@functools.cache
def _batch(name: str, overrides=()):
  """The first training batch of the concrete config (packed models share
  their batches)."""
  config = _config(name, overrides)
  task = importlib.import_module(config.experiment).make_task(config)
  return task.train_batch(KEYS.data, 0)


def _run(config, values: dict, batch):
  """One model's params, losses, gradients and two optimiser updates, with
  `values` substituted into `config` (traced when `values` are)."""
  packed = packing.substitute(config, values)
  task = importlib.import_module(config.experiment).make_task(packed)
  params = task.init(KEYS.init, KEYS.structure)
  trained = plstm.trainable(params)

  def loss(t):
    merged = plstm.merge(t, params)
    return task.loss(merged, batch, KEYS.noise, training=True)

  (train_loss, _), grads = jax.value_and_grad(loss, has_aux=True)(trained)
  eval_loss, _ = task.loss(params, batch, KEYS.eval, training=False)
  if task.optimizer is None:
    tx = optimizers.make(packed.optimizer)
  else:
    tx = task.optimizer(KEYS.structure)
  # As plstm.train.steps: optax's Adam mixes its int32 count with floats.
  with jax.numpy_dtype_promotion("standard"):
    state = tx.init(trained)
    first, state = tx.update(grads, state, trained)
    second, _ = tx.update(grads, state, optax.apply_updates(trained, first))
  return params, train_loss, eval_loss, grads, first, second


def _column(values) -> np.ndarray:
  """The [K, ...] array of the models' values, as `packing.Models.values`
  makes it (int32 if all are integers, else float32)."""
  ints = np.asarray(values).dtype.kind == "i"
  return np.asarray(values, np.int32 if ints else np.float32)


def _packed(name, overrides):
  """`_run` of the config with packed values, vmapped over the models."""
  config, batch = _config(name, overrides), _batch(name, overrides)
  return jax.vmap(lambda values: _run(config, values, batch))


def _traces(name, overrides, rows, trace):
  """`trace()`; on a trace error, an AssertionError naming the fields that
  fail alone."""
  try:
    return trace()
  except packing.TRACE_ERRORS as e:
    step, failing = _packed(name, overrides), []
    for field, values in rows:
      try:
        jax.eval_shape(step, {field: _column(values)})
      except packing.TRACE_ERRORS:
        failing.append(field)
    raise AssertionError(f"{name}: {failing} do not trace: {e}") from e


def _groups():
  groups = {}
  for name, overrides, field, values in PACKABLE:
    groups.setdefault((name, overrides), []).append((field, values))
  return groups


GROUPS = _groups()


def _id(key) -> str:
  name, overrides = key
  return ",".join([name, *(f"{f}={v}" for f, v in overrides)])


def _params(keys, slow: bool = False):
  marks = pytest.mark.slow if slow else ()
  return [pytest.param(*key, id=_id(key), marks=marks) for key in keys]


OTHERS = [key for key in GROUPS if key not in COMPARED]


@pytest.mark.parametrize(
  "name, overrides",
  _params(COMPARED) + _params(OTHERS, slow=True),
)
def test_packed_equals_separate(name, overrides):
  rows = GROUPS[name, overrides]
  values = {f: _column(v) for f, v in rows}
  batch, packed = _batch(name, overrides), _packed(name, overrides)
  concrete = [
    _config(name, overrides, {f: v[i] for f, v in rows}) for i in range(2)
  ]

  # One program for the three runs: they share much of their compilation.
  @jax.jit
  def both(values):
    return packed(values), [_run(c, {}, batch) for c in concrete]

  got, expected = _traces(name, overrides, rows, lambda: both(values))
  for i in range(2):
    jax.tree.map(
      functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
      jax.tree.map(lambda x, i=i: x[i], got),
      expected[i],
    )


@pytest.mark.parametrize("name, overrides", _params(OTHERS))
def test_packs(name, overrides):
  """The configs not compared by default: their fields trace, together."""
  rows = GROUPS[name, overrides]
  values = {f: _column(v) for f, v in rows}
  step = _packed(name, overrides)
  _traces(name, overrides, rows, lambda: jax.eval_shape(step, values))


@pytest.mark.parametrize(
  "name, field, value", STRUCTURAL, ids=[f"{n}-{f}" for n, f, _ in STRUCTURAL]
)
def test_structural_field_refuses_to_trace(name, field, value):
  with pytest.raises(packing.TRACE_ERRORS):
    jax.eval_shape(_packed(name, ()), {field: _column([value] * 2)})
