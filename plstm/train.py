r"""Trains and evaluates an experiment from an ml-collections config.

  python -m plstm.train --config=configs/freq_task.py --workdir=/tmp/freq \
      [--config.model.hidden=64 ...]

`config.experiment` names a module (a dotted path, e.g.
`experiments.freq_task`) whose `make_task(config)` returns a
`plstm.task.Task`. Each seed gets one root key, split by purpose
(`plstm.task.seed_keys`), and every batch and key is a function of those
keys and the step, so a run is resumed exactly from its step alone.

The config's headline metric (`config.metric`, with `config.mode` `max` or
`min`) is what the epoch line prints, `config.target` is compared with, and
results.json reports as best. `config.early_stop` (optional: `metric`,
`window`, `below`) ends training once the mean of validation `metric` over
the last `window` evaluations is below `below`.

`config.num_seeds` = S > 1 trains the seeds config.seed, ..., config.seed +
S - 1 together, as one compiled program vmapped over a leading model axis
of the state. Metrics are then the mean over seeds, with their std and
per-seed values beside them. `config.pack` (`plstm.packing`) adds points of
a hyperparameter sweep to that axis: points x seeds models in one program;
each record then holds the best point's metrics and every model's
(`*_per_model`), and the run ends with a table of the points
(results.json's `points`, `summary.csv`, `summary.md`) and a plot of the
headline metric against each swept field (`sweep.png`).

Devices form a mesh of a model axis (`--model_devices`, default 1) and a
data axis (the rest), `plstm.parallel`: the models are split over the
first, each batch's rows over the second, and gradients are averaged once
per step. On a CPU the driver makes one host device per core
(`--cpu_devices`), since XLA keeps two cores busier as two devices.

The workdir receives `metrics.jsonl`, TensorBoard events (`tb/`), orbax
checkpoints (`checkpoints/`), and at the end `results.json` and a plot of
the headline metric. Re-running with the same workdir resumes from the
latest checkpoint and ends with exactly the params of an uninterrupted run,
however the first run ended (a crash, SIGKILL, SIGTERM, Ctrl-C); a config
that differs from the checkpoint's, beyond run length and cadence, stops it
(see `plstm.checkpoints`). A non-finite metric stops the run naming its
step. The workdir also receives `train.log`, every log record of the run
and the traceback of an error, which the command line reports in one line
(unless --debug).

Several hosts (`--distributed`, or `--coordinator_address`,
`--num_processes` and `--process_id`) run one program over all their
devices: every host computes each batch and feeds its devices their rows of
it; only process 0 writes metrics, results and figures, while all take part
in orbax's checkpoints, which then needs the workdir on a filesystem every
host sees.
"""

import functools
import json
import logging as pylogging
import math
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from absl import app, flags, logging
from ml_collections import config_flags

from plstm import checkpoints, metrics, packing, parallel, steps
from plstm import task as task_lib
from plstm.checkpoints import Interrupted

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config file (configs/*.py[:variant]).",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
  "workdir",
  None,
  "Directory for checkpoints, metrics and results.",
  required=True,
)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed",
  False,
  "Join a multi-host run: jax.distributed.initialize() finds the "
  "coordinator, the number of processes and this one's index in the "
  "cluster's environment (Slurm, Open MPI, Cloud TPU, Kubernetes), unless "
  "the flags below give them.",
)
_COORDINATOR_ADDRESS = flags.DEFINE_string(
  "coordinator_address",
  None,
  "Multi-host: host:port of process 0 (implies --distributed).",
)
_NUM_PROCESSES = flags.DEFINE_integer(
  "num_processes", None, "Multi-host: the number of processes."
)
_PROCESS_ID = flags.DEFINE_integer(
  "process_id", None, "Multi-host: this process's index, from 0."
)
_CPU_DEVICES = flags.DEFINE_integer(
  "cpu_devices",
  None,
  "Host CPU devices to split the batch over when running on the CPU "
  "(default: $JAX_NUM_CPU_DEVICES, else the number of cores this process "
  "may use).",
)
_MODEL_DEVICES = flags.DEFINE_integer(
  "model_devices",
  1,
  "Devices on the mesh's model axis, over which packed models are split "
  "(it must divide the devices and the number of models); the other "
  "devices' factor splits each batch.",
)
_DEBUG = flags.DEFINE_bool(
  "debug",
  False,
  "Let an error end the run with its traceback, not one line (the "
  "traceback is in the workdir's train.log either way).",
)


def make_optimizer(config) -> optax.GradientTransformation:
  """Adam, after clipping the global gradient norm if `clip_norm` > 0.
  Both may be JAX scalars (packed); a packed clip_norm of 0 clips at +inf,
  which leaves the gradients unchanged."""
  opt = config.optimizer
  tx = optax.adam(opt.learning_rate)
  clip = opt.clip_norm
  if isinstance(clip, jax.Array):
    clip = jnp.where(clip > 0, clip, jnp.inf)
  elif clip <= 0:
    return tx
  return optax.chain(optax.clip_by_global_norm(clip), tx)


def _say(message: str):
  """Prints on process 0 only, through tqdm so that a bar stays whole."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


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


def _check(config):
  """One-line errors for settings the run cannot use, before any work."""
  for name in _COUNTS:
    value = config
    for part in name.split("."):
      value = value.get(part) if value is not None else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"config.{name} must be an integer >= 1, got {value!r}.")
  if config.mode not in metrics.MODES:
    raise ValueError(
      f"config.mode must be max or min (for config.metric {config.metric!r}),"
      f" got {config.mode!r}."
    )


def builder(config, task: task_lib.Task) -> steps.Build:
  """The function from a model's packed values to its task and optimiser
  (`task`, the task of `config`, when nothing is packed)."""

  def build(values: dict):
    model_config = packing.substitute(config, values)
    model_task = task_lib.load(model_config) if values else task
    return model_task, (
      model_task.optimizer or (lambda _: make_optimizer(model_config))
    )

  return build


def _mesh(config, models: packing.Models, model_devices: int):
  """The run's mesh, once its shape is known to fit the models and batch."""
  mesh = parallel.make_mesh(model_devices)
  if len(models) % model_devices:
    raise ValueError(
      f"--model_devices={model_devices} must divide the {len(models)} "
      "models (packed points x seeds)."
    )
  data = mesh.shape[parallel.DATA]
  if config.data.batch_size % data:
    raise ValueError(
      f"config.data.batch_size ({config.data.batch_size}) must be a "
      f"multiple of the {data} devices of the data axis (set "
      "--cpu_devices or --model_devices)."
    )
  return mesh


def _evaluate(task, eval_step, params, seed_keys, epoch, sharding, summarize):
  """The validation record of `epoch`: metrics averaged over batches."""
  per_seed = [task.eval_batches(k.eval, epoch) for k in seed_keys]
  return summarize(
    [
      eval_step(params, parallel.global_batch(steps.stack(b), sharding))
      for b in zip(*per_seed, strict=True)
    ]
  )


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
  _check(config)
  workdir = checkpoints.prepare_workdir(workdir)
  with (
    checkpoints.WorkdirLock(workdir),
    checkpoints.Checkpoints(workdir, config.keep_checkpoints) as ckpts,
    checkpoints.StopSignals(ckpts.manager) as signals,
  ):
    return _run(config, workdir, ckpts, signals, model_devices)


def _run(config, workdir, ckpts, signals, model_devices) -> dict:
  """`train_and_evaluate` in a locked workdir, with signals caught."""
  models = packing.models(config)
  task = task_lib.load(config)
  for name, point in zip(models.names(), models.points, strict=True):
    if point:  # Each point's values pass the checks of a separate run.
      try:
        task_lib.load(packing.point_config(config, point))
      except ValueError as e:
        raise ValueError(f"config.pack point {name}: {e}") from None
  build = builder(config, task)

  metric, target = config.metric, config.target
  better = functools.partial(metrics.better, config.mode)
  summarize = functools.partial(
    metrics.summarize, models=models, metric=metric, mode=config.mode
  )
  num_steps = config.num_epochs * config.steps_per_epoch
  seed_keys = [task_lib.seed_keys(s) for s in models.seeds]
  mesh = _mesh(config, models, model_devices)
  data = jax.NamedSharding(mesh, jax.P(None, parallel.DATA))
  if models.fields:
    steps.check_packable(build, models, task.train_batch(seed_keys[0].data, 0))
  init_state, train_step, eval_step = steps.compile_steps(build, models, mesh)

  settings = checkpoints.as_json(config)
  state, history, window = init_state(), [], []
  restored = ckpts.restore(state, settings)
  if restored is not None:
    _, state, run = restored
    history, window = run["history"], run["window"]
    _say(f"Resuming from step {ckpts.last_saved} in {ckpts.directory}.")
  start = int(jax.device_get(state.step)[0])
  if start > num_steps:
    raise ValueError(
      f"the run in {workdir} is at step {start}, beyond the "
      f"{num_steps} steps of config.num_epochs={config.num_epochs}; raise "
      "config.num_epochs or pass a new --workdir."
    )
  received = signals.requested(start)
  if received is not None:  # during start-up
    raise Interrupted(received, None, ckpts.directory)

  def save(step):
    run = {"config": settings, "history": history, "window": window}
    ckpts.save(step, state, jax.tree.map(_to_json, run))

  writer = metrics.MetricWriter(workdir, start, models.labels())
  wall_offset = history[-1]["wall_time_s"] if history else 0.0
  t_start = t_window = time.perf_counter()
  reached = next(
    (r["step"] for r in history if better(r[f"val_{metric}"], target)), None
  )
  stopped = metrics.stop_early(config, history)
  main = jax.process_index() == 0
  bar = tqdm.tqdm(
    total=num_steps,
    initial=start,
    unit="step",
    dynamic_ncols=True,
    disable=not (config.progress_bar and main and sys.stderr.isatty()),
  )
  try:
    for step in range(start + 1, num_steps + 1):
      if stopped:
        break
      batch = steps.stack(
        [task.train_batch(k.data, step - 1) for k in seed_keys]
      )
      state, step_metrics = train_step(
        state, parallel.global_batch(batch, data)
      )
      if step == start + 1 and metric not in step_metrics:
        reported = ", ".join(k for k in step_metrics if k != "grad_norm")
        raise ValueError(
          f"config.metric {metric!r} is not a metric of "
          f"{config.experiment}; it reports {reported}."
        )
      window.append(step_metrics)
      bar.update()

      checkpoint = step % config.checkpoint_every == 0 or step == num_steps
      if step % config.log_every == 0 or checkpoint:
        window = jax.device_get(window)
        bad = metrics.first_non_finite(window)
        if bad is not None:
          first = step - len(window) + 1 + bad[0]
          raise ckpts.non_finite(", ".join(bad[1]), first, step)
        train = summarize(window)
        train["steps_per_s"] = len(window) / (time.perf_counter() - t_window)
        window, t_window = [], time.perf_counter()
        writer.write(step, {f"train_{k}": v for k, v in train.items()})
        bar.set_postfix({k: f"{train[k]:.3f}" for k in ("loss", metric)})

      if step % config.steps_per_epoch == 0 or step == num_steps:
        ckpts.check_finite(state, step)
        epoch = math.ceil(step / config.steps_per_epoch)
        val = _evaluate(
          task, eval_step, state.params, seed_keys, epoch, data, summarize
        )
        record = {
          "step": step,
          "epoch": epoch,
          "wall_time_s": wall_offset + time.perf_counter() - t_start,
          **{f"val_{k}": v for k, v in val.items()},
        }
        history.append(record)
        writer.write(step, {k: v for k, v in record.items() if k != "step"})
        note = ""
        if reached is None and better(record[f"val_{metric}"], target):
          reached = step
          note = f"  (target {metrics.fmt(metric, target)} reached)"
        _say(metrics.epoch_line(record, metric, models) + note)
        if metrics.stop_early(config, history):
          stopped = checkpoint = True
          rule = config.early_stop
          _say(
            f"Stopping early at step {step}: mean val_{rule.metric} over "
            f"the last {rule.window} evaluations is below {rule.below}."
          )

      if checkpoint:
        save(step)
      received = signals.requested(step)
      if received is not None:
        if ckpts.last_saved != step:
          window = jax.device_get(window)  # the steps not yet logged
          save(step)
        raise Interrupted(received, step, ckpts.directory)
  finally:
    bar.close()
    writer.close()

  results = metrics.results(config, history, models, stopped, reached)
  if main:
    metrics.write_atomically(
      workdir / "results.json", json.dumps(results, indent=2)
    )
    if "points" in results:
      metrics.write_table(results["points"], workdir)
      metrics.plot_sweep(
        results["points"], models.fields, metric, workdir / "sweep.png"
      )
    title = f"{config.experiment} ({config.model.name})"
    path = workdir / f"val_{metric}.png"
    metrics.plot_history(history, metric, path, title)
    if task.plot is not None:
      first = jax.tree.map(lambda a: a[0], jax.device_get(state.params))
      task.plot(first, workdir)
  return results


def _to_json(leaf):
  """A leaf of the run's record as JSON: arrays (per-seed metrics) as lists."""
  return leaf.tolist() if isinstance(leaf, np.ndarray | np.generic) else leaf


def _message(e: BaseException) -> str:
  """The one line of `e` that names what to fix."""
  cause = e
  while cause is not None and not isinstance(cause, KeyError):
    cause = cause.__cause__ or cause.__context__
  if cause is not None:  # A mistyped key in a locked config.
    return "unknown config key " + " ".join(str(cause.args[0]).split())
  if isinstance(e, SyntaxError):
    return f"{e.filename}, line {e.lineno}: {e.msg}"
  # ml_collections nests a traceback; its last line says what is wrong.
  lines = [line.strip() for line in str(e).splitlines() if line.strip()]
  return lines[-1] if lines else type(e).__name__


def _fail(message: str):
  sys.exit(f"plstm.train: error: {message}")


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with bad flags and config files reported in one
  line (naming the config overrides when the error does not)."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # Config files and overrides raise any type.
    message = _message(e)
    overrides = [a for a in argv[1:] if a.startswith("--config.")]
    if overrides and "--config." not in message and "config key" not in message:
      message = f"{' '.join(overrides)}: {message}"
    _fail(message)


def _use_cpu_devices(count: int | None):
  """Makes the CPU backend `count` host devices (default
  $JAX_NUM_CPU_DEVICES, else one per core this process may use); before
  any backend starts."""
  if count is None:
    count = int(os.environ.get("JAX_NUM_CPU_DEVICES", 0)) or len(
      os.sched_getaffinity(0)
    )
  if count < 1:
    raise ValueError(f"--cpu_devices must be >= 1, got {count}.")
  jax.config.update("jax_num_cpu_devices", count)


def _initialize_distributed():
  """jax.distributed.initialize, if the flags ask for several processes."""
  given = (_COORDINATOR_ADDRESS.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if _DISTRIBUTED.value or any(v is not None for v in given):
    jax.distributed.initialize(*given)


def _log_to(workdir) -> tuple[Path, pylogging.Logger]:
  """Sends every log record to `workdir/train.log` and, unless --verbosity
  asks for more, only plstm's own warnings to the terminal. Returns the
  log's path and a logger that writes to the file alone."""
  index = jax.process_index()
  path = workdir / ("train.log" if index == 0 else f"train.{index}.log")
  handler = pylogging.FileHandler(path)
  handler.setFormatter(
    pylogging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
  )
  pylogging.getLogger().addHandler(handler)
  if not flags.FLAGS["verbosity"].present:
    ours = (str(Path(__file__).parent), os.path.abspath("experiments"))
    logging.get_absl_handler().addFilter(
      lambda record: record.pathname.startswith(ours)
    )
  file_only = pylogging.getLogger("plstm.train.log")
  file_only.propagate = False
  file_only.addHandler(handler)
  return path, file_only


def main(argv):
  if len(argv) > 1:
    _fail(
      f"unexpected argument {' '.join(argv[1:])!r}; flags are --name=value "
      "(config fields: --config.field=value)."
    )
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  try:
    _use_cpu_devices(_CPU_DEVICES.value)
    _initialize_distributed()
    workdir = checkpoints.prepare_workdir(_WORKDIR.value)
  except (ValueError, OSError) as e:
    _fail(_message(e))
  log, file_only = _log_to(workdir)
  try:
    results = train_and_evaluate(_CONFIG.value, workdir, _MODEL_DEVICES.value)
  except Interrupted as e:
    print(f"plstm.train: {e}", file=sys.stderr)
    sys.exit(128 + e.signum)
  except Exception as e:
    if _DEBUG.value:
      raise
    file_only.error("The run stopped:", exc_info=True)
    if isinstance(e, ValueError | OSError | FloatingPointError):
      _fail(_message(e))
    _fail(
      f"{type(e).__name__}: {_message(e)} (traceback in {log}; --debug "
      "prints it)"
    )
  metric = results["metric"]
  value = metrics.fmt(metric, results["final"][f"val_{metric}"])
  _say(
    f"Final val_{metric} {value} after {results['steps']} steps "
    f"({results['wall_time_s']:.0f} s); results in "
    f"{workdir}/results.json"
  )


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
