"""The jitted steps of a run: init, train and eval, vmapped over its K
models (the points of a packed sweep times its seeds, `plstm.packing`).

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
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plstm import packing
from plstm import task as task_lib
from plstm.parallel import DATA, MODEL

P = jax.P


class TrainState(NamedTuple):
  """Everything a resumed run needs besides the config."""

  step: jax.Array  # int32 scalar: the number of updates applied so far
  params: Any
  opt_state: optax.OptState


def stack(trees: list):
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


# (values) -> (task, make_tx): the task and optimiser of one model, given
# its packed config values ({} for an unpacked run).
Build = Callable[
  [dict],
  tuple[task_lib.Task, Callable[[jax.Array], optax.GradientTransformation]],
]


def compile_steps(
  build: Build, models: packing.Models, mesh: jax.sharding.Mesh
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
    task, make_tx = build(v)
    params = task.init(k.init, k.structure)
    opt_state = make_tx(k.structure).init(task_lib.trainable(params))
    return TrainState(jnp.int32(0), params, opt_state)

  def train_one(state: TrainState, batch, k: task_lib.Keys, v: dict):
    task, make_tx = build(v)
    rng = device_key(jax.random.fold_in(k.noise, state.step))

    def loss(trained):
      params = task_lib.merge(trained, state.params)
      return task.loss(params, batch, rng, training=True)

    trained = task_lib.trainable(state.params)
    grads, metrics = jax.grad(loss, has_aux=True)(trained)
    grads, metrics = jax.lax.pmean((grads, metrics), DATA)
    # optax's Adam bias correction mixes its int32 count with floats, which
    # strict dtype promotion (used by the tests) rejects.
    with jax.numpy_dtype_promotion("standard"):
      updates, opt_state = make_tx(k.structure).update(
        grads, state.opt_state, trained
      )
    trained = optax.apply_updates(trained, updates)
    params = task_lib.merge(trained, state.params)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return TrainState(state.step + 1, params, opt_state), metrics

  def eval_one(params, batch, k: task_lib.Keys, v: dict) -> dict:
    task, _ = build(v)
    metrics = task.loss(params, batch, device_key(k.eval), training=False)[1]
    return jax.lax.pmean(metrics, DATA)

  def per_model(one):
    """`one` vmapped over this device's models, each given its seed's batch,
    inside a shard_map over the mesh."""

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

  init_state = jax.jit(
    lambda: jax.vmap(init_one)(keys, values), out_shardings=by_model
  )
  train_step = jax.jit(
    lambda state, batch: per_model(train_one)(
      state, batch, keys, values, seed_index
    ),
    out_shardings=(by_model, replicated),
  )
  eval_step = jax.jit(
    lambda params, batch: per_model(eval_one)(
      params, batch, keys, values, seed_index
    ),
    out_shardings=replicated,
  )
  return init_state, train_step, eval_step


def check_packable(build: Build, models: packing.Models, batch):
  """Traces one model's init, train and eval with each packed field alone
  as a JAX scalar (`batch`: one seed's), raising the one-line ValueError of
  `packing.structural_error` for a field the program needs concretely."""
  k = task_lib.seed_keys(models.seeds[0])
  values = models.values()

  def one_model(v):
    task, make_tx = build(v)
    params = task.init(k.init, k.structure)
    trained = task_lib.trainable(params)
    tx = make_tx(k.structure)

    def loss(t):
      return task.loss(task_lib.merge(t, params), batch, k.noise, training=True)

    grads, _ = jax.grad(loss, has_aux=True)(trained)
    with jax.numpy_dtype_promotion("standard"):
      tx.update(grads, tx.init(trained), trained)
    return task.loss(params, batch, k.eval, training=False)[1]

  for field in models.fields:
    try:
      jax.eval_shape(one_model, {field: values[field][0]})
    except packing.TRACE_ERRORS as e:
      raise packing.structural_error(field, e) from e
