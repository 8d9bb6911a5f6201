r"""Trains and evaluates an experiment from an ml-collections config.

  python -m plstm.train --config=configs/freq_task.py --workdir=/tmp/freq \
      [--config.model.hidden=64 ...]

The config names an experiment module (`config.experiment`, a dotted module
path) that provides `init_params(config, key)`, `train_batch(config, step)`,
`eval_batches(config, epoch)` and `loss_fn(config, params, batch, rng, *,
training) -> (loss, metrics)`. Every batch and random key is a function of
(config.seed, step), so a run is resumed exactly from its step alone. An
experiment may also provide `make_optimizer(config)` (replacing the driver's
Adam, e.g. with a schedule and DEEP R rewiring) and `plot(config, params,
workdir)`, called at the end with the first seed's params to draw its own
figures.

`config.early_stop` (optional: `metric`, `window`, `below`) ends training
once the mean of validation `metric` over the last `window` evaluations is
below `below`, as the LSNN store-recall tutorial does.

`config.num_seeds` = S > 1 trains the seeds config.seed, ..., config.seed +
S - 1 together, as one compiled program vmapped over a leading seed axis of
the state and the batches (each seed with its own init, data and keys, as S
separate runs would have). Metrics are then the mean over seeds, with their
std and per-seed values beside them.

The workdir receives `metrics.jsonl`, TensorBoard events (`tb/`), orbax
checkpoints (`checkpoints/`), and at the end `results.json` and
`val_accuracy.png`. Re-running with the same workdir resumes from the latest
checkpoint and ends with exactly the params of an uninterrupted run, however
the first run ended (a crash, SIGKILL, SIGTERM, Ctrl-C):

- SIGTERM (a preemption) or SIGINT (Ctrl-C) ends the current step, saves it
  and raises `Interrupted`; the command line then exits with 128 + the
  signal's number (143, 130), as a shell reports a run the signal ended, so
  that launchers see it unfinished. A second signal acts at once.
- A non-finite metric stops the run naming its step; params and optimiser
  state are checked before every save, so a bad state never replaces a good
  checkpoint.
- An unreadable (corrupt, cut short) latest checkpoint is skipped with a
  warning: the run resumes from the newest one that restores and moves the
  bad ones to `corrupt_checkpoints/`.

Several hosts (`--distributed`, or `--coordinator_address`,
`--num_processes` and `--process_id`) run one program over all their
devices: every host computes each batch (a function of seed and step) and
feeds its devices their rows of it; only process 0 writes metrics, results
and figures, while all take part in orbax's checkpoints, which then needs
the workdir on a filesystem every host sees.
"""

import copy
import functools
import importlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import tensorboardX
import tqdm
from absl import app, flags, logging
from jax.experimental import multihost_utils
from matplotlib.figure import Figure
from ml_collections import config_flags

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


class TrainState(NamedTuple):
  """Everything a resumed run needs besides the config."""

  step: jax.Array  # int32 scalar: the number of updates applied so far
  params: Any
  opt_state: optax.OptState


class Interrupted(Exception):
  """A signal stopped the run after `step`, whose state is saved: rerunning
  with the same workdir resumes it."""

  def __init__(self, signum: signal.Signals, step: int, ckpt_dir: Path):
    super().__init__(
      f"stopped by {signum.name} after step {step}, saved in {ckpt_dir}; "
      "rerun the same command to resume."
    )
    self.signum = signum
    self.step = step


def make_optimizer(config) -> optax.GradientTransformation:
  """Adam, after clipping the global gradient norm if `clip_norm` > 0."""
  opt = config.optimizer
  tx = optax.adam(opt.learning_rate)
  if opt.clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt.clip_norm), tx)
  return tx


def data_mesh() -> jax.sharding.Mesh:
  """All devices on one 'data' axis: the driver splits batches [S, B, ...]
  along B and replicates the train state. Its axis type is Auto, so
  experiment code needs no sharding annotations (the compiler propagates
  the batch's split); jax's default Explicit type would make it spell them
  out, e.g. for a random initial carry or an embedding lookup."""
  return jax.make_mesh(
    (jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
  )


def global_batch(batch, sharding: jax.NamedSharding):
  """The global arrays of `batch` (leaves [S, B, ...], the same on every
  process), split along B by `sharding`: each process hands
  `jax.make_array_from_process_local_data` only the rows its own devices
  hold."""

  def put(x):
    index = sharding.addressable_devices_indices_map(x.shape).values()
    rows = sorted({r for i in index for r in range(*i[1].indices(x.shape[1]))})
    return jax.make_array_from_process_local_data(
      sharding, x[:, np.array(rows)], x.shape
    )

  return jax.tree.map(put, batch)


def _prepare_workdir(workdir: str | os.PathLike) -> Path:
  path = Path(workdir).absolute()
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".write_test.{jax.process_index()}"
    probe.write_text("")
    probe.unlink()
  except OSError as e:
    raise OSError(
      f"workdir {path} is not writable ({e.strerror}); pass another --workdir."
    ) from None
  return path


def _say(message: str):
  """Prints on process 0 only, through tqdm so that a bar stays whole."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


class _MetricWriter:
  """Appends metrics to `metrics.jsonl` and to TensorBoard event files (on
  process 0; elsewhere it does nothing)."""

  def __init__(self, workdir: Path, resume_step: int):
    self._main = jax.process_index() == 0
    if not self._main:
      return
    self._path = workdir / "metrics.jsonl"
    # Drop records a previous run wrote after its last checkpoint (they will
    # be written again, identically, from the resumed state) and a last line
    # cut short by a kill.
    if self._path.exists():
      kept = []
      for line in self._path.read_text().splitlines():
        try:
          step = json.loads(line)["step"]
        except json.JSONDecodeError:
          continue
        if step <= resume_step:
          kept.append(line + "\n")
      self._path.write_text("".join(kept))
    self._tb = tensorboardX.SummaryWriter(
      str(workdir / "tb"), purge_step=resume_step + 1
    )

  def write(self, step: int, metrics: dict[str, float | list[float]]):
    """Scalars, or per-seed lists (TensorBoard gets one tag per seed)."""
    if not self._main:
      return
    with self._path.open("a") as f:
      f.write(json.dumps({"step": step, **metrics}) + "\n")
    for name, value in metrics.items():
      if isinstance(value, list):
        for i, v in enumerate(value):
          self._tb.add_scalar(f"{name}/{i}", v, step)
      else:
        self._tb.add_scalar(name, value, step)

  def close(self):
    if self._main:
      self._tb.close()


class _StopSignals:
  """Turns SIGTERM and SIGINT into a request the training loop reads after
  each step, so that it saves and exits rather than dying mid-step; the
  first signal restores the previous handlers, so a second acts at once.

  Handlers are installed only in the main thread of a single process. With
  several processes jax's preemption service catches SIGTERM on every host,
  and orbax's `reached_preemption` makes all of them stop after the same
  step (hosts stopping at different steps would deadlock in the save).
  """

  def __init__(self, manager: ocp.CheckpointManager):
    self._manager = manager
    self._previous = {}
    self.received: signal.Signals | None = None

  def __enter__(self):
    single = jax.process_count() == 1
    if single and threading.current_thread() is threading.main_thread():
      for s in (signal.SIGTERM, signal.SIGINT):
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def _handle(self, signum, frame):
    self.received = signal.Signals(signum)
    self._restore()

  def _restore(self):
    for s, handler in self._previous.items():
      signal.signal(s, signal.SIG_DFL if handler is None else handler)
    self._previous = {}

  def __exit__(self, *exc_info):
    self._restore()

  def requested(self, step: int) -> signal.Signals | None:
    """The signal that asks the run to stop after `step`, if any."""
    if jax.process_count() > 1 and self._manager.reached_preemption(step):
      return signal.SIGTERM
    return self.received


def _mean(metrics: list[dict]) -> dict[str, float | list[float]]:
  """Averages [S]-valued metrics over the list; with S > 1 adds, for each
  metric m, `m_std` and `m_per_seed` across seeds (`m` is their mean)."""
  metrics = jax.device_get(metrics)
  out = {}
  for k in metrics[0]:
    per_seed = np.mean([m[k] for m in metrics], axis=0)
    out[k] = float(np.mean(per_seed))
    if per_seed.size > 1:
      out[f"{k}_std"] = float(np.std(per_seed))
      out[f"{k}_per_seed"] = per_seed.tolist()
  return out


def _seed_configs(config) -> list:
  """One config per trained seed: config.seed, ..., + num_seeds - 1."""
  if config.num_seeds < 1:
    raise ValueError(f"config.num_seeds must be >= 1, got {config.num_seeds}.")
  configs = []
  for i in range(config.num_seeds):
    c = copy.deepcopy(config)
    c.seed = config.seed + i
    configs.append(c)
  return configs


def _stack(trees: list):
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


@jax.jit
def _all_finite(tree) -> jax.Array:
  """Whether every floating-point leaf of `tree` is finite."""
  leaves = [
    jnp.all(jnp.isfinite(x))
    for x in jax.tree.leaves(tree)
    if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves))


def _non_finite(
  what: str,
  step: int,
  ckpt_dir: Path,
  last_saved: int | None,
  seen_at: int | None = None,
) -> FloatingPointError:
  """The error for `what` going non-finite at `step` (found at `seen_at`,
  when the metrics of the steps since the last log are read)."""
  seen = "" if seen_at in (None, step) else f" (seen at step {seen_at})"
  kept = (
    "no checkpoint was saved"
    if last_saved is None
    else f"the last good checkpoint (step {last_saved}) is kept in {ckpt_dir}"
  )
  return FloatingPointError(
    f"non-finite {what} at step {step}{seen}; {kept}. Lower "
    "--config.optimizer.learning_rate or clip the gradients (the "
    "config's optimizer fields: clip_norm, or clip and clip_value)."
  )


def _first_non_finite(window: list[dict]) -> tuple[int, list[str]] | None:
  """(index, names) of the first host-side metrics of `window` (one dict per
  step) with a non-finite value, or None if all are finite."""
  for i, metrics in enumerate(window):
    bad = [k for k, v in metrics.items() if not np.all(np.isfinite(v))]
    if bad:
      return i, bad
  return None


def _restore(manager: ocp.CheckpointManager, like: TrainState, workdir: Path):
  """(step, state, history) of the newest checkpoint that restores into the
  shapes and shardings of `like`, or None if there is no checkpoint.

  Checkpoints that cannot be read (corrupt, or cut short) are skipped with a
  warning and, once an older one restores, moved to
  `workdir/corrupt_checkpoints` (so that the run can save their steps
  anew). If none restores, all stay in place and ValueError names the
  newest.
  """
  args = ocp.args.Composite(
    state=ocp.args.StandardRestore(
      jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    ),
    history=ocp.args.JsonRestore(),
  )
  ckpt_dir = Path(manager.directory)
  failed = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = manager.restore(step, args=args)
    except Exception as e:  # Orbax raises many types for unreadable files.
      logging.warning(
        "checkpoint %s cannot be restored (%s: %s); trying an earlier one.",
        ckpt_dir / str(step),
        type(e).__name__,
        " ".join(str(e).split())[:200],
      )
      failed.append((step, e))
      continue
    if failed:
      aside = workdir / "corrupt_checkpoints"
      if jax.process_index() == 0:
        aside.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for bad, _ in failed:
          shutil.move(ckpt_dir / str(bad), aside / f"{bad}-{stamp}")
      multihost_utils.sync_global_devices("plstm: corrupt checkpoints moved")
      manager.reload()
      logging.warning(
        "resuming from step %d; the unreadable checkpoints are in %s.",
        step,
        aside,
      )
    return step, restored.state, restored.history
  if failed:
    step, e = failed[0]
    raise ValueError(
      f"checkpoint {ckpt_dir / str(step)} cannot be restored "
      f"({type(e).__name__}), nor any earlier one; move them out of "
      f"{ckpt_dir} to start afresh, or pass a new --workdir."
    ) from e
  return None


def _stop_early(config, history: list[dict]) -> bool:
  """Whether `config.early_stop`'s criterion holds for the history."""
  rule = config.get("early_stop")
  if rule is None or len(history) < rule.window:
    return False
  recent = [r[f"val_{rule.metric}"] for r in history[-rule.window :]]
  return float(np.mean(recent)) < rule.below


def _plot(history: list[dict], path: Path, title: str):
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  steps = [r["step"] for r in history]
  if "val_accuracy_per_seed" in history[0]:
    per_seed = np.array([r["val_accuracy_per_seed"] for r in history])
    ax.plot(steps, 100 * per_seed, color="0.7", lw=0.8)
  ax.plot(
    steps,
    [100 * r["val_accuracy"] for r in history],
    marker=".",
    color="C0",
  )
  ax.set_xlabel("training step")
  ax.set_ylabel("validation accuracy [%]")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def _epoch_line(record: dict, num_seeds: int) -> str:
  """The line printed after an evaluation."""
  spread = (
    f" ± {100 * record['val_accuracy_std']:.1f} ({num_seeds} seeds)"
    if "val_accuracy_std" in record
    else ""
  )
  return (
    f"epoch {record['epoch']} step {record['step']}: val_accuracy "
    f"{100 * record['val_accuracy']:.1f}%{spread} val_loss "
    f"{record['val_loss']:.4f} [{record['wall_time_s']:.0f} s]"
  )


def _compile_steps(config, experiment, tx, seeds: jax.Array, replicated):
  """The jitted (init_state(), train_step(state, batch), eval_step(params,
  batch)), each vmapped over the leading seed axis, with replicated outputs.
  """

  # Every function below acts on one seed.
  def step_key(seed) -> jax.Array:
    # Apart from the init key (seed) and the eval data's (seed + 1).
    return jax.random.key(seed + 2)

  def init_one(seed) -> TrainState:
    params = experiment.init_params(config, jax.random.key(seed))
    return TrainState(jnp.int32(0), params, tx.init(params))

  def train_one(state: TrainState, batch, seed) -> tuple[TrainState, dict]:
    rng = jax.random.fold_in(step_key(seed), state.step)
    loss_fn = functools.partial(experiment.loss_fn, config, training=True)
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, batch, rng)
    # optax's Adam bias correction mixes its int32 count with floats, which
    # strict dtype promotion (used by the tests) rejects.
    with jax.numpy_dtype_promotion("standard"):
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return TrainState(state.step + 1, params, opt_state), metrics

  def eval_one(params, batch, seed) -> dict:
    _, metrics = experiment.loss_fn(
      config, params, batch, step_key(seed), training=False
    )
    return metrics

  init_state = jax.jit(
    lambda: jax.vmap(init_one)(seeds), out_shardings=replicated
  )
  train_step = jax.jit(
    lambda state, batch: jax.vmap(train_one)(state, batch, seeds),
    out_shardings=(replicated, replicated),
  )
  eval_step = jax.jit(
    lambda params, batch: jax.vmap(eval_one)(params, batch, seeds),
    out_shardings=replicated,
  )
  return init_state, train_step, eval_step


def _write_results(
  config, experiment, workdir: Path, history: list[dict], params, results
):
  """`results.json`, `val_accuracy.png` and the experiment's own figures,
  drawn from the first seed's params."""
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  _plot(
    history,
    workdir / "val_accuracy.png",
    f"{config.experiment} ({config.model.name})",
  )
  if hasattr(experiment, "plot"):
    params = jax.device_get(params)
    experiment.plot(config, jax.tree.map(lambda a: a[0], params), workdir)


def train_and_evaluate(config, workdir: str | os.PathLike) -> dict:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint).

  Returns:
    The contents of `results.json`: the last and best validation metrics,
    the step at which `config.target_accuracy` was first reached, and the
    wall time.

  Raises:
    Interrupted: SIGTERM or SIGINT stopped the run (its state is saved).
    FloatingPointError: a metric, the params or the optimiser state became
      non-finite (nothing of it is saved).
  """
  workdir = _prepare_workdir(workdir)
  main = jax.process_index() == 0
  experiment = importlib.import_module(config.experiment)
  tx = getattr(experiment, "make_optimizer", make_optimizer)(config)
  steps_per_epoch = config.steps_per_epoch
  num_steps = config.num_epochs * steps_per_epoch

  seed_configs = _seed_configs(config)
  mesh = data_mesh()
  data_sharding = jax.NamedSharding(mesh, jax.P(None, "data"))
  if config.data.batch_size % jax.device_count():
    raise ValueError(
      f"config.data.batch_size ({config.data.batch_size}) must be a "
      f"multiple of the {jax.device_count()} devices."
    )
  init_state, train_step, eval_step = _compile_steps(
    config,
    experiment,
    tx,
    jnp.array([c.seed for c in seed_configs]),
    jax.NamedSharding(mesh, jax.P()),
  )

  # Resume from the latest checkpoint that restores, if any.
  ckpt_dir = workdir / "checkpoints"
  manager = ocp.CheckpointManager(
    ckpt_dir,
    options=ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints,
      create=True,
      cleanup_tmp_directories=True,  # what a kill left of a save
    ),
  )
  state = init_state()
  history: list[dict] = []
  last_saved = None
  restored = _restore(manager, state, workdir)
  if restored is not None:
    last_saved, state, history = restored
    _say(f"Resuming from step {last_saved} in {ckpt_dir}.")
  start = int(jax.device_get(state.step)[0])

  def check_state(step: int):
    if not _all_finite(state):
      raise _non_finite("params or optimiser state", step, ckpt_dir, last_saved)

  def save(step: int):
    nonlocal last_saved
    check_state(step)  # never a bad state over a good one
    manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), history=ocp.args.JsonSave(history)
      ),
      force=True,
    )
    last_saved = step

  writer = _MetricWriter(workdir, start)
  wall_offset = history[-1]["wall_time_s"] if history else 0.0
  t_start = time.perf_counter()
  target = config.target_accuracy
  reached = next(
    (r["step"] for r in history if r["val_accuracy"] >= target), None
  )
  stopped = _stop_early(config, history)
  window: list[dict] = []
  t_window = time.perf_counter()
  bar = tqdm.tqdm(
    total=num_steps,
    initial=start,
    unit="step",
    dynamic_ncols=True,
    disable=not (config.progress_bar and main),
  )
  try:
    with _StopSignals(manager) as signals:
      for step in range(start + 1, num_steps + 1):
        if stopped:
          break
        batch = global_batch(
          _stack([experiment.train_batch(c, step - 1) for c in seed_configs]),
          data_sharding,
        )
        state, metrics = train_step(state, batch)
        window.append(metrics)
        bar.update()

        checkpoint = step % config.checkpoint_every == 0 or step == num_steps
        if step % config.log_every == 0 or checkpoint:
          window = jax.device_get(window)
          bad = _first_non_finite(window)
          if bad is not None:
            first = step - len(window) + 1 + bad[0]
            names = ", ".join(bad[1])
            raise _non_finite(names, first, ckpt_dir, last_saved, step)
          train = _mean(window)
          train["steps_per_s"] = len(window) / (time.perf_counter() - t_window)
          window, t_window = [], time.perf_counter()
          writer.write(step, {f"train_{k}": v for k, v in train.items()})
          bar.set_postfix(
            loss=f"{train['loss']:.3f}", acc=f"{train['accuracy']:.3f}"
          )

        if step % steps_per_epoch == 0 or step == num_steps:
          check_state(step)
          epoch = math.ceil(step / steps_per_epoch)
          per_seed_batches = zip(
            *(experiment.eval_batches(c, epoch) for c in seed_configs),
            strict=True,
          )
          val = _mean(
            [
              eval_step(state.params, global_batch(_stack(b), data_sharding))
              for b in per_seed_batches
            ]
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
          if reached is None and record["val_accuracy"] >= target:
            reached = step
            note = f"  (target {100 * target:.0f}% reached)"
          _say(_epoch_line(record, len(seed_configs)) + note)
          if _stop_early(config, history):
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
          if last_saved != step:
            save(step)
          raise Interrupted(received, step, ckpt_dir)
  except KeyboardInterrupt:
    done = int(jax.device_get(state.step)[0])
    if done != last_saved:
      save(done)
      _say(f"Interrupted: saved step {done} in {ckpt_dir}.")
    raise
  finally:
    bar.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()

  results = {
    "experiment": config.experiment,
    "steps": history[-1]["step"],
    "stopped_early": stopped,
    "seeds": [c.seed for c in seed_configs],
    "devices": jax.device_count(),
    "processes": jax.process_count(),
    "final": history[-1],
    "best_val_accuracy": max(r["val_accuracy"] for r in history),
    "target_accuracy": target,
    "target_reached_step": reached,
    "wall_time_s": history[-1]["wall_time_s"],
    "config": config.to_dict(),
  }
  if main:
    _write_results(config, experiment, workdir, history, state.params, results)
  return results


def _exit_with(e: Exception):
  """Exits with one line naming what to fix."""
  if isinstance(e, KeyError):  # A mistyped key in a locked config.
    message = "unknown config key " + " ".join(str(e.args[0]).split())
  else:  # ml_collections nests a traceback; its last line says what is wrong.
    message = [line for line in str(e).splitlines() if line.strip()][-1]
  sys.exit(f"plstm.train: error: {message.strip()}")


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with bad config overrides reported in one line."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as e:
    _exit_with(e)


def _initialize_distributed():
  """jax.distributed.initialize, if the flags ask for several processes."""
  given = (_COORDINATOR_ADDRESS.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if _DISTRIBUTED.value or any(v is not None for v in given):
    jax.distributed.initialize(*given)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  _initialize_distributed()
  try:
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except Interrupted as e:
    print(f"plstm.train: {e}", file=sys.stderr)
    sys.exit(128 + e.signum)
  except (ValueError, OSError, FloatingPointError) as e:
    logging.debug("Stopped by:", exc_info=True)
    _exit_with(e)
  final = results["final"]
  _say(
    f"Final validation accuracy {100 * final['val_accuracy']:.2f}% after "
    f"{results['steps']} steps ({results['wall_time_s']:.0f} s); "
    f"results in {_WORKDIR.value}/results.json"
  )


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
