"""The jitted steps of a run: init, train and eval, vmapped over its K
models (the points of a packed sweep times its seeds, `plstm.train.packing`).

The state of every model lives on a leading model axis, split over the
mesh's 'model' devices; each batch, one per seed ([S, B, ...]), is split
over its 'data' devices by rows. Inside a `jax.shard_map` each device
differentiates its models' losses on its rows, and the gradients and
metrics are averaged over the data axis once per step (`lax.pmean`).
Randomness inside the loss is drawn per device: with several data devices
the step's key is folded with the device's index on that axis.

The train step differentiates the loss with respect to the params' floating
leaves only; integer leaves (fixed structure, e.g. the ALIF's delays) are
carried unchanged.

A packed value reaches its model by one route, `model_of`: the model's
values ({field: JAX scalar} inside the vmapped step) are substituted into
the config (`packing.substitute`), and the experiment's `make_task`,
imported once, builds the model's task and optimiser from that config.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plstm.cell import merge, trainable
from plstm.parallel import DATA, MODEL
from plstm.train import optimizers, packing
from plstm.train import task as task_lib

P = jax.P


class TrainState(NamedTuple):
  """Everything a resumed run needs besides the config."""

  step: jax.Array  # int32 scalar: the number of updates applied so far
  params: Any
  opt_state: optax.OptState


def stack(trees: list):
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


class Model(NamedTuple):
  """One model of a run: its task, and its optimiser from the structure key
  (the task's own, else `optimizers.make(config.optimizer)`)."""

  task: task_lib.Task
  optimizer: Callable[[jax.Array], optax.GradientTransformation]


def model_of(
  config, make_task: Callable[[Any], task_lib.Task]
) -> Callable[[dict], Model]:
  """The function from a model's packed values to its `Model`: that of
  `config` with `values` substituted, or of `config` itself (built here,
  once) for no values."""

  def of(model_config) -> Model:
    task = make_task(model_config)
    return Model(
      task,
      task.optimizer or (lambda _: optimizers.make(model_config.optimizer)),
    )

  concrete = of(config)

  def model(values: dict) -> Model:
    return of(packing.substitute(config, values)) if values else concrete

  return model


def compile_steps(
  model: Callable[[dict], Model],
  models: packing.Models,
  mesh: jax.sharding.Mesh,
):
  """The jitted (init_state(), train_step(state, batch), eval_step(params,
  batch)) of `models` on `mesh`: state leaves [K, ...] split over the model
  axis, batches [S, B, ...] (one per seed) split over the data axis, and
  metrics [K] replicated.
  """
  keys = stack([task_lib.seed_keys(s) for s in models.model_seeds])
  values = models.values()
  seed_index = jnp.asarray(models.seed_index)
  by_model = jax.NamedSharding(mesh, P(MODEL))
  replicated = jax.NamedSharding(mesh, P())
  split = mesh.shape[DATA] > 1

  def device_key(key):
    """`key` folded with this device's index on the data axis, if split."""
    return jax.random.fold_in(key, jax.lax.axis_index(DATA)) if split else key

  # Every function below acts on one model.
  def init_one(k: task_lib.Keys, v: dict) -> TrainState:
    task, make_tx = model(v)
    params = task.init(k.init, k.structure)
    opt_state = make_tx(k.structure).init(trainable(params))
    return TrainState(jnp.int32(0), params, opt_state)

  def train_one(state: TrainState, batch, k: task_lib.Keys, v: dict):
    task, make_tx = model(v)
    rng = device_key(jax.random.fold_in(k.noise, state.step))

    def loss(trained):
      params = merge(trained, state.params)
      return task.loss(params, batch, rng, training=True)

    trained = trainable(state.params)
    grads, metrics = jax.grad(loss, has_aux=True)(trained)
    grads, metrics = jax.lax.pmean((grads, metrics), DATA)
    # optax's Adam bias correction mixes its int32 count with floats, which
    # strict dtype promotion (used by the tests) rejects.
    with jax.numpy_dtype_promotion("standard"):
      updates, opt_state = make_tx(k.structure).update(
        grads, state.opt_state, trained
      )
    trained = optax.apply_updates(trained, updates)
    params = merge(trained, state.params)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return TrainState(state.step + 1, params, opt_state), metrics

  def eval_one(params, batch, k: task_lib.Keys, v: dict) -> dict:
    task = model(v).task
    metrics = task.loss(params, batch, device_key(k.eval), training=False)[1]
    return jax.lax.pmean(metrics, DATA)

  init_state = jax.jit(
    lambda: jax.vmap(init_one)(keys, values), out_shardings=by_model
  )
  train_step = jax.jit(
    lambda state, batch: _per_model(train_one, mesh)(
      state, batch, keys, values, seed_index
    ),
    out_shardings=(by_model, replicated),
  )
  eval_step = jax.jit(
    lambda params, batch: _per_model(eval_one, mesh)(
      params, batch, keys, values, seed_index
    ),
    out_shardings=replicated,
  )
  return init_state, train_step, eval_step


def _per_model(one, mesh: jax.sharding.Mesh):
  """`one` vmapped over this device's models, each given its seed's batch,
  inside a shard_map over `mesh`."""

  def local(tree, batch, keys, values, seed_index):
    batches = jax.tree.map(lambda x: x[seed_index], batch)
    return jax.vmap(one)(tree, batches, keys, values)

  model = P(MODEL)
  return jax.shard_map(
    local,
    mesh=mesh,
    in_specs=(model, P(None, DATA), model, model, model),
    out_specs=model,
    check_vma=False,
  )


def check_packable(
  model: Callable[[dict], Model], models: packing.Models, batch
):
  """Traces one model's init, train and eval with each packed field alone
  as a JAX scalar (`batch`: one seed's), raising the one-line ValueError of
  `packing.structural_error` for a field the program needs concretely."""
  k = task_lib.seed_keys(models.seeds[0])
  values = models.values()

  def one_model(v):
    task, make_tx = model(v)
    params = task.init(k.init, k.structure)
    trained = trainable(params)
    tx = make_tx(k.structure)

    def loss(t):
      return task.loss(merge(t, params), batch, k.noise, training=True)

    grads, _ = jax.grad(loss, has_aux=True)(trained)
    with jax.numpy_dtype_promotion("standard"):
      tx.update(grads, tx.init(trained), trained)
    return task.loss(params, batch, k.eval, training=False)[1]

  for field in models.fields:
    try:
      jax.eval_shape(one_model, {field: values[field][0]})
    except packing.TRACE_ERRORS as e:
      raise packing.structural_error(field, e) from e
