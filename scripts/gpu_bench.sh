#!/usr/bin/env bash
# The benchmark's GPU rows (README, Speed) in one run, on a CUDA machine that
# has JAX with its CUDA plugin, flax, optax, torch and pytest but not the
# rest of this project's dependencies, and no network.
#
#   bash scripts/gpu_bench.sh fetch   # where pip works: the missing wheels
#                                     # (ml-collections, snntorch) into .whl/
#   bash scripts/gpu_bench.sh [ARGS]  # on the GPU machine, from a copy of the
#                                     # repo with .whl/: bench.py ARGS (default
#                                     # --only=lstm,plstm,snn,sparse), then
#                                     # the tests of plstm.scan and plstm.sparse
#
# Writes env.txt, bench.md and tests.log to $OUT (default ./gpu_bench) as it
# goes, so a run cut short still leaves its finished tables. Exits non-zero
# if the benchmark or the tests failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == fetch ]]; then
  exec python3 -m pip download --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .whl \
    ml-collections==1.1.0 snntorch==1.0.0
fi

out=${OUT:-gpu_bench}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile \
    --target /tmp/plstm_site .whl/*.whl || exit
  export PYTHONPATH=/tmp/plstm_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1

args=("$@")
if ((${#args[@]} == 0)); then
  args=(--only=lstm,plstm,snn,sparse)
fi
status=0
{
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
  python3 -c 'import jax, torch; print("jax", jax.__version__, jax.devices());
print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
} 2>&1 | tee "$out/env.txt" || status=1
python3 scripts/bench.py "${args[@]}" 2>&1 | tee "$out/bench.md" || status=1
python3 -m pytest -q -p no:cacheprovider tests/test_loop.py \
  tests/test_sparse.py tests/test_recurrent.py 2>&1 | tee "$out/tests.log" || status=1
exit "$status"
