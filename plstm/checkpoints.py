"""A run's checkpoints and stop signals: resume, never lose or spoil a run.

- `Checkpoints` restores the newest orbax checkpoint that reads (moving the
  unreadable ones to `workdir/corrupt_checkpoints`) and saves only finite
  states, so a bad state never replaces a good checkpoint.
- `StopSignals` turns SIGTERM and SIGINT into a request the training loop
  reads after each step, so that it saves and raises `Interrupted` rather
  than dying mid-step.

What `plstm.train` promises with them:

- SIGTERM (a preemption) or SIGINT (Ctrl-C) ends the current step, saves it
  and raises `Interrupted`; the command line then exits with 128 + the
  signal's number (143, 130), as a shell reports a run the signal ended, so
  that launchers see it unfinished. A second signal acts at once.
- Params and optimiser state are checked before every save, so a bad state
  never replaces a good checkpoint.
- An unreadable (corrupt, cut short) latest checkpoint is skipped with a
  warning: the run resumes from the newest one that restores and moves the
  bad ones to `corrupt_checkpoints/`.
"""

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils


def prepare_workdir(workdir: str | os.PathLike) -> Path:
  """`workdir` made and checked writable, as an absolute path."""
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


@jax.jit
def _all_finite(tree) -> jax.Array:
  """Whether every floating-point leaf of `tree` is finite."""
  leaves = [
    jnp.all(jnp.isfinite(x))
    for x in jax.tree.leaves(tree)
    if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves))


class Checkpoints:
  """The orbax checkpoints of a run, in `workdir/checkpoints`, each a train
  state and the evaluation history up to it."""

  def __init__(self, workdir: Path, keep: int):
    self.workdir = workdir
    self.directory = workdir / "checkpoints"
    self.manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=True,
        cleanup_tmp_directories=True,  # what a kill left of a save
      ),
    )
    self.last_saved: int | None = None

  def non_finite(
    self, what: str, step: int, seen_at: int | None = None
  ) -> FloatingPointError:
    """The error for `what` going non-finite at `step` (found at `seen_at`,
    when the metrics of the steps since the last log are read)."""
    seen = "" if seen_at in (None, step) else f" (seen at step {seen_at})"
    kept = (
      "no checkpoint was saved"
      if self.last_saved is None
      else f"the last good checkpoint (step {self.last_saved}) is kept in "
      f"{self.directory}"
    )
    return FloatingPointError(
      f"non-finite {what} at step {step}{seen}; {kept}. Lower "
      "--config.optimizer.learning_rate or clip the gradients (the "
      "config's optimizer fields: clip_norm, or clip and clip_value)."
    )

  def check_finite(self, state, step: int):
    """Raises FloatingPointError if `state` holds a non-finite value."""
    if not _all_finite(state):
      raise self.non_finite("params or optimiser state", step)

  def save(self, step: int, state, history: list[dict]):
    """Saves a finite `state` and `history` as step `step`."""
    self.check_finite(state, step)
    self.manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), history=ocp.args.JsonSave(history)
      ),
      force=True,
    )
    self.last_saved = step

  def restore(self, like) -> tuple[int, object, list[dict]] | None:
    """(step, state, history) of the newest checkpoint that restores into
    the shapes and shardings of `like`, or None if there is none.

    Checkpoints that cannot be read (corrupt, or cut short) are skipped with
    a warning and, once an older one restores, moved to
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
    failed = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        restored = self.manager.restore(step, args=args)
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
      return step, restored.state, restored.history
    if failed:
      step, e = failed[0]
      raise ValueError(
        f"checkpoint {self.directory / str(step)} cannot be restored "
        f"({type(e).__name__}), nor any earlier one; move them out of "
        f"{self.directory} to start afresh, or pass a new --workdir."
      ) from e
    return None

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
    self.manager.wait_until_finished()
    self.manager.close()


class StopSignals:
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
