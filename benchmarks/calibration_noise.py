"""Other-bands calibration noise: one MCMC seed, three calibration seeds; how much do the zero-points move?

Usage: python calibration_noise.py K [FOLDER]. FOLDER holds mock.parquet (the 300-galaxy mock of
tests/conftest.py::offset_mock, tract 1's g 10% bright) and hyper/mcmc_seed.npz from a
`popz calibrate FOLDER/mock.parquet --out FOLDER/hyper --bands u,g,r,i,z,y --filters lsst2023-u,...,lsst2023-y
--mcmc-steps 200 --reference-band r --no-floors` run. Prints the zero-points (tract 0 / tract 1) per calibration seed.
Results are in docs/calibration.md (written by hand; no RESULTS section).
"""
import sys

import jax.numpy as jnp
import numpy as np

from popz.config import load_model
from popz.data_model import make_extinction_table
from popz.emulate.bands import DEFAULT_ERROR_MAG, band_photometry
from popz.emulate.files import load
from popz.infer.hierarchical import CalibrationSettings, calibrate
from popz.infer.hierarchical import GaussianProposal as GP
from popz.infer.sample_proposals import PopulationProposal
from popz.io.catalog import observations_from_table, read_table, to_rubin_columns
from popz.population import make_population_prior
from popz.sps.filters import load_bands
from popz.sps.photometry import AB_MAG_OF_ONE_NJY

K = int(sys.argv[1]) if len(sys.argv) > 1 else 64
folder = sys.argv[2] if len(sys.argv) > 2 else "/work/tmp/ob/run1"
config = load_model("lsst-default")
labels = tuple("ugrizy")
bp = load_bands([f"lsst2023-{b}" for b in labels])
table = read_table(f"{folder}/mock.parquet")
rubin = to_rubin_columns(table, labels)
data = observations_from_table(rubin, labels, [0, 1])
prior = make_population_prior(config)
phot = band_photometry(load("lsst-default", kind="spectrum", config=config), bp, DEFAULT_ERROR_MAG)
with np.load(f"{folder}/hyper/mcmc_seed.npz") as s:
    flow = PopulationProposal(*(jnp.asarray(s[n]) for n in ("lower", "upper", "u_loc", "u_scale")))
    gauss = GP(jnp.asarray(s["mean"]), jnp.asarray(s["chol"]))
for seed in (0, 1, 2):
    settings = CalibrationSettings(n_proposals=K, rounds=2, n_steps=100, n_burn=20, floors=False, seed=seed, reference_band=2,
                                   gaussian_share=0.875, keep_covariance=True)
    r = calibrate(data.observations, n_tracts=2, flow=flow, emulator=phot, prior=prior, extinction=make_extinction_table(bp),
                  settings=settings, selection_band=3, selection_flux_nJy=10 ** (-0.4 * (25.3 - AB_MAG_OF_ONE_NJY)), initial_gaussians=gauss)
    zp = r.zero_points
    print(f"K={K} seed {seed}: g {zp[0,1]:.4f}/{zp[1,1]:.4f} u {zp[0,0]:.4f}/{zp[1,0]:.4f} i {zp[0,3]:.4f}/{zp[1,3]:.4f} sd g {r.zero_points_std[0,1]:.4f} R-hat {r.r_hat.max():.2f}", flush=True)
