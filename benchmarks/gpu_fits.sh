#!/usr/bin/env bash
# The accurate path's GPU runs (issue 5): popz mcmc on all 5,000 SDSS MGS test galaxies through the spectrum
# emulator, the MCMC throughput at 8,192 galaxies, and popz mcmc on all 20,449 cosmoDC2 validation
# galaxies. Set up as for gpu.sh (benchmarks/gpu_prepare.sh fills .gpu/ here; run there with carry [".gpu"]).
# The popz results of peers.py come back in $OUT/peers; put them in the same folders here and run
#     python benchmarks/peers.py --n 20449 --datasets dc2 --keep DIR ;  ... --n 5000 --datasets sdss --sdss-mcmc-n 5000 --keep DIR
# to score them beside the peers.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/popz-gpu-out}; mkdir -p "$OUT/peers"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site:$PWD/.gpu/extra POPZ_DC2_VALIDATION=$PWD/.gpu/test_dc2_validation_9816.hdf5
export POPZ_SDSS_MGS=$PWD/.gpu/sdss_mgs POPZ_IGM_TABLE=$PWD/.gpu/inoue14_igm.npz
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
KEEP=/tmp/peers; cp -r .gpu/peers "$KEEP"
cd benchmarks
step() { echo "== $*"; local t0=$SECONDS; timeout "${STEP_LIMIT:-200}" python3 "$@" 2>&1 | grep -v Warning | tail -12; echo "   ($((SECONDS - t0)) s)";
         cp RESULTS.md "$OUT/RESULTS.md"; for f in "$KEEP"/*/popz_*.npz; do [ -e "$f" ] && cp "$f" "$OUT/peers/$(basename "$(dirname "$f")")__$(basename "$f")"; done; }
STEP_LIMIT=${SDSS_LIMIT:-290} step peers.py --n 5000 --datasets sdss --only "popz mcmc" --sdss-mcmc-n 5000 --keep "$KEEP"
STEP_LIMIT=${DC2_LIMIT:-170} step peers.py --n 20449 --datasets dc2 --only "popz mcmc" --keep "$KEEP"
STEP_LIMIT=${FIT_LIMIT:-110} step bench_fit.py --galaxies 8192 --steps 2000
