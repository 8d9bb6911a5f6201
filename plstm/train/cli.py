"""The command line of `plstm.train`: flags, devices, hosts, logs, and one
line for an error (see `plstm.train` for the run itself)."""

import logging as pylogging
import os
import sys
from pathlib import Path

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from plstm.train import checkpoints, metrics
from plstm.train.checkpoints import Interrupted
from plstm.train.loop import say, train_and_evaluate

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
    ours = (str(Path(__file__).parents[1]), os.path.abspath("experiments"))
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
  say(
    f"Final val_{metric} {value} after {results['steps']} steps "
    f"({results['wall_time_s']:.0f} s); results in "
    f"{workdir}/results.json"
  )


def run():
  """Runs the command line (`python -m plstm.train`)."""
  app.run(main, flags_parser=_parse_flags)
