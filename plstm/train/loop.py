"""The training loop of `plstm.train`: restore -> loop -> finish.

`train_and_evaluate(config, workdir)` reads the config once (`Spec`), builds
the run's compiled steps (`plstm.train.steps`), resumes from the workdir's
newest checkpoint if there is one, trains, evaluates once an epoch, and
writes the run's summary (see `plstm.train` for what a run guarantees).
"""

import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import tqdm

from plstm import parallel
from plstm.train import checkpoints, metrics, optimizers, packing, steps
from plstm.train import task as task_lib
from plstm.train.checkpoints import Interrupted

# The driver's settings that count something: each must be an integer >= 1.
_COUNTS = (
  "num_seeds",
  "num_epochs",
  "steps_per_epoch",
  "log_every",
  "checkpoint_every",
  "keep_checkpoints",
  "data.batch_size",
)


def say(message: str):
  """Prints on process 0 only, through tqdm so that a bar stays whole."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


class Spec(NamedTuple):
  """What the loop reads of a config, read once by `Spec.read`."""

  experiment: str
  title: str  # of the headline plot
  headline: metrics.Headline
  num_steps: int
  steps_per_epoch: int
  log_every: int
  checkpoint_every: int
  keep_checkpoints: int
  batch_size: int
  early_stop: dict | None  # {metric, window, below}
  progress_bar: bool
  settings: dict  # the config as JSON (`checkpoints.as_json`)

  @classmethod
  def read(cls, config) -> "Spec":
    """The spec of `config`, or a one-line ValueError for a setting the run
    cannot use, before any work."""
    for name in _COUNTS:
      value = config
      for part in name.split("."):
        value = value.get(part) if value is not None else None
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
          f"config.{name} must be an integer >= 1, got {value!r}."
        )
    if config.mode not in metrics.MODES:
      raise ValueError(
        f"config.mode must be max or min (for config.metric "
        f"{config.metric!r}), got {config.mode!r}."
      )
    rule = config.get("early_stop")
    return cls(
      experiment=config.experiment,
      title=f"{config.experiment} ({config.model.name})",
      headline=metrics.Headline(config.metric, config.mode, config.target),
      num_steps=config.num_epochs * config.steps_per_epoch,
      steps_per_epoch=config.steps_per_epoch,
      log_every=config.log_every,
      checkpoint_every=config.checkpoint_every,
      keep_checkpoints=config.keep_checkpoints,
      batch_size=config.data.batch_size,
      early_stop=None if rule is None else rule.to_dict(),
      progress_bar=config.progress_bar,
      settings=checkpoints.as_json(config),
    )


class Program(NamedTuple):
  """A run's models, the data of each seed and its compiled steps."""

  models: packing.Models
  task: task_lib.Task  # the concrete config's: its batches and plot
  seed_keys: list[task_lib.Keys]
  data: jax.sharding.NamedSharding  # of a batch [S, B, ...]
  init_state: Callable[[], steps.TrainState]
  train_step: Callable
  eval_step: Callable
  summarize: Callable[[list[dict]], dict]


@dataclasses.dataclass
class Record:
  """The run's record so far, which each checkpoint saves with the state."""

  history: list[dict] = dataclasses.field(default_factory=list)
  window: list[Any] = dataclasses.field(default_factory=list)  # unlogged
  reached: int | None = None  # the first step that reached the target
  stopped: bool = False  # early


def train_and_evaluate(
  config, workdir: str | os.PathLike, model_devices: int = 1
) -> dict:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint), its
  models split over `model_devices` devices and its batches over the rest.

  Returns:
    The contents of `results.json`: the last validation metrics, the best
    of the headline metric, the step at which `config.target` was first
    reached, and the wall time.

  Raises:
    Interrupted: SIGTERM or SIGINT stopped the run (its state is saved).
    FloatingPointError: a metric, the params or the optimiser state became
      non-finite (nothing of it is saved).
    ValueError, OSError: a setting, the workdir or its checkpoints cannot
      be used (nothing in the workdir is changed).
  """
  spec = Spec.read(config)
  workdir = checkpoints.prepare_workdir(workdir)
  with (
    checkpoints.WorkdirLock(workdir),
    checkpoints.Checkpoints(workdir, spec.keep_checkpoints) as ckpts,
    checkpoints.StopSignals(ckpts.manager) as signals,
  ):
    program = build(config, spec, model_devices)
    state, record = restore(spec, program, ckpts, signals, workdir)
    state = loop(spec, program, state, record, ckpts, signals, workdir)
    return finish(spec, program, state, record, workdir)


def build(config, spec: Spec, model_devices: int) -> Program:
  """The program of `config`: its experiment imported once, each packed
  point checked as a separate run's config would be, the steps compiled."""
  models = packing.models(config)
  make_task = task_lib.experiment(config)
  for name, point in zip(models.names(), models.points, strict=True):
    if point:  # Each point's values pass the checks of a separate run.
      try:
        point_config = packing.point_config(config, point)
        make_task(point_config)
        optimizers.make(point_config.optimizer)
      except ValueError as e:
        raise ValueError(f"config.pack point {name}: {e}") from None
  model = steps.model_of(config, make_task)
  task = model({}).task
  seed_keys = [task_lib.seed_keys(s) for s in models.seeds]
  mesh = make_mesh(models, spec.batch_size, model_devices)
  if models.fields:
    steps.check_packable(model, models, task.train_batch(seed_keys[0].data, 0))
  init_state, train_step, eval_step = steps.compile_steps(model, models, mesh)
  summarize = functools.partial(
    metrics.summarize,
    models=models,
    metric=spec.headline.metric,
    mode=spec.headline.mode,
  )
  data = jax.NamedSharding(mesh, jax.P(None, parallel.DATA))
  return Program(
    models, task, seed_keys, data, init_state, train_step, eval_step, summarize
  )


def make_mesh(models: packing.Models, batch_size: int, model_devices: int):
  """The run's mesh, once its shape is known to fit the models and batch."""
  mesh = parallel.make_mesh(model_devices)
  if len(models) % model_devices:
    raise ValueError(
      f"--model_devices={model_devices} must divide the {len(models)} "
      "models (packed points x seeds)."
    )
  data = mesh.shape[parallel.DATA]
  if batch_size % data:
    raise ValueError(
      f"config.data.batch_size ({batch_size}) must be a multiple of the "
      f"{data} devices of the data axis (set --cpu_devices or "
      "--model_devices)."
    )
  return mesh


def restore(spec, program, ckpts, signals, workdir):
  """The state and record to start from: the newest checkpoint's, else a
  fresh state's."""
  state, record = program.init_state(), Record()
  restored = ckpts.restore(state, spec.settings)
  if restored is not None:
    _, state, run = restored
    record.history, record.window = run["history"], run["window"]
    say(f"Resuming from step {ckpts.last_saved} in {ckpts.directory}.")
  start = int(jax.device_get(state.step)[0])
  if start > spec.num_steps:
    raise ValueError(
      f"the run in {workdir} is at step {start}, beyond the "
      f"{spec.num_steps} steps of config.num_epochs="
      f"{spec.num_steps // spec.steps_per_epoch}; raise config.num_epochs or "
      "pass a new --workdir."
    )
  received = signals.requested(start)
  if received is not None:  # during start-up
    raise Interrupted(received, None, ckpts.directory)
  headline = spec.headline
  record.reached = next(
    (r["step"] for r in record.history if headline.reached(r)), None
  )
  record.stopped = metrics.stop_early(spec.early_stop, record.history)
  return state, record


def loop(spec, program, state, record, ckpts, signals, workdir):
  """Trains from the state's step to the last, logging, evaluating and
  checkpointing on the spec's cadence; returns the last state."""
  headline, start = spec.headline, int(jax.device_get(state.step)[0])

  def save(step):
    run = {"config": spec.settings, "history": record.history}
    run["window"] = record.window
    ckpts.save(step, state, jax.tree.map(_to_json, run))

  writer = metrics.MetricWriter(workdir, start, program.models.labels())
  wall_offset = record.history[-1]["wall_time_s"] if record.history else 0.0
  clock = {"start": time.perf_counter(), "window": time.perf_counter()}
  bar = tqdm.tqdm(
    total=spec.num_steps,
    initial=start,
    unit="step",
    dynamic_ncols=True,
    disable=not (
      spec.progress_bar and jax.process_index() == 0 and sys.stderr.isatty()
    ),
  )
  try:
    for step in range(start + 1, spec.num_steps + 1):
      if record.stopped:
        break
      batch = steps.stack(
        [program.task.train_batch(k.data, step - 1) for k in program.seed_keys]
      )
      state, step_metrics = program.train_step(
        state, parallel.global_batch(batch, program.data)
      )
      if step == start + 1:
        _check_reported(spec, step_metrics)
      record.window.append(step_metrics)
      bar.update()

      last = step == spec.num_steps
      checkpoint = step % spec.checkpoint_every == 0 or last
      if step % spec.log_every == 0 or checkpoint:
        train = _log_window(program, record, ckpts, step, clock)
        writer.write(step, {f"train_{k}": v for k, v in train.items()})
        bar.set_postfix(
          {k: f"{train[k]:.3f}" for k in ("loss", headline.metric)}
        )

      if step % spec.steps_per_epoch == 0 or last:
        ckpts.check_finite(state, step)
        wall = wall_offset + time.perf_counter() - clock["start"]
        val = evaluate(spec, program, state.params, record, step, wall)
        writer.write(step, {k: v for k, v in val.items() if k != "step"})
        checkpoint |= record.stopped

      if checkpoint:
        save(step)
      received = signals.requested(step)
      if received is not None:
        if ckpts.last_saved != step:
          record.window = jax.device_get(record.window)  # not yet logged
          save(step)
        raise Interrupted(received, step, ckpts.directory)
  finally:
    bar.close()
    writer.close()
  return state


def _check_reported(spec: Spec, step_metrics: dict):
  """A one-line error if the task does not report the headline metric."""
  if spec.headline.metric not in step_metrics:
    reported = ", ".join(k for k in step_metrics if k != "grad_norm")
    raise ValueError(
      f"config.metric {spec.headline.metric!r} is not a metric of "
      f"{spec.experiment}; it reports {reported}."
    )


def _log_window(program, record, ckpts, step, clock) -> dict:
  """The training record of the steps since the last log (read from the
  devices at once), which must be finite."""
  window = jax.device_get(record.window)
  bad = metrics.first_non_finite(window)
  if bad is not None:
    first = step - len(window) + 1 + bad[0]
    raise ckpts.non_finite(", ".join(bad[1]), first, step)
  train = program.summarize(window)
  train["steps_per_s"] = len(window) / (time.perf_counter() - clock["window"])
  record.window, clock["window"] = [], time.perf_counter()
  return train


def evaluate(spec, program, params, record, step: int, wall: float) -> dict:
  """Evaluates epoch ceil(step / steps_per_epoch): the validation metrics
  averaged over its batches, appended to the record and printed; decides
  the target and early stopping."""
  epoch = math.ceil(step / spec.steps_per_epoch)
  per_seed = [
    program.task.eval_batches(k.eval, epoch) for k in program.seed_keys
  ]
  val = program.summarize(
    [
      program.eval_step(
        params, parallel.global_batch(steps.stack(b), program.data)
      )
      for b in zip(*per_seed, strict=True)
    ]
  )
  entry = {
    "step": step,
    "epoch": epoch,
    "wall_time_s": wall,
    **{f"val_{k}": v for k, v in val.items()},
  }
  record.history.append(entry)
  headline, note = spec.headline, ""
  if record.reached is None and headline.reached(entry):
    record.reached = step
    note = f"  (target {metrics.fmt(headline.metric, headline.target)} reached)"
  say(metrics.epoch_line(entry, headline.metric, program.models) + note)
  if metrics.stop_early(spec.early_stop, record.history):
    record.stopped = True
    rule = spec.early_stop
    say(
      f"Stopping early at step {step}: mean val_{rule['metric']} over the "
      f"last {rule['window']} evaluations is below {rule['below']}."
    )
  return entry


def finish(spec, program, state, record, workdir) -> dict:
  """The run's summary, written (on process 0) to results.json with the
  plots of the headline metric, the sweep's table and the task's figures."""
  models, metric = program.models, spec.headline.metric
  results = metrics.results(
    record.history,
    models,
    spec.headline,
    experiment=spec.experiment,
    config=spec.settings,
    stopped=record.stopped,
    reached=record.reached,
  )
  if jax.process_index() != 0:
    return results
  metrics.write_atomically(
    workdir / "results.json", json.dumps(results, indent=2)
  )
  if "points" in results:
    metrics.write_table(results["points"], workdir)
    metrics.plot_sweep(
      results["points"], models.fields, metric, workdir / "sweep.png"
    )
  path = workdir / f"val_{metric}.png"
  metrics.plot_history(record.history, metric, path, spec.title)
  if program.task.plot is not None:
    first = jax.tree.map(lambda a: a[0], jax.device_get(state.params))
    program.task.plot(first, workdir)
  return results


def _to_json(leaf):
  """A leaf of the run's record as JSON: arrays (per-seed metrics) as lists."""
  return leaf.tolist() if isinstance(leaf, np.ndarray | np.generic) else leaf
