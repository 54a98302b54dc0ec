# Sourced by the benchmarks/gpu*.sh scripts on a lent GPU machine (JAX, equinox and CUDA there, popz's other
# dependencies as wheels in .gpu/, made here by benchmarks/gpu_prepare.sh): installs the wheels, sets the paths and
# defines `step SCRIPT ARGS...`, which runs one benchmark under a time limit and copies RESULTS.md to $OUT.
#     source benchmarks/gpu_env.sh || exit 1
# Per script: DEFAULT_LIMIT (s, 200) and STEP_TAIL (lines of output kept, 15); per step: STEP_LIMIT; after_step, if
# the script defines it, runs after each step. STEP_LIMIT=0 skips the step.
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/popz-gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || return 1
export PYTHONPATH=$PWD/src:/tmp/site:$PWD/.gpu/extra POPZ_DC2_VALIDATION=$PWD/.gpu/test_dc2_validation_9816.hdf5
export POPZ_SDSS_MGS=$PWD/.gpu/sdss_mgs POPZ_IGM_TABLE=$PWD/.gpu/inoue14_igm.npz

step() {
  if [ "${STEP_LIMIT:-}" = 0 ]; then echo "== skipped (limit 0): $*"; return 0; fi
  echo "== $*"; local t0=$SECONDS
  timeout "${STEP_LIMIT:-${DEFAULT_LIMIT:-200}}" python3 "$@" 2>&1 | grep -v Warning | tail -"${STEP_TAIL:-15}"
  echo "   ($((SECONDS - t0)) s)"; cp RESULTS.md "$OUT/RESULTS.md"
  if declare -F after_step >/dev/null; then after_step; fi
}
