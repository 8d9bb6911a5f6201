"""The two floors: the library (`import plstm`) never imports the trainer
(`plstm.train`), and the trainer's compiled step compiles once."""

import ast
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from configs import freq_task as freq_config
from plstm import parallel
from plstm.train import loop, packing, steps
from plstm.train import task as task_lib

ROOT = Path(__file__).parent.parent
# The trainer and the packages only it needs. absl itself is not here:
# optax and flax import absl.logging (absl-py is their dependency), but
# not absl.app, with which the trainer's command line parses its flags.
TRAINER_MODULES = (
  "plstm.train",
  "absl.app",
  "ml_collections",
  "orbax",
  "tensorboardX",
  "matplotlib",
  "tqdm",
)


def test_import_plstm_loads_no_trainer_module():
  code = (
    "import sys, plstm\n"
    "loaded = {m.split('.')[0] for m in sys.modules} | set(sys.modules)\n"
    f"print(','.join(m for m in {TRAINER_MODULES!r} if m in loaded))\n"
  )
  out = subprocess.run(
    [sys.executable, "-c", code],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=True,
  )
  assert out.stdout.strip() == "", f"import plstm loads {out.stdout.strip()}"


def test_no_library_module_imports_the_trainer():
  """Every import statement of plstm/*.py (the library floor) names a
  module outside plstm.train."""
  for path in sorted((ROOT / "plstm").glob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom) and node.module:
        names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
      elif isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      else:
        continue
      bad = [n for n in names if n.startswith("plstm.train")]
      bad += [n for n in names if n in ("ml_collections", "absl", "orbax")]
      assert not bad, f"{path.name} imports {bad}"


def test_a_second_train_step_does_not_recompile():
  """The driver's jitted train step, called on the next step's batch,
  reuses its first compilation (as nanodo checks)."""
  config = freq_config.get_config("smoke")
  config.num_seeds = 2
  models = packing.models(config)
  model = steps.model_of(config, task_lib.experiment(config))
  task = model({}).task
  mesh = loop.make_mesh(models, config.data.batch_size, 1)
  init_state, train_step, eval_step = steps.compile_steps(model, models, mesh)
  data = jax.NamedSharding(mesh, jax.P(None, parallel.DATA))
  keys = [task_lib.seed_keys(s) for s in models.seeds]

  def batch(step):
    stacked = steps.stack([task.train_batch(k.data, step) for k in keys])
    return parallel.global_batch(stacked, data)

  state = init_state()
  losses = []
  for step in range(3):
    state, metrics = train_step(state, batch(step))
    losses.append(np.asarray(metrics["loss"]))
  assert train_step._cache_size() == 1
  assert int(np.asarray(state.step)[0]) == 3
  assert np.all(np.isfinite(losses)) and not np.allclose(losses[0], losses[2])


def test_the_trainer_without_its_dependencies_names_the_extra():
  code = "import sys; sys.modules['tqdm'] = None; import plstm.train"
  out = subprocess.run(
    [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True
  )
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]
  assert last == (
    "ModuleNotFoundError: plstm.train needs tqdm, one of the trainer's "
    "dependencies: pip install -e '.[train]'."
  )
