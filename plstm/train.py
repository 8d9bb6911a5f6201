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
checkpoint and ends with exactly the params of an uninterrupted run.
"""

import copy
import functools
import importlib
import json
import math
import os
import sys
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


class TrainState(NamedTuple):
  """Everything a resumed run needs besides the config."""

  step: jax.Array  # int32 scalar: the number of updates applied so far
  params: Any
  opt_state: optax.OptState


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


def _prepare_workdir(workdir: str | os.PathLike) -> Path:
  path = Path(workdir).absolute()
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe = path / ".write_test"
    probe.write_text("")
    probe.unlink()
  except OSError as e:
    raise OSError(
      f"workdir {path} is not writable ({e.strerror}); pass another --workdir."
    ) from None
  return path


class _MetricWriter:
  """Appends metrics to `metrics.jsonl` and to TensorBoard event files."""

  def __init__(self, workdir: Path, resume_step: int):
    self._path = workdir / "metrics.jsonl"
    # Drop records a previous run wrote after its last checkpoint: they will
    # be written again, identically, from the resumed state.
    if self._path.exists():
      kept = [
        line
        for line in self._path.read_text().splitlines()
        if json.loads(line)["step"] <= resume_step
      ]
      self._path.write_text("".join(line + "\n" for line in kept))
    self._tb = tensorboardX.SummaryWriter(
      str(workdir / "tb"), purge_step=resume_step + 1
    )

  def write(self, step: int, metrics: dict[str, float | list[float]]):
    """Scalars, or per-seed lists (TensorBoard gets one tag per seed)."""
    with self._path.open("a") as f:
      f.write(json.dumps({"step": step, **metrics}) + "\n")
    for name, value in metrics.items():
      if isinstance(value, list):
        for i, v in enumerate(value):
          self._tb.add_scalar(f"{name}/{i}", v, step)
      else:
        self._tb.add_scalar(name, value, step)

  def close(self):
    self._tb.close()


def _mean(metrics: list[dict]) -> dict[str, float | list[float]]:
  """Averages [S]-valued metrics over the list; with S > 1 adds, for each
  metric m, `m_std` and `m_per_seed` across seeds (`m` is their mean)."""
  stacked = jax.device_get(_stack(metrics))
  out = {}
  for k, v in stacked.items():
    per_seed = np.mean(v, axis=0)
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


def _check_finite(
  metrics: dict[str, float], step: int, ckpt_dir: Path, last_saved: int | None
):
  bad = [
    k
    for k, v in metrics.items()
    if not all(math.isfinite(x) for x in np.ravel(v))
  ]
  if bad:
    kept = (
      "no checkpoint was saved"
      if last_saved is None
      else f"the last good checkpoint (step {last_saved}) is kept in {ckpt_dir}"
    )
    raise FloatingPointError(
      f"non-finite {', '.join(bad)} at step {step}; {kept}. Lower "
      "--config.optimizer.learning_rate or clip the gradients (the "
      "config's optimizer fields: clip_norm, or clip and clip_value)."
    )


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


def train_and_evaluate(config, workdir: str | os.PathLike) -> dict:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint).

  Returns:
    The contents of `results.json`: the last and best validation metrics,
    the step at which `config.target_accuracy` was first reached, and the
    wall time.
  """
  workdir = _prepare_workdir(workdir)
  experiment = importlib.import_module(config.experiment)
  tx = getattr(experiment, "make_optimizer", make_optimizer)(config)
  steps_per_epoch = config.steps_per_epoch
  num_steps = config.num_epochs * steps_per_epoch

  seed_configs = _seed_configs(config)
  seeds = jnp.array([c.seed for c in seed_configs])

  mesh = data_mesh()
  replicated = jax.NamedSharding(mesh, jax.P())
  data_sharding = jax.NamedSharding(mesh, jax.P(None, "data"))
  if config.data.batch_size % jax.device_count():
    raise ValueError(
      f"config.data.batch_size ({config.data.batch_size}) must be a "
      f"multiple of the {jax.device_count()} devices."
    )

  # Every function below acts on one seed and is vmapped over the seed axis.
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
    lambda params, batch: jax.vmap(eval_one)(params, batch, seeds)
  )

  # Resume from the latest checkpoint, if any.
  ckpt_dir = workdir / "checkpoints"
  manager = ocp.CheckpointManager(
    ckpt_dir,
    options=ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints, create=True
    ),
  )
  state = init_state()
  history: list[dict] = []
  last_saved = manager.latest_step()
  if last_saved is not None:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    try:
      restored = manager.restore(
        last_saved,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract),
          history=ocp.args.JsonRestore(),
        ),
      )
    except Exception as e:  # Orbax raises many types for unreadable files.
      raise ValueError(
        f"checkpoint {ckpt_dir / str(last_saved)} cannot be restored "
        f"({type(e).__name__}); move it out of {ckpt_dir} to resume from "
        "an earlier one, or pass a new --workdir."
      ) from e
    state, history = restored.state, restored.history
    print(f"Resuming from step {last_saved} in {ckpt_dir}.")
  start = int(state.step[0])

  def save(step: int):
    nonlocal last_saved
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
    disable=not config.progress_bar,
  )
  try:
    for step in range(start + 1, num_steps + 1):
      if stopped:
        break
      batch = jax.device_put(
        _stack([experiment.train_batch(c, step - 1) for c in seed_configs]),
        data_sharding,
      )
      state, metrics = train_step(state, batch)
      window.append(metrics)
      bar.update()

      checkpoint = step % config.checkpoint_every == 0 or step == num_steps
      if step % config.log_every == 0 or checkpoint:
        train = _mean(window)
        train["steps_per_s"] = len(window) / (time.perf_counter() - t_window)
        window, t_window = [], time.perf_counter()
        _check_finite(train, step, ckpt_dir, last_saved)
        writer.write(step, {f"train_{k}": v for k, v in train.items()})
        bar.set_postfix(
          loss=f"{train['loss']:.3f}", acc=f"{train['accuracy']:.3f}"
        )

      if step % steps_per_epoch == 0 or step == num_steps:
        epoch = math.ceil(step / steps_per_epoch)
        per_seed_batches = zip(
          *(experiment.eval_batches(c, epoch) for c in seed_configs),
          strict=True,
        )
        val = _mean(
          [
            eval_step(state.params, jax.device_put(_stack(b), data_sharding))
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
        spread = (
          f" ± {100 * record['val_accuracy_std']:.1f} "
          f"({len(seed_configs)} seeds)"
          if "val_accuracy_std" in record
          else ""
        )
        bar.write(
          f"epoch {epoch} step {step}: val_accuracy "
          f"{100 * record['val_accuracy']:.1f}%{spread} val_loss "
          f"{record['val_loss']:.4f} "
          f"[{record['wall_time_s']:.0f} s]{note}"
        )
        if _stop_early(config, history):
          stopped = checkpoint = True
          rule = config.early_stop
          bar.write(
            f"Stopping early at step {step}: mean val_{rule.metric} over "
            f"the last {rule.window} evaluations is below {rule.below}."
          )

      if checkpoint:
        save(step)
  except KeyboardInterrupt:
    done = int(state.step[0])
    if done != last_saved:
      save(done)
      bar.write(f"Interrupted: saved step {done} in {ckpt_dir}.")
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
    "final": history[-1],
    "best_val_accuracy": max(r["val_accuracy"] for r in history),
    "target_accuracy": target,
    "target_reached_step": reached,
    "wall_time_s": history[-1]["wall_time_s"],
    "config": config.to_dict(),
  }
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  _plot(
    history,
    workdir / "val_accuracy.png",
    f"{config.experiment} ({config.model.name})",
  )
  if hasattr(experiment, "plot"):
    experiment.plot(config, jax.tree.map(lambda a: a[0], state.params), workdir)
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  try:
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ValueError, OSError, FloatingPointError) as e:
    logging.debug("Stopped by:", exc_info=True)
    _exit_with(e)
  final = results["final"]
  print(
    f"Final validation accuracy {100 * final['val_accuracy']:.2f}% after "
    f"{results['steps']} steps ({results['wall_time_s']:.0f} s); "
    f"results in {_WORKDIR.value}/results.json"
  )


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
