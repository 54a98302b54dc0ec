#!/usr/bin/env bash
# One lent-GPU call: the MCMC throughput at GALAXIES (16,384) galaxies, then a fine-tuning of the shipped posterior
# flow with large batches for the rest of the call (BUDGET s in all, 540). The new flow comes back in $OUT/flow;
# score it here with benchmarks/npe_calibration.py --posterior DIR before shipping it.
# Set up as for gpu.sh: bash benchmarks/gpu_prepare.sh here, then run with carry [".gpu"].
# PY=.venv/bin/python GALAXIES=64 FLOW_STEPS=50 BUDGET=300 LOCAL=1 bash benchmarks/gpu_flow.sh   # a dry run here
set -u
t_start=$SECONDS
if [ -z "${LOCAL:-}" ]; then source benchmarks/gpu_env.sh || exit 1; else OUT=${OUT:-/tmp/popz-gpu-out}; mkdir -p "$OUT"; fi
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee "$OUT/gpu.txt"
(cd benchmarks && timeout "${FIT_LIMIT:-200}" $PY bench_fit.py --galaxies "${GALAXIES:-16384}" --steps 2000 2>&1 | grep -v Warning | tail -8
 cp RESULTS.md "$OUT/RESULTS.md")
echo "   (bench_fit done at $((SECONDS - t_start)) s)"

# the flow: a short run times the steps (pool building and compilation included, so the estimate is safe), then
# the real run starts from the shipped flow on the same pool with as many steps as the time left allows
BATCH=${BATCH:-4096} LR=${LR:-5e-4} POOL=${POOL:-2000000}
A=/tmp/flow_timing B=/tmp/flow; rm -rf "$A" "$B"
args="--init src/popz/data/posteriors/lsst-default --batch-size $BATCH --learning-rate $LR --pool-size $POOL"
t0=$SECONDS
timeout 200 $PY -m popz.cli train-posterior --out "$A" --steps 1000 $args 2>&1 | grep -v Warning | tail -3
per_1000=$((SECONDS - t0)); left=$(( ${BUDGET:-540} - (SECONDS - t_start) - 40 ))
steps=${FLOW_STEPS:-$(( left * 1000 / (per_1000 > 0 ? per_1000 : 1) / 1000 * 1000 ))}
echo "   1000 steps took ${per_1000} s (pool and compilation included); $left s left: $steps steps"
mkdir -p "$B" && cp "$A"/pool*.npz "$B"/ 2>/dev/null
timeout "$left" $PY -m popz.cli train-posterior --out "$B" --steps "$steps" $args 2>&1 | grep -v Warning | tail -3
mkdir -p "$OUT/flow" && cp "$B"/manifest.json "$B"/weights.eqx "$OUT/flow/" 2>/dev/null
# if the time ran out first, bring back the checkpoint (rerun there with the same command to finish)
[ -e "$OUT/flow/manifest.json" ] || cp "$B"/*.json "$B"/*.eqx "$OUT/flow/" 2>/dev/null
ls -la "$OUT/flow"; echo "   (all done at $((SECONDS - t_start)) s)"
