#!/usr/bin/env bash
# Rebuilds the shipped posterior flow (src/popz/data/posteriors/lsst-default) as it was made on 2026-11-27 on one
# lent H100, about 6 minutes of training in all: four fine-tunings, each from the one before, the first from the
# flow shipped before them (weights a71f7250...). Every run reads the 2,000,000-galaxy pool that the first one
# built (pool.npz, sha256 eb7f22c8...), copied into its folder. The same commands run on a CPU, some 50 times slower.
#     bash benchmarks/train_flow_chain.sh START_FLOW WORKDIR      # START_FLOW: a folder holding the a71f7250... flow
set -euo pipefail
start=$1 w=$2 PY=${PY:-python3}
mkdir -p "$w"
common="--batch-size 4096 --pool-size 2000000"
$PY -m popz.cli train-posterior --out "$w/flow" --steps 2000 --init "$start" $common --learning-rate 5e-4
mkdir -p "$w/flow2" && cp "$w/flow/pool.npz" "$w/flow2/"
$PY -m popz.cli train-posterior --out "$w/flow2" --init "$w/flow" --steps 3000 $common --learning-rate 3e-4
mkdir -p "$w/flow3" && cp "$w/flow/pool.npz" "$w/flow3/"
$PY -m popz.cli train-posterior --out "$w/flow3" --init "$w/flow2" --steps 11000 $common --learning-rate 3e-4
mkdir -p "$w/flow4" && cp "$w/flow/pool.npz" "$w/flow4/"
$PY -m popz.cli train-posterior --out "$w/flow4" --init "$w/flow3" --steps 11000 $common --learning-rate 2e-4 --seed 1
echo "the flow to ship: $w/flow4 (weights.eqx, manifest.json)"
