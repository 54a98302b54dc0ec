#!/usr/bin/env bash
# Reproducibility and the amortized path's speed at the GPU's default batch size (4096), on a lent GPU machine
# prepared as for gpu.sh (benchmarks/gpu_prepare.sh fills .gpu/ here; run there with carry [".gpu"]).
#     bash benchmarks/gpu_repro.sh
set -u
DEFAULT_LIMIT=240 STEP_TAIL=12
source benchmarks/gpu_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
cd benchmarks
step reproducibility.py --n 4096 --batch 1024
[ -n "${SKIP_NPE:-}" ] || step bench_npe.py --n 20449 --chunk 20449
