"""Other-bands calibration, alternating: an MCMC fit of every galaxy at the current zero-points, Gaussians fitted to
it, one importance-sampling round; three alternations. On the 300-galaxy mock of calibration_noise.py (its FOLDER
must hold mock.parquet). Usage: python calibration_alternate.py CALIBRATION_SEED [FOLDER]. Results in
docs/calibration.md (written by hand).
"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from popz.config import load_model
from popz.data_model import default_data_model, make_extinction_table
from popz.emulate.bands import DEFAULT_ERROR_MAG, band_photometry
from popz.emulate.files import load
from popz.infer.fit import FitSettings, fit_batch
from popz.infer.hierarchical import CalibrationSettings, calibrate
from popz.infer.sample_proposals import gaussians_from_samples, population_proposal
from popz.io.catalog import observations_from_table, read_table, to_rubin_columns
from popz.population import make_population_prior
from popz.sps.filters import load_bands
from popz.sps.photometry import AB_MAG_OF_ONE_NJY

cal_seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
folder = sys.argv[2] if len(sys.argv) > 2 else "/work/tmp/ob/run1"
config = load_model("lsst-default")
labels = tuple("ugrizy")
bp = load_bands([f"lsst2023-{b}" for b in labels])
rubin = to_rubin_columns(read_table(f"{folder}/mock.parquet"), labels)
obs = observations_from_table(rubin, labels, [0, 1]).observations
prior = make_population_prior(config)
phot = band_photometry(load("lsst-default", kind="spectrum", config=config), bp, DEFAULT_ERROR_MAG)
ext = make_extinction_table(bp)
zp = np.ones((2, 6), np.float32)
t0 = time.time()
for it in range(3):
    dm = default_data_model(2, 6, error_floor=0.02)
    dm = dm._replace(zero_point=jnp.concatenate([jnp.asarray(zp), jnp.ones((1, 6))]))
    parts = []
    for k, s in enumerate((0, 150)):
        o = jax.tree.map(lambda a: a[s:s + 150], obs)
        f = fit_batch(o, emulator=phot, prior=prior, hyper=prior.hyper(), data_model=dm, extinction=ext,
                      settings=FitSettings(n_burn=100, n_steps=100, seed=it), batch_index=k)
        parts.append(np.asarray(f.samples))
    samples = np.concatenate(parts)
    flow = population_proposal(samples, prior.lower, prior.upper)
    gauss = gaussians_from_samples(samples, flow)
    settings = CalibrationSettings(n_proposals=64, rounds=1, n_steps=100, n_burn=20, floors=False, seed=cal_seed, reference_band=2,
                                   gaussian_share=0.875, keep_covariance=True)
    r = calibrate(obs, n_tracts=2, flow=flow, emulator=phot, prior=prior, extinction=ext, settings=settings, selection_band=3,
                  selection_flux_nJy=10 ** (-0.4 * (25.3 - AB_MAG_OF_ONE_NJY)), initial_gaussians=gauss)
    zp = np.asarray(r.zero_points, np.float32)
    print(f"seed {cal_seed} alternation {it}: g {zp[0,1]:.4f}/{zp[1,1]:.4f} u {zp[0,0]:.4f}/{zp[1,0]:.4f} i {zp[0,3]:.4f}/{zp[1,3]:.4f} sd g {r.zero_points_std[0,1]:.4f} R-hat {r.r_hat.max():.2f} t {time.time()-t0:.0f}s", flush=True)
