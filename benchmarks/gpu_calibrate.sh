#!/usr/bin/env bash
# The calibration benchmarks on a lent GPU (see benchmarks/gpu.sh for the set-up; .gpu/ made by gpu_prepare.sh).
set -u
STEP_TAIL=30
source benchmarks/gpu_env.sh || exit 1
cd benchmarks
step calibrate_mock.py --n 20000 --proposals 256 --steps 1000
step calibrate_dc2.py --subsample 20449 --proposals 256 --steps 1000
