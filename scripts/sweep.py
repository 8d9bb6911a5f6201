r"""Hyperparameter sweeps: a config's `get_sweep()` as one training command
per point, run here one after another or by any launcher, then a table.

A config file may define `get_sweep()`, a list of points: dicts of dotted
config keys to values, e.g. {"model.name": "lstm", "data.condition":
"async"}. Products and zips are a list comprehension, `itertools.product`
or `zip`. Each point trains in its own workdir ROOT/NAME, NAME its overrides
("condition=async,name=lstm"; a key's last part, or all of it where two
keys share that).

  # One command per line (extra --config.* flags go to every run):
  python scripts/sweep.py --config=configs/freq_task.py:paper \
      --root=/tmp/task1 --print --config.seed=1 --config.num_seeds=5
  # ... then two at a time, or as a Slurm array (line i for task i):
  python scripts/sweep.py ... --print | xargs -P 2 -I{} sh -c '{}'
  python scripts/sweep.py ... --print > runs.txt
  sbatch --array=1-$(wc -l < runs.txt) --wrap \
      'eval "$(sed -n ${SLURM_ARRAY_TASK_ID}p runs.txt)"'
  # Or here, one after another (skipping finished points), then the table:
  python scripts/sweep.py --config=... --root=/tmp/task1 --run
  # The table alone: ROOT/summary.csv and ROOT/summary.md, one row a point
  # (its overrides, then the final metrics of its results.json).
  python scripts/sweep.py --config=... --root=/tmp/task1 --summarize

Every point and override is checked against the config before anything
runs. Overrides take the --config.key=value form. Run from the repository
root, as `python -m plstm.train`.
"""

import copy
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from plstm.train import metrics

# Config files import configs.common from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The results.json fields of each row, before the final val_* metrics
# ({metric}: the run's headline metric, results.json's "metric").
RESULT_FIELDS = (
  "steps",
  "stopped_early",
  "best_val_{metric}",
  "target_reached_step",
  "wall_time_s",
)


def load_sweep(path: str) -> list[dict]:
  """`get_sweep()` of the config file at `path` (without ':variant')."""
  spec = importlib.util.spec_from_file_location(Path(path).stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"{path} defines no get_sweep().")
  return module.get_sweep()


def check(config, points: list[dict]):
  """Raises, naming the point, if a point has an unknown key or a value of
  the wrong type for `config` (a locked ConfigDict)."""
  for point in points:
    try:
      copy.deepcopy(config).update_from_flattened_dict(point)
    except (KeyError, TypeError, AttributeError) as e:
      raise ValueError(f"sweep point {point}: {e}") from None


def run_names(points: list[dict]) -> list[str]:
  """One workdir name per point: key=value pairs joined by commas, with the
  last part of each key unless two keys of the sweep share it."""
  keys = list(dict.fromkeys(k for p in points for k in p))
  last = [k.split(".")[-1] for k in keys]
  short = {
    k: s if last.count(s) == 1 else k for k, s in zip(keys, last, strict=True)
  }
  names = []
  for point in points:
    pairs = [f"{short[k]}={_text(v)}" for k, v in point.items()]
    names.append(re.sub(r"[^\w.,=+()-]", "", ",".join(pairs)) or "default")
  if len(set(names)) < len(names):
    raise ValueError(f"sweep points share a workdir name: {names}")
  return names


def _text(value) -> str:
  """A value as a --config override reads it."""
  if isinstance(value, tuple | list):
    return "(" + ",".join(_text(v) for v in value) + ")"
  return str(value)


def command(
  config_arg: str, workdir: Path, point: dict, extra: list[str]
) -> list[str]:
  """The argv that trains `point`: plstm.train with the extra overrides
  first, then the point's."""
  overrides = [f"--config.{k}={_text(v)}" for k, v in point.items()]
  return [
    sys.executable,
    "-m",
    "plstm.train",
    f"--config={config_arg}",
    f"--workdir={workdir}",
    *extra,
    *overrides,
  ]


def summarize(root: Path, names: list[str], points: list[dict]) -> list[dict]:
  """Writes ROOT/summary.csv and ROOT/summary.md: one row per point (its
  overrides, then the final metrics of its results.json; blank while it has
  none). Returns the rows."""
  rows = []
  for name, point in zip(names, points, strict=True):
    row = {"run": name, **point}
    path = root / name / "results.json"
    if path.exists():
      results = json.loads(path.read_text())
      fields = [f.format(metric=results["metric"]) for f in RESULT_FIELDS]
      row |= {k: results[k] for k in fields}
      row |= {
        k: v
        for k, v in results["final"].items()
        if k.startswith("val_") and not isinstance(v, list)
      }
    rows.append(row)
  metrics.write_table(rows, root)
  return rows


def _run(argv: list[str]) -> int:
  """Runs one point; on Ctrl-C lets it save (it gets the signal too)."""
  proc = subprocess.Popen(argv)
  try:
    return proc.wait()
  except KeyboardInterrupt:
    proc.wait()
    raise


def _overrides(argv: list[str]) -> list[str]:
  """The --config.* overrides in `argv`, as given."""
  extra = [a for a in argv if a.startswith("--config.")]
  for a in extra:
    if "=" not in a:
      raise app.UsageError(f"write {a}=VALUE (with '=').")
  return extra


def _define_flags():
  """The command line's flags (defined only when run as a script, so that
  tests import the functions beside plstm.train's flags)."""
  config_flags.DEFINE_config_file(
    "config",
    None,
    "Config file with get_sweep() (path[:variant]).",
    lock_config=True,
  )
  flags.DEFINE_string("root", None, "Directory of the sweep's runs.")
  flags.DEFINE_bool("print", False, "Print one command per line.")
  flags.DEFINE_bool("run", False, "Run the points here, then summarize.")
  flags.DEFINE_bool("summarize", False, "Write the summary.")
  flags.mark_flags_as_required(["config", "root"])


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad override reported in one line."""
  try:
    return flags.FLAGS(argv)
  except (KeyError, AttributeError) as e:  # a key the config lacks
    while isinstance(e, BaseException):  # ml_collections nests them
      e = e.args[0]
    sys.exit(f"sweep.py: error: unknown config key {' '.join(e.split())}")
  except (flags.Error, TypeError, ValueError) as e:
    message = [line for line in str(e).splitlines() if line.strip()][-1]
    sys.exit(f"sweep.py: error: {message.strip()}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  FLAGS = flags.FLAGS
  if sum((FLAGS.print, FLAGS.run, FLAGS.summarize)) != 1:
    raise app.UsageError("pass one of --print, --run, --summarize.")
  config_arg = config_flags.get_config_filename(FLAGS["config"])
  extra = _overrides(sys.argv)
  root = Path(FLAGS.root)
  try:
    points = load_sweep(config_arg.split(":", 1)[0])
    check(FLAGS.config, points)
    names = run_names(points)
  except ValueError as e:
    sys.exit(f"sweep.py: error: {e}")
  commands = [
    command(config_arg, root / n, p, extra)
    for n, p in zip(names, points, strict=True)
  ]
  if FLAGS.print:
    for argv_ in commands:
      print(shlex.join(argv_))
    return
  failed = []
  if FLAGS.run:
    for name, argv_ in zip(names, commands, strict=True):
      if (root / name / "results.json").exists():
        print(f"sweep.py: {name}: done already", flush=True)
        continue
      print(f"sweep.py: {name}: {shlex.join(argv_)}", flush=True)
      if _run(argv_) != 0:
        failed.append(name)
  rows = summarize(root, names, points)
  done = sum("steps" in row for row in rows)
  print(f"sweep.py: {done} of {len(rows)} runs done; {root}/summary.md")
  if failed:
    sys.exit(f"sweep.py: error: these runs failed: {', '.join(failed)}")


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=_parse_flags)
