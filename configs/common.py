"""The driver's config fields and their defaults, shared by configs/*.py.

Every config in configs/ builds on this module (run from the repository
root, where `configs` and `experiments` are importable). `plstm.train` reads
these top-level fields of a config:

  experiment: the experiment module, a dotted path (`experiments.freq_task`),
    whose `make_task(config)` gives the `plstm.train.task.Task`.
  metric, mode: the headline validation metric (`accuracy`, `mse`, ...) and
    its direction, `max` if higher is better, `min` if lower is.
  seed: the first seed; 0 here.
  num_seeds: seeds seed, ..., seed + num_seeds - 1 train together in one
    program; 1 here.
  pack: a packed sweep (`plstm.train.packing`), a JSON object of config
    fields to lists of values whose points (x seeds) train together in one
    program, e.g. '{"optimizer.learning_rate": [1e-3, 3e-3]}'; '' (none) here.
  steps_per_epoch: updates between two evaluations.
  num_epochs: evaluations; the run makes num_epochs * steps_per_epoch updates.
  target: results.json gives the first step whose validation metric
    reaches it (at least it for `max`, at most for `min`).
  log_every, checkpoint_every: steps between two logged metrics, between two
    checkpoints.
  keep_checkpoints: how many checkpoints orbax keeps.
  progress_bar: a tqdm bar on process 0; True here.
  early_stop (optional): `metric`, `window`, `below` (see `plstm.train`).

and `optimizer`, the trainer's one optimiser schema
(`plstm.train.optimizers.default_config`); of the rest, `model.name` (in
the plot's title) and `data.batch_size` (split over the devices). `base`
sets the fields that have a default; each config sets the others, its
`model` and its `data` itself.
Every config file takes a variant, one of `VARIANTS`: `small` (CPU-sized,
the default), `paper` (the paper's setting) or `smoke` (seconds, for the
tests).
"""

import os
from pathlib import Path

import ml_collections

VARIANTS = ("small", "paper", "smoke")
# `config.model.dtype` of the Phased LSTM and LSNN configs: the computation
# dtype of the cells' matrix products, "float32" or "bfloat16" (params,
# carries and the rest of the maths stay float32; see `plstm.cell`).
DTYPE = "float32"


def check_variant(path: str | os.PathLike, variant: str) -> None:
  """Raises a ValueError naming the config file `path` (its `__file__`) and
  the valid variants if `variant` is not one of `VARIANTS`."""
  if variant not in VARIANTS:
    path = Path(path)
    raise ValueError(
      f"{path.parent.name}/{path.name}: unknown variant {variant!r}; use "
      f"{', '.join(VARIANTS[:-1])} or {VARIANTS[-1]}."
    )


def base(
  experiment: str, metric: str = "accuracy", mode: str = "max"
) -> ml_collections.ConfigDict:
  """A config of `experiment` (a module path) with the driver's defaults:
  its headline `metric` and `mode`, seed 0, a single seed, a progress bar."""
  config = ml_collections.ConfigDict()
  config.experiment = experiment
  config.metric = metric
  config.mode = mode
  config.seed = 0
  config.num_seeds = 1
  config.pack = ""
  config.progress_bar = True
  return config


def phased_lstm_model(
  *,
  name: str,
  hidden: int,
  tau_range: tuple[float, float],
  shift_range: tuple[float, float],
  train_r_on: bool = True,
) -> ml_collections.ConfigDict:
  """`config.model` for the Phased LSTM experiments' cells
  (`experiments.common.models.make_cell`): `name` plstm (`plstm.PhasedLSTM`) or
  one of its LSTM baselines, with `hidden` units.

  The Phased LSTM's settings are those of Neil, Pfeiffer & Liu (2016):
  leak alpha = 1e-3 in the closed phase (training only), open ratio
  r_on = 0.05 (trained unless `train_r_on` is False), periods tau
  log-uniform in `tau_range` and phase shifts uniform in `shift_range`. Both
  the Phased LSTM and the LSTMs have peepholes, as in the paper. `dtype`
  (`DTYPE`) is the computation dtype of the cells' matrix products.
  """
  config = ml_collections.ConfigDict()
  config.name = name
  config.hidden = hidden
  config.peepholes = True
  config.alpha = 1e-3
  config.r_on = 0.05
  config.train_r_on = train_r_on
  config.tau_range = tau_range
  config.shift_range = shift_range
  config.dtype = DTYPE
  return config


def smoke(
  config: ml_collections.ConfigDict,
  *,
  steps_per_epoch: int = 3,
  num_epochs: int = 2,
  log_every: int = 2,
  checkpoint_every: int = 3,
) -> None:
  """Shortens `config`'s run to `num_epochs` epochs of `steps_per_epoch`
  steps, logged every `log_every` and checkpointed every `checkpoint_every`,
  without a progress bar: a run of seconds in which the tests see every
  part of the driver. The config shrinks its own model and data."""
  config.steps_per_epoch = steps_per_epoch
  config.num_epochs = num_epochs
  config.log_every = log_every
  config.checkpoint_every = checkpoint_every
  config.progress_bar = False
