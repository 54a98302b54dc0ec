#!/usr/bin/env bash
# Reproducibility and the amortized path's speed at the GPU's default batch size (4096), on a lent GPU machine
# prepared as for gpu.sh (benchmarks/gpu_prepare.sh fills .gpu/ here; run there with carry [".gpu"]).
#     bash benchmarks/gpu_repro.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/popz-gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site:$PWD/.gpu/extra POPZ_DC2_VALIDATION=$PWD/.gpu/test_dc2_validation_9816.hdf5
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
cd benchmarks
step() { echo "== $*"; local t0=$SECONDS; timeout "${STEP_LIMIT:-240}" python3 "$@" 2>&1 | grep -v Warning | tail -12; echo "   ($((SECONDS - t0)) s)"; cp RESULTS.md "$OUT/RESULTS.md"; }
step reproducibility.py --n 4096 --batch 1024
[ -n "${SKIP_NPE:-}" ] || step bench_npe.py --n 20449 --chunk 20449
