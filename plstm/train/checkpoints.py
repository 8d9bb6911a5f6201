"""A run's workdir, checkpoints and signals: never lose, mix or spoil a run.

- `prepare_workdir` and `WorkdirLock`: a workdir is named, writable and used
  by one run at a time (the second run stops, naming the first's process).
- `Checkpoints` saves, with each train state, the config that made it, the
  evaluation history, the training metrics not yet logged, and a SHA-256 of
  the state. Restoring compares the config (only `RESUMABLE` fields may
  change), the state's shapes and the checksum; a checkpoint that does not
  read, or reads other bytes than were saved, or holds a non-finite value,
  is moved to `workdir/corrupt_checkpoints` and the next older one is used.
  Only finite states are saved, so a bad state never replaces a good one.
- `StopSignals` turns SIGTERM and SIGINT into a request the run reads after
  each step (and once before the first), so that it saves and raises
  `Interrupted` rather than dying mid-step.

What `plstm.train` promises with them:

- SIGTERM (a preemption) or SIGINT (Ctrl-C), from start-up to the end, ends
  the current step, saves it (the message says "saved" only once the save
  is committed) and raises `Interrupted`; the command line then exits with
  128 + the signal's number (143, 130), as a shell reports a run the signal
  ended, so that launchers see it unfinished. A second signal exits at once,
  keeping the checkpoints already committed.
- A resumed run writes exactly the metric records of an uninterrupted one,
  but for the timing fields (`wall_time_s`, `train_steps_per_s`).
"""

import fcntl
import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

# The config fields a resumed run may change: how long it runs, what it
# compares with, how often it logs and saves. Any other change stops it.
RESUMABLE = (
  "num_epochs",
  "early_stop",
  "target",
  "log_every",
  "checkpoint_every",
  "keep_checkpoints",
  "progress_bar",
)


def prepare_workdir(workdir: str | os.PathLike | None) -> Path:
  """`workdir` made and checked writable, as an absolute path."""
  if workdir is None or not str(workdir).strip():
    raise ValueError(
      "--workdir is empty (an unset shell variable?); pass the run's directory."
    )
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


class WorkdirLock:
  """An exclusive lock on `workdir/.lock` held while a run uses the workdir
  (by process 0; the kernel drops it when the process ends, however)."""

  def __init__(self, workdir: Path):
    self._path = workdir / ".lock"
    self._file = None

  def __enter__(self):
    if jax.process_index() != 0:
      return self
    f = self._path.open("a+")
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      pid = f.read().strip() or "unknown"
      f.close()
      raise OSError(
        f"workdir {self._path.parent} is in use by process {pid}; wait for "
        "that run to end (or stop it), or pass another --workdir."
      ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    self._file = f
    return self

  def __exit__(self, *exc_info):
    if self._file is not None:
      self._file.close()  # releases the lock
      self._file = None


class Interrupted(Exception):
  """A signal stopped the run; its state after `step` is saved (`step` is
  None if the run stopped before its first step, saving nothing new):
  rerunning with the same workdir resumes it."""

  def __init__(self, signum: signal.Signals, step: int | None, ckpt_dir: Path):
    if step is None:
      where = "before the first step; nothing new was saved"
    else:
      where = f"after step {step}, saved in {ckpt_dir}"
    super().__init__(
      f"stopped by {signum.name} {where}; rerun the same command to resume."
    )
    self.signum = signum
    self.step = step


@jax.jit
def _all_finite(tree) -> jax.Array:
  """Whether every floating-point leaf of `tree` is finite."""
  leaves = [
    jnp.all(jnp.isfinite(x))
    for x in jax.tree.leaves(tree)
    if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves))


def _digest(state) -> str:
  """The SHA-256 of the bytes of `state`'s leaves (replicated arrays: each
  process reads its own copy)."""
  sha = hashlib.sha256()
  for x in jax.tree.leaves(state):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):  # DEEP R's stream
      x = jax.random.key_data(x)
    sha.update(np.asarray(x.addressable_shards[0].data).tobytes())
  return sha.hexdigest()


def _flat(tree, prefix: str = "") -> dict:
  """A nested dict (a config's, a state's metadata) as {"a.b.c": leaf}."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for k, v in tree.items():
    out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
  return out


def as_json(config) -> dict:
  """A config as the JSON a checkpoint stores (tuples become lists)."""
  return json.loads(json.dumps(config.to_dict(), default=repr))


def _changes(before: dict, after: dict, allowed=RESUMABLE) -> list[str]:
  """`key (old -> new)` for each field of two `as_json` configs that differs,
  but for the fields `allowed` to change."""
  before, after = _flat(before), _flat(after)
  missing = object()
  out = []
  for key in sorted(before.keys() | after.keys()):
    if key.split(".")[0] in allowed:
      continue
    old, new = before.get(key, missing), after.get(key, missing)
    if old != new:
      show = lambda v: "unset" if v is missing else repr(v)  # noqa: E731
      out.append(f"{key} ({show(old)} -> {show(new)})")
  return out


def _shapes(tree) -> dict[str, tuple]:
  """{"params.rnn.w_x": shape} for a state or orbax's metadata of one."""

  def name(path):
    return ".".join(
      str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
      for k in path
    )

  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {name(p): tuple(x.shape) for p, x in leaves}


class Checkpoints:
  """The orbax checkpoints of a run, in `workdir/checkpoints`. Each holds
  `state` (the train state) and `run`: the config (`as_json`), the
  evaluation `history`, the training metrics of the steps since the last
  log (`window`) and the state's `digest`."""

  def __init__(self, workdir: Path, keep: int):
    self.workdir = workdir
    self.directory = workdir / "checkpoints"
    self.manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=True,
        cleanup_tmp_directories=True,  # what a kill left of a save
        # A save returns once committed: the step it reports is on disk.
        enable_async_checkpointing=False,
      ),
    )
    # Orbax removes what a kill left of a save in a background thread that
    # its close() does not wait for: a run ending soon after would exit
    # with that thread's traceback. Wait for it here.
    getattr(self.manager, "_maybe_await_cleanup_tmp_directory", lambda: 0)()
    self.last_saved: int | None = None

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()

  def non_finite(
    self, what: str, step: int, seen_at: int | None = None
  ) -> FloatingPointError:
    """The error for `what` going non-finite at `step` (found at `seen_at`,
    when the metrics of the steps since the last log are read)."""
    seen = "" if seen_at in (None, step) else f" (seen at step {seen_at})"
    if self.last_saved is None:
      kept = "no checkpoint was saved"
    else:
      kept = (
        f"the last good checkpoint (step {self.last_saved}) is kept, and "
        "rerunning in this workdir resumes from it with the same config"
      )
    return FloatingPointError(
      f"non-finite {what} at step {step}{seen}; {kept}. To change the "
      "settings, pass a new --workdir with a lower "
      "--config.optimizer.learning_rate or clipped gradients "
      "(--config.optimizer.clip and clip_value)."
    )

  def check_finite(self, state, step: int):
    """Raises FloatingPointError if `state` holds a non-finite value."""
    if not _all_finite(state):
      raise self.non_finite("params or optimiser state", step)

  def save(self, step: int, state, run: dict):
    """Saves a finite `state` as step `step`, with `run` (`config`,
    `history`, `window`) and the state's digest; returns once committed.

    Raises:
      OSError: the save failed (a full disk...); the checkpoints saved
        before are kept.
    """
    self.check_finite(state, step)
    run = {**run, "digest": _digest(state)}
    try:
      self.manager.save(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), run=ocp.args.JsonSave(run)
        ),
        force=True,
      )
    except Exception as e:  # Orbax and tensorstore raise many types.
      logging.debug("The save failed:", exc_info=True)
      kept = (
        "none was saved before"
        if self.last_saved is None
        else f"step {self.last_saved} is kept"
      )
      raise OSError(
        f"could not save checkpoint {step} in {self.directory} "
        f"({type(e).__name__}: {' '.join(str(e).split())[:160]}); {kept}."
      ) from None
    self.last_saved = step

  def restore(self, like, config: dict) -> tuple[int, object, dict] | None:
    """(step, state, run) of the newest checkpoint that restores into the
    shapes and shardings of `like`, or None if there is none.

    Checkpoints that cannot be read (corrupt, cut short), read other bytes
    than were saved, or hold a non-finite value are skipped with a warning
    and, once an older one restores, moved to `workdir/corrupt_checkpoints`
    (so that the run can save their steps anew). If none restores, all stay
    in place and ValueError names the newest.

    Raises:
      ValueError: the checkpoint was made with another `config` (`as_json`)
        than this one, besides its `RESUMABLE` fields, or holds a state of
        other shapes than `like`.
    """
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    failed = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        run = self.manager.restore(
          step, args=ocp.args.Composite(run=ocp.args.JsonRestore())
        ).run
        saved = ocp.StandardCheckpointHandler().metadata(
          epath.Path(self.directory / str(step) / "state")
        )
        self._check_same_run(step, run["config"], config, saved, like)
        state = self.manager.restore(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardRestore(target)),
        ).state
        if _digest(state) != run["digest"]:
          raise ValueError("its state is not the one saved (checksum)")
        if not _all_finite(state):
          raise ValueError("its state holds a non-finite value")
      except _OtherRun:
        raise
      except Exception as e:  # Orbax raises many types for unreadable files.
        logging.warning(
          "checkpoint %s cannot be restored (%s: %s); trying an earlier one.",
          self.directory / str(step),
          type(e).__name__,
          " ".join(str(e).split())[:200],
        )
        failed.append((step, e))
        continue
      if failed:
        self._set_aside([bad for bad, _ in failed], step)
      self.last_saved = step
      return step, state, run
    if failed:
      step, e = failed[0]
      raise ValueError(
        f"checkpoint {self.directory / str(step)} cannot be restored "
        f"({type(e).__name__}), nor any earlier one; move them out of "
        f"{self.directory} to start afresh, or pass a new --workdir."
      ) from e
    return None

  def _check_same_run(self, step: int, saved_config, config, saved, like):
    """Raises `_OtherRun` if checkpoint `step`, with `saved_config` and
    state metadata `saved`, is not of the run of `config` and `like`."""
    changed = _changes(saved_config, config)
    if changed:
      more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
      raise _OtherRun(
        f"the config differs from the one that made checkpoint {step} in "
        f"{self.directory}: {', '.join(changed[:4])}{more}. A run resumes "
        "only with its own config (it may change "
        f"{', '.join(RESUMABLE)}): pass a new --workdir for new settings."
      )
    now, then = _shapes(like), _shapes(saved)
    if now != then:
      diff = sorted(
        k for k in now.keys() | then.keys() if now.get(k) != then.get(k)
      )
      raise _OtherRun(
        f"checkpoint {step} in {self.directory} holds a train state of other "
        f"shapes ({diff[0]}: saved {then.get(diff[0])}, now "
        f"{now.get(diff[0])}) although the config is the same, so the code "
        "changed since; pass a new --workdir."
      )

  def _set_aside(self, steps: list[int], resumed: int):
    aside = self.workdir / "corrupt_checkpoints"
    if jax.process_index() == 0:
      aside.mkdir(exist_ok=True)
      stamp = time.strftime("%Y%m%d-%H%M%S")
      for bad in steps:
        shutil.move(self.directory / str(bad), aside / f"{bad}-{stamp}")
    multihost_utils.sync_global_devices("plstm: corrupt checkpoints moved")
    self.manager.reload()
    logging.warning(
      "resuming from step %d; the unreadable checkpoints are in %s.",
      resumed,
      aside,
    )

  def close(self):
    """Closes orbax's manager; what fails here is logged, not raised, so
    that it never hides the error that ended the run."""
    try:
      self.manager.wait_until_finished()
      self.manager.close()
    except Exception:
      logging.debug("Closing the checkpoint manager failed:", exc_info=True)


class _OtherRun(ValueError):
  """The checkpoints are of another run (config or code)."""


class StopSignals:
  """Turns SIGTERM and SIGINT into a request the run reads after each step,
  so that it saves and exits rather than dying mid-step. A second signal
  exits at once (status 128 + its number), keeping what was committed.

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
    if self.received is not None:
      os.write(
        sys.stderr.fileno(),
        f"plstm.train: second {signal.Signals(signum).name}: exiting at "
        "once; committed checkpoints are kept.\n".encode(),
      )
      os._exit(128 + signum)
    self.received = signal.Signals(signum)

  def __exit__(self, *exc_info):
    for s, handler in self._previous.items():
      signal.signal(s, signal.SIG_DFL if handler is None else handler)
    self._previous = {}

  def requested(self, step: int) -> signal.Signals | None:
    """The signal that asks the run to stop after `step`, if any."""
    if jax.process_count() > 1 and self._manager.reached_preemption(step):
      return signal.SIGTERM
    return self.received
