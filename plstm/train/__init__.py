r"""The trainer: trains and evaluates an experiment from an ml-collections
config. The library (`import plstm`) never imports it.

Its modules: `cli` (the command line: flags, devices, hosts, logs, one line
per error), `loop` (`train_and_evaluate`: restore -> loop -> finish),
`task` (the experiment contract), `steps` (the compiled steps, vmapped over
packed models), `packing` (`config.pack`), `optimizers` (`config.optimizer`),
`checkpoints` and `metrics`.

  python -m plstm.train --config=configs/freq_task.py --workdir=/tmp/freq \
      [--config.model.hidden=64 ...]

`config.experiment` names a module (a dotted path, e.g.
`experiments.freq_task`) whose `make_task(config)` returns a
`plstm.train.task.Task`. Each seed gets one root key, split by purpose
(`plstm.train.task.seed_keys`), and every batch and key is a function of those
keys and the step, so a run is resumed exactly from its step alone.

The config's headline metric (`config.metric`, with `config.mode` `max` or
`min`) is what the epoch line prints, `config.target` is compared with, and
results.json reports as best. `config.early_stop` (optional: `metric`,
`window`, `below`) ends training once the mean of validation `metric` over
the last `window` evaluations is below `below`.

`config.num_seeds` = S > 1 trains the seeds config.seed, ..., config.seed +
S - 1 together, as one compiled program vmapped over a leading model axis
of the state. Metrics are then the mean over seeds, with their std and
per-seed values beside them. `config.pack` (`plstm.train.packing`) adds
points of a hyperparameter sweep to that axis: points x seeds models in one
program; each record then holds the best point's metrics and every model's
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
(see `plstm.train.checkpoints`). A non-finite metric stops the run naming its
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

try:
  from plstm.train.checkpoints import Interrupted
  from plstm.train.loop import train_and_evaluate
except ModuleNotFoundError as e:  # The library's install lacks the trainer's.
  raise ModuleNotFoundError(
    f"plstm.train needs {e.name}, one of the trainer's dependencies: "
    "pip install -e '.[train]'.",
    name=e.name,
  ) from e

__all__ = ["Interrupted", "train_and_evaluate"]
