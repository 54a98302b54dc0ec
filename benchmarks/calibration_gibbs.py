"""Gibbs calibration (popz.infer.gibbs) of the other-bands mock: do the replicas' zero-points cover the truth?

Usage: python calibration_gibbs.py [FOLDER] [--iterations N] [--seed S] [--floors]
FOLDER holds mock.parquet: the 300-galaxy mock of tests/conftest.py::offset_mock (2 tracts; tract 1's g 10%
bright, every other zero-point 1). The galaxies start from the last walkers of an MCMC fit at zero-points 1
(32 walkers x (300 + 100) steps), r is the reference band, the selection term is the mock's cut i < 25.3.
Prints each zero-point's median +/- sd beside the truth, the pull, and the split R-hat across the 32 replicas.
"""
import argparse
import time

import jax.numpy as jnp
import numpy as np

from popz.config import load_model
from popz.data_model import default_data_model, make_extinction_table
from popz.emulate.files import load
from popz.infer.fit import FitSettings, fit_batch
from popz.infer.gibbs import GibbsSettings, gibbs_calibrate
from popz.infer.hierarchical import CalibrationSettings, make_selection
from popz.io.catalog import observations_from_table, read_table, to_rubin_columns
from popz.population import make_population_prior
from popz.sps.filters import load_bands
from popz.sps.photometry import AB_MAG_OF_ONE_NJY

parser = argparse.ArgumentParser()
parser.add_argument("folder", nargs="?", default="/work/tmp/ob/run1")
parser.add_argument("--iterations", type=int, default=600)
parser.add_argument("--burn", type=int, default=200)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--floors", action="store_true")
parser.add_argument("--save", default=None, help="write the replicas' chains to this .npz")
parser.add_argument("--galaxy-steps", type=int, default=4)
args = parser.parse_args()

config = load_model("lsst-default")
labels = tuple("ugrizy")
bands = load_bands(config.bands)
table = read_table(f"{args.folder}/mock.parquet")
data = observations_from_table(to_rubin_columns(table, labels), labels, [0, 1])
obs = data.observations
prior = make_population_prior(config)
emulator = load("lsst-default")
extinction = make_extinction_table(bands)
t0 = time.perf_counter()
fit = fit_batch(obs, emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=default_data_model(2, 6, 0.02),
                extinction=extinction, settings=FitSettings(n_burn=300, n_steps=100, thin=10, seed=args.seed))
start = fit.samples[:, -32:, :]
print(f"MCMC start: {time.perf_counter() - t0:.0f} s", flush=True)
settings = CalibrationSettings(reference_band=2, floors=args.floors, fixed_floor=0.02)
limit = 10 ** (-0.4 * (25.3 - AB_MAG_OF_ONE_NJY))
import jax
selection = make_selection(jax.random.key(7000), prior=prior, hyper0=prior.hyper(), emulator=emulator, extinction=extinction,
                           observations=obs, used=jnp.ones(obs.flux_nJy.shape[0], bool), n_tracts=2, band=3, flux_limit_nJy=limit)
t0 = time.perf_counter()
r = gibbs_calibrate(obs, start, n_tracts=2, emulator=emulator, prior=prior, extinction=extinction, settings=settings,
                    gibbs=GibbsSettings(n_iterations=args.iterations, n_burn=args.burn, galaxy_steps=args.galaxy_steps, seed=args.seed),
                    selection=selection, progress=lambda m: print(f"{time.perf_counter() - t0:6.0f} s  {m}", flush=True))
print(f"Gibbs: {time.perf_counter() - t0:.0f} s; eta acceptance {np.mean(r.acceptance):.2f}; R-hat max {np.max(r.r_hat):.3f}")
truth = np.ones((2, 6))
truth[1, 1] = 1.10
for t in range(2):
    for b, name in enumerate(labels):
        zp, sd = r.zero_points[t, b], r.zero_points_std[t, b]
        pull = (zp - truth[t, b]) / sd if sd > 0 else float("nan")
        rh = r.r_hat[t * 6 + b]
        print(f"tract {t} {name}: {zp:.4f} +/- {sd:.4f} (truth {truth[t, b]:.2f}, pull {pull:+.2f}, R-hat {rh:.3f})")
if args.floors:
    print("floors", np.round(r.error_floors, 4), "+/-", np.round(r.error_floors_std, 4))
if args.save:
    np.savez(args.save, chains=r.chains, names=np.asarray(r.names), zero_points=r.zero_points, zero_points_std=r.zero_points_std,
             r_hat=r.r_hat)
