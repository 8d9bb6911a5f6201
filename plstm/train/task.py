"""The experiment contract: a `Task` of pure functions, and a seed's `Keys`.

An experiment is a module with one function, `make_task(config) -> Task`,
that builds its functions once from the config (as optax builds a
`GradientTransformation`). `plstm.train` runs any task:

  make_task = experiment(config)             # config.experiment's
  task = make_task(config)
  keys = seed_keys(seed)                     # one root key per seed
  params = task.init(keys.init, keys.structure)
  batch = task.train_batch(keys.data, step)  # a pure function of the step
  loss, metrics = task.loss(params, batch, fold_in(keys.noise, step),
                            training=True)

Randomness comes only from the keys passed in: a task never reads
`config.seed`, so seeds trained together (`config.num_seeds`) draw
independent streams for every purpose.

Params may hold integer arrays: fixed structure drawn at init (e.g. the
ALIF's synaptic delays), which checkpoints carry and the driver never
trains (`plstm.trainable`, `plstm.merge`).

In a packed sweep (`plstm.train.packing`) `make_task` also runs inside the
compiled step, on a config whose packed numbers are JAX scalars: a task
computes with them (`plstm.cell.is_traced` guards its checks) and reads the
shapes and branches of the program from the config's other fields.
"""

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

Array = jax.Array


class Keys(NamedTuple):
  """One seed's PRNG keys, split from its root key by purpose."""

  init: Array  # params
  structure: Array  # fixed random structure: delays, neuron signs, DEEP R
  data: Array  # training batches (with the step)
  eval: Array  # evaluation batches (with the epoch), and the eval loss
  noise: Array  # randomness inside the training loss (with the step)


def seed_keys(seed: int) -> Keys:
  """The keys of `seed`: its root key `jax.random.key(seed)` split five
  ways, so no purpose of one seed shares a stream with another seed's."""
  return Keys(*jax.random.split(jax.random.key(seed), len(Keys._fields)))


class Task(NamedTuple):
  """An experiment's pure functions, built once by `make_task(config)`.

  Attributes:
    init: (key, structure_key) -> params.
    loss: (params, batch, key, *, training) -> (scalar loss, metrics), the
      metrics a dict of scalars that holds the config's headline metric
      (`config.metric`).
    train_batch: (data_key, step) -> the batch of training step `step`
      (from 0); a pure function of its arguments, so that a resumed run
      sees the batches an uninterrupted one would.
    eval_batches: (eval_key, epoch) -> the evaluation batches of `epoch`.
    optimizer: structure_key -> the optimiser (a key for transforms that
      draw, such as `plstm.deep_r`); None: the trainer's optimiser of
      `config.optimizer` (`plstm.train.optimizers.make`).
    plot: (params, workdir) -> None, drawing the task's figures at the end
      of a run from the first seed's params; optional.
  """

  init: Callable[[Array, Array], Any]
  loss: Callable[..., tuple[Array, dict[str, Array]]]
  train_batch: Callable[[Array, int], Any]
  eval_batches: Callable[[Array, int], Sequence[Any]]
  optimizer: Callable[[Array], optax.GradientTransformation] | None = None
  plot: Callable[[Any, Path], None] | None = None


def experiment(config) -> Callable[[Any], Task]:
  """The `make_task` of the module named by `config.experiment` (a dotted
  path), imported once, or a one-line error if there is no such module."""
  name = config.experiment
  try:
    module = importlib.import_module(name)
  except ModuleNotFoundError as e:
    if not name.startswith(e.name or "?"):
      raise  # a dependency of the experiment is missing
    raise ValueError(
      f"config.experiment: no module {name!r}; run from the repository root "
      "(or put it on PYTHONPATH)."
    ) from None
  return module.make_task


def fresh_batches(
  sample: Callable[[Array], Any], eval_size: int, batch_size: int
) -> tuple[Callable[[Array, int], Any], Callable[[Array, int], list]]:
  """`(train_batch, eval_batches)` for a task that draws every batch afresh
  with `sample(key)`: one per step, and ceil(eval_size / batch_size) per
  epoch, each from the passed key folded with the step or epoch.

  Raises:
    ValueError: `eval_size` (config.data.eval_size) is below 1.
  """
  if eval_size < 1:
    raise ValueError(
      f"config.data.eval_size must be >= 1 (the validation examples drawn "
      f"each epoch), got {eval_size}."
    )
  n_eval = -(-eval_size // batch_size)

  def train_batch(key: Array, step: int):
    return sample(jax.random.fold_in(key, step))

  def eval_batches(key: Array, epoch: int) -> list:
    keys = jax.random.split(jax.random.fold_in(key, epoch), n_eval)
    return [sample(k) for k in keys]

  return train_batch, eval_batches


def numpy_rng(key: Array, *path: int) -> np.random.Generator:
  """A NumPy generator seeded by `key` folded with each of `path` in turn,
  for data made on the host (a shuffle per epoch: `numpy_rng(key, epoch)`).
  """
  for p in path:
    key = jax.random.fold_in(key, p)
  return np.random.default_rng(np.asarray(jax.random.key_data(key)))
