"""The jitted steps of a run: init, train and eval, vmapped over seeds.

The train step differentiates the loss with respect to the params' floating
leaves only; integer leaves (fixed structure, e.g. the ALIF's delays) are
carried unchanged.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plstm import task as task_lib


class TrainState(NamedTuple):
  """Everything a resumed run needs besides the config."""

  step: jax.Array  # int32 scalar: the number of updates applied so far
  params: Any
  opt_state: optax.OptState


def stack(trees: list):
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def compile_steps(task: task_lib.Task, make_tx, keys, replicated):
  """The jitted (init_state(), train_step(state, batch), eval_step(params,
  batch)), each vmapped over the seeds' `keys` (stacked `Keys`), with
  replicated outputs. Integer leaves of the params are carried, not trained.
  """

  # Every function below acts on one seed.
  def init_one(k: task_lib.Keys) -> TrainState:
    params = task.init(k.init, k.structure)
    opt_state = make_tx(k.structure).init(task_lib.trainable(params))
    return TrainState(jnp.int32(0), params, opt_state)

  def train_one(state: TrainState, batch, k: task_lib.Keys):
    rng = jax.random.fold_in(k.noise, state.step)

    def loss(trained):
      params = task_lib.merge(trained, state.params)
      return task.loss(params, batch, rng, training=True)

    trained = task_lib.trainable(state.params)
    grads, metrics = jax.grad(loss, has_aux=True)(trained)
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

  def eval_one(params, batch, k: task_lib.Keys) -> dict:
    return task.loss(params, batch, k.eval, training=False)[1]

  init_state = jax.jit(
    lambda: jax.vmap(init_one)(keys), out_shardings=replicated
  )
  train_step = jax.jit(
    lambda state, batch: jax.vmap(train_one)(state, batch, keys),
    out_shardings=(replicated, replicated),
  )
  eval_step = jax.jit(
    lambda params, batch: jax.vmap(eval_one)(params, batch, keys),
    out_shardings=replicated,
  )
  return init_state, train_step, eval_step
