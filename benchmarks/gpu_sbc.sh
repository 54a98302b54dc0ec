#!/usr/bin/env bash
# Issue 5 on a lent GPU: simulation-based calibration of the MCMC path on 1,000 mock galaxies (photometry from the
# SPS simulator, made here by benchmarks/gpu_prepare.sh into .gpu/mocks/), with the default moves, with mode jumps,
# and with mode jumps, 64 walkers and 5,000 + 5,000 steps; then the MCMC throughput at 8,192 galaxies.
# Run there with carry [".gpu"]:  bash benchmarks/gpu_sbc.sh
set -u
STEP_TAIL=4
source benchmarks/gpu_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
cd benchmarks
MOCK=(--mock ../.gpu/mocks/sbc_seed21_simulator.parquet --n 1000 --chunk 1000)
after_step() { cp sbc_redshift_ranks*gpu*.png "$OUT/" 2>/dev/null; true; }
STEP_LIMIT=100 step sbc_mock.py "${MOCK[@]}" --n-burn 2000 --n-steps 2000
STEP_LIMIT=100 step sbc_mock.py "${MOCK[@]}" --n-burn 2000 --n-steps 2000 --p-de 0.5 --p-jump 0.1
STEP_LIMIT=150 step sbc_mock.py "${MOCK[@]}" --n-burn 5000 --n-steps 5000 --n-walkers 64 --p-de 0.5 --p-jump 0.1
STEP_LIMIT=190 step bench_fit.py --galaxies 8192 --steps 2000
