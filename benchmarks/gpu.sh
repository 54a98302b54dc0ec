#!/usr/bin/env bash
# The GPU benchmarks in one run, for a machine lent with JAX and CUDA but without popz's other dependencies.
# Wheels for those (built for the GPU machine's Python) and the cosmoDC2 validation file lie in .gpu/
# (ignored by git), made once by benchmarks/gpu_prepare.sh; RESULTS.md comes back in $OUT. The spectrum
# emulator needs bagpipes (absent there) and is skipped.
#     bash benchmarks/gpu.sh            (on the GPU machine, from the repository root)
set -u
source benchmarks/gpu_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax, equinox, flowjax; print(jax.__version__, equinox.__version__, jax.devices())" 2>&1 | tee -a "$OUT/gpu.txt"
cd benchmarks
step bench_emulator.py --n-simulator 0 --batch 1000000 --chunk 65536
step bench_npe.py --n 20449 --chunk 20449
step bench_fit.py --galaxies 1024 --steps 2000   # 4096 ran past 170 s (two full fits plus compilation)
