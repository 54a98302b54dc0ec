#!/usr/bin/env bash
# The calibration benchmarks on a lent GPU (see benchmarks/gpu.sh for the set-up; .gpu/ made by gpu_prepare.sh).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/popz-gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site:$PWD/.gpu/extra POPZ_DC2_VALIDATION=$PWD/.gpu/test_dc2_validation_9816.hdf5
cd benchmarks
step() { echo "== $*"; local t0=$SECONDS; timeout "${STEP_LIMIT:-200}" python3 "$@" 2>&1 | grep -v Warning | tail -30; echo "   ($((SECONDS - t0)) s)"; cp RESULTS.md "$OUT/RESULTS.md"; }
step calibrate_mock.py --n 20000 --proposals 256 --steps 1000
step calibrate_dc2.py --subsample 20449 --proposals 256 --steps 1000
