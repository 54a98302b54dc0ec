#!/usr/bin/env bash
# The accurate path's GPU runs (issue 5): popz mcmc on all 5,000 SDSS MGS test galaxies through the spectrum
# emulator, the MCMC throughput at 8,192 galaxies, and popz mcmc on all 20,449 cosmoDC2 validation
# galaxies. Set up as for gpu.sh (benchmarks/gpu_prepare.sh fills .gpu/ here; run there with carry [".gpu"]).
# The popz results of peers.py come back in $OUT/peers; put them in the same folders here and run
#     python benchmarks/peers.py --n 20449 --datasets dc2 --keep DIR ;  ... --n 5000 --datasets sdss --sdss-mcmc-n 5000 --keep DIR
# to score them beside the peers. DC2_HYPER=calibrations/hyper_dc2_mf_nozp (a popz calibrate folder, relative to
# benchmarks/) fits cosmoDC2 with that calibration; score it here with the same --hyper.
set -u
STEP_TAIL=12
source benchmarks/gpu_env.sh || exit 1
mkdir -p "$OUT/peers"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
KEEP=/tmp/peers; cp -r .gpu/peers "$KEEP"
cd benchmarks
after_step() { for f in "$KEEP"/*/popz_*.npz; do [ -e "$f" ] && cp "$f" "$OUT/peers/$(basename "$(dirname "$f")")__$(basename "$f")"; done; }
STEP_LIMIT=${SDSS_LIMIT:-290} step peers.py --n 5000 --datasets sdss --only "popz mcmc" --sdss-mcmc-n 5000 --keep "$KEEP"
STEP_LIMIT=${DC2_LIMIT:-170} step peers.py --n 20449 --datasets dc2 --only "popz mcmc" --keep "$KEEP" ${DC2_HYPER:+--hyper "$DC2_HYPER"}
STEP_LIMIT=${FIT_LIMIT:-110} step bench_fit.py --galaxies 8192 --steps 2000
