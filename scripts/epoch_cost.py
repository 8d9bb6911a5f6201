r"""The cost of one epoch of a config, measured over a few steps, to size runs.

  python scripts/epoch_cost.py --config=configs/freq_task.py:paper \
      --config.num_seeds=5 --config.data.condition=highres [--steps=20]

Builds the run as `plstm.train` does (its packed models, mesh and compiled
steps), then times `--steps` training steps (after one untimed step) and
one evaluation, and prints one JSON line: seconds per step, per
evaluation and per epoch (steps_per_epoch steps and one evaluation), the
compile time, and the epochs that fit in `--budget_s` seconds. Batches are
made as the driver makes them, inside the timing.
"""

import json
import sys
import time
from pathlib import Path

import jax
from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plstm import parallel  # noqa: E402
from plstm.train import cli, loop, packing, steps  # noqa: E402
from plstm.train import task as task_lib  # noqa: E402

# --config and --cpu_devices are plstm.train's flags; no workdir is written.
flags.FLAGS.set_default("workdir", "unused")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed training steps.")
_BUDGET = flags.DEFINE_float("budget_s", 3600.0, "A run's time budget.")


def main(argv):
  del argv
  cli._use_cpu_devices(flags.FLAGS.cpu_devices)
  config = flags.FLAGS.config
  models = packing.models(config)
  model = steps.model_of(config, task_lib.experiment(config))
  task = model({}).task
  mesh = loop.make_mesh(models, config.data.batch_size, 1)
  data = jax.NamedSharding(mesh, jax.P(None, parallel.DATA))
  keys = [task_lib.seed_keys(s) for s in models.seeds]
  start = time.perf_counter()
  init_state, train_step, eval_step = steps.compile_steps(model, models, mesh)
  state = init_state()

  def batch(step):
    b = steps.stack([task.train_batch(k.data, step) for k in keys])
    return parallel.global_batch(b, data)

  state, _ = jax.block_until_ready(train_step(state, batch(0)))
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for step in range(1, _STEPS.value + 1):
    state, metrics = train_step(state, batch(step))
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - start) / _STEPS.value
  start = time.perf_counter()
  per_seed = [task.eval_batches(k.eval, 1) for k in keys]
  for b in zip(*per_seed, strict=True):
    out = eval_step(state.params, parallel.global_batch(steps.stack(b), data))
  jax.block_until_ready(out)
  eval_s = time.perf_counter() - start
  epoch_s = config.steps_per_epoch * step_s + eval_s
  print(
    json.dumps(
      {
        "models": len(models),
        "devices": mesh.size,
        "compile_s": round(compile_s, 2),
        "step_s": round(step_s, 4),
        "eval_s": round(eval_s, 2),
        "epoch_s": round(epoch_s, 1),
        "epochs_in_budget": int(_BUDGET.value // epoch_s),
      }
    )
  )


if __name__ == "__main__":
  app.run(main)
