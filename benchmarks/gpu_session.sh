#!/usr/bin/env bash
# One lent-GPU call (see benchmarks/gpu.sh for the set-up): the cosmoDC2 MCMC with the calibrated prior, the MCMC
# throughput at 8,192 galaxies, then the mock calibration with longer hyperparameter chains (CAL_LIMIT s).
set -u
SDSS_LIMIT=0 DC2_LIMIT=${DC2_LIMIT:-230} FIT_LIMIT=${FIT_LIMIT:-110} DC2_HYPER=calibrations/hyper_dc2_mf_nozp \
  bash benchmarks/gpu_fits.sh
STEP_TAIL=40
source benchmarks/gpu_env.sh || exit 1
cd benchmarks
STEP_LIMIT=${CAL_LIMIT:-180} step calibrate_mock.py --n 20000 --proposals 256 --steps ${CAL_STEPS:-300} --keep "$OUT/hyper_mock20k"
