#!/usr/bin/env bash
# Task 1 of Neil et al. (2016) complete: 3 conditions x 3 models, each run
# training NUM_SEEDS seeds together (one vmapped program), then the figure.
#   scripts/freq_task_sweep.sh ROOT [VARIANT] [NUM_SEEDS] [--config.* ...]
# (paper, 5 seeds); e.g. the study of docs/results.md, 17 epochs each:
#   scripts/freq_task_sweep.sh /tmp/task1 paper 5 --config.num_epochs=17
# Runs land in ROOT/{condition}/{model}; re-running resumes unfinished ones.
set -euo pipefail
root=${1:?usage: scripts/freq_task_sweep.sh ROOT [VARIANT] [NUM_SEEDS] [--config.* ...]}
variant=${2:-paper}
num_seeds=${3:-5}
shift $(( $# < 3 ? $# : 3 ))
for condition in regular highres async; do
  for model in plstm bn_lstm lstm; do
    python -m plstm.train --config="configs/freq_task.py:${variant}" \
      --workdir="${root}/${condition}/${model}" \
      --config.model.name="${model}" --config.data.condition="${condition}" \
      --config.seed=1 --config.num_seeds="${num_seeds}" \
      --config.progress_bar=False "$@"
  done
done
python scripts/figures.py bars --root="${root}" --out="${root}/task1_bars.png"
