#!/bin/bash
# popz calibrate on the SDSS MGS catalog (../shared/data/sdss_mgs), no redshifts used, in its own ugriz curves
# through the spectrum emulator; then photo-z of the 5,000 test galaxies with the calibration (photoz_sdss.py
# writes its RESULTS section). Usage, from the repository root:
#   bash benchmarks/calibrate_sdss.sh OUT_FOLDER [extra popz calibrate options, e.g. --reference-band r]
# About 10 min for the calibration (the MCMC seed of 1,000 galaxies: 7 min) and 27 min for the fit on 2 cores.
set -euo pipefail
out=${1:?usage: calibrate_sdss.sh OUT_FOLDER [popz calibrate options]}
shift
data=${POPZ_SDSS_MGS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/sdss_mgs}
f=$data/filters
.venv/bin/popz calibrate "$data/sdss_mgs.parquet" --out "$out/hyper" --subsample 1000 \
  --bands u,g,r,i,z --filters "$f/sdss_u.dat,$f/sdss_g.dat,$f/sdss_r.dat,$f/sdss_i.dat,$f/sdss_z.dat" \
  --flux-columns 'mag_{band}' --error-columns 'magerr_{band}' --units mag --assume-dereddened \
  --proposals 512 --steps 1000 --mcmc-steps 1000 --iterations 2 --selection 'r<17.77' "$@"
cd benchmarks
../.venv/bin/python photoz_sdss.py --n 5000 --n-burn 500 --n-steps 500 --hyper "$out/hyper" --out "$out/fit"
