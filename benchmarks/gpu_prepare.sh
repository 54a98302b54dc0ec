#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what benchmarks/gpu.sh needs on a lent GPU machine that has JAX, equinox and
# CUDA but not popz's other dependencies: wheels for its Python 3.12, dust_extinction's sources and the cosmoDC2
# validation file. Run here, from the repository root, after `make install`.
set -euo pipefail
grep -qx '/.gpu/' .git/info/exclude || echo /.gpu/ >> .git/info/exclude
mkdir -p .gpu/whl .gpu/extra
platforms=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 any; do
  platforms="$platforms --platform $p"
done
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms -d .gpu/whl \
  astropy pyerfa astropy-iers-data pydantic pydantic_core annotated-types typing-inspection flowjax paramax \
  qp-prob tables-io Deprecated speclite numexpr photerr typer click rich shellingham markdown-it-py mdurl pygments
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp -r "$site/dust_extinction" .gpu/extra/   # pure Python, not on the wheel mirror
cp "$site/rail/examples_data/testdata/test_dc2_validation_9816.hdf5" .gpu/
du -sh .gpu
# for gpu_fits.sh: the SDSS data, the IGM table (the spectrum emulator needs it; bagpipes is absent there) and
# the peer benchmark's data folders (popz's rows are fitted there, the peers' here, scored together by peers.py)
rm -rf .gpu/sdss_mgs .gpu/peers && cp -r ../shared/data/sdss_mgs .gpu/sdss_mgs
POPZ_IGM_TABLE=$PWD/.gpu/inoue14_igm.npz .venv/bin/python -c "from popz.sps.igm import _inoue14_table; _inoue14_table()"
(cd benchmarks && POPZ_SDSS_MGS=$PWD/../.gpu/sdss_mgs ../.venv/bin/python -c "
from pathlib import Path
import peers
peers.write_data('dc2', 20449, 0, Path('../.gpu/peers/dc2-n20449-seed0'))
peers.write_data('sdss', 5000, 0, Path('../.gpu/peers/sdss-n5000-seed0'))")
# for gpu_sbc.sh: the SBC mock, photometry from the SPS simulator (bagpipes is here only)
mkdir -p .gpu/mocks
[ -e .gpu/mocks/sbc_seed21_simulator.parquet ] || (cd benchmarks && ../.venv/bin/python sbc_mock.py --n 1000 --seed 21 \
  --save-mock ../.gpu/mocks/sbc_seed21_simulator.parquet)
du -sh .gpu
