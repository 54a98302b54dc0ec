"""Photometry in new bands through the spectrum emulator: the per-pixel search against the log-grid table.

Both ways of integrating the spectrum emulator's rest-frame SED through filter
curves it was not trained for, in the same run on the same machine:
``make_band_table`` (:func:`popz.sps.jax_photometry.rest_sed_to_flux_nJy`:
every pixel edge searched among the filter's samples) and the spectrum
emulator's ``band_table`` (:class:`popz.sps.jax_photometry.LogGridBandTable`:
one slice per redshift), which ``popz fit --filters`` uses.

1. evaluations/s of vmapped magnitudes on prior draws, and the largest
   difference between the two (mag, bands brighter than 35 mag);
2. ``fit_batch`` (MCMC) galaxies/s on real SDSS MGS test galaxies in their own
   ugriz curves, with and without compilation, and how far the two fits' redshift
   medians lie apart (in units of the posterior's sigma).

    python benchmarks/bench_spectrum_photometry.py --galaxies 64 --steps 500
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _results import write_section

SDSS = Path(os.environ.get("POPZ_SDSS_MGS") or Path(__file__).resolve().parents[2] / "shared" / "data" / "sdss_mgs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500, help="burn-in + kept steps (half each)")
    parser.add_argument("--draws", type=int, default=16384, help="prior draws for the evaluation rate")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import pandas as pd

    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.emulate.bands import DEFAULT_ERROR_MAG, BandPhotometry, band_photometry
    from popz.emulate.files import load
    from popz.infer.fit import FitSettings, fit_batch
    from popz.io.catalog import observations_from_table, to_rubin_columns
    from popz.population import TrainingPrior, make_population_prior
    from popz.sps.filters import load_bands
    from popz.sps.jax_photometry import make_band_table

    config = load_model("lsst-default")
    spectrum = load("lsst-default", kind="spectrum", config=config)
    curves = load_bands([str(SDSS / "filters" / f"sdss_{b}.dat") for b in "ugriz"])
    fast = band_photometry(spectrum, curves, DEFAULT_ERROR_MAG)
    slow = BandPhotometry(spectrum=spectrum, bands=make_band_table(tuple(curves)), error_rms_mag=fast.error_rms_mag, band_names=fast.band_names)

    theta = jnp.asarray(TrainingPrior(config).sample(jax.random.key(3), args.draws), jnp.float32)
    rates, mags = {}, {}
    for name, phot in (("search", slow), ("log grid", fast)):
        f = jax.jit(jax.vmap(phot.magnitudes))
        mags[name] = np.asarray(f(theta))
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            jax.block_until_ready(f(theta))
            best = min(best, time.perf_counter() - t0)
        rates[name] = args.draws / best
        print(name, f"{rates[name]:.0f} evaluations/s", flush=True)
    bright = mags["search"] < 35
    max_diff = float(np.max(np.abs(mags["log grid"] - mags["search"])[bright]))

    table = pd.read_parquet(SDSS / "sdss_mgs.parquet")
    table = table[table["split"] == "test"].iloc[: args.galaxies].reset_index(drop=True)
    labels = list("ugriz")
    rubin = to_rubin_columns(table, labels, flux_template="mag_{band}", error_template="magerr_{band}", units="mag", assume_dereddened=True)
    obs = observations_from_table(rubin, labels).observations
    prior = make_population_prior(config)
    common = dict(prior=prior, hyper=prior.hyper(), data_model=default_data_model(0, 5, error_floor=0.02), extinction=make_extinction_table(curves))
    settings = FitSettings(n_burn=args.steps // 2, n_steps=args.steps - args.steps // 2, seed=0)
    fits, speed, cold = {}, {}, {}
    for name, phot in (("search", slow), ("log grid", fast)):
        for attempt in ("cold", "warm"):  # the second call reuses the compiled sampler
            t0 = time.perf_counter()
            fits[name] = fit_batch(obs, emulator=phot, settings=settings, **common).samples[:, :, 0]
            (cold if attempt == "cold" else speed)[name] = args.galaxies / (time.perf_counter() - t0)
        print(name, f"{cold[name]:.3f} galaxies/s with compilation, {speed[name]:.3f} without", flush=True)
    ref = fits["search"]
    sigma = (np.percentile(ref, 84, axis=1) - np.percentile(ref, 16, axis=1)) / 2
    shift = np.abs(np.median(fits["log grid"], axis=1) - np.median(ref, axis=1)) / sigma
    z_spec = table["z_spec"].to_numpy()
    dz = {k: (np.median(v, axis=1) - z_spec) / (1 + z_spec) for k, v in fits.items()}

    body = [
        f"JAX {jax.__version__} on `{jax.devices()[0].platform}`; the shipped spectrum emulator through the SDSS ugriz curves of "
        f"../shared/data/sdss_mgs/filters (never trained on).",
        "",
        "| what | per-pixel search (`make_band_table`) | log-grid table (`band_table`, used by `popz fit --filters`) | ratio |",
        "|---|---:|---:|---:|",
        f"| magnitudes of {args.draws:,} prior draws, evaluations/s (best of 5) | {rates['search']:,.0f} | {rates['log grid']:,.0f} | "
        f"{rates['log grid'] / rates['search']:.1f} |",
        f"| MCMC on the first {args.galaxies} SDSS MGS test galaxies, 32 walkers x {args.steps} steps, galaxies/s (compiled: second call) | "
        f"{speed['search']:.3f} | {speed['log grid']:.3f} | {speed['log grid'] / speed['search']:.1f} |",
        f"| the same, first call (compilation included) | {cold['search']:.3f} | {cold['log grid']:.3f} | {cold['log grid'] / cold['search']:.1f} |",
        "",
        f"- Largest magnitude difference between the two on the prior draws, bands brighter than 35 mag: {max_diff:.1e} mag.",
        f"- The two MCMC fits' redshift medians (same seed): median |difference| / sigma_z = {np.median(shift):.3f}, largest "
        f"{np.max(shift):.3f}; sigma_NMAD against z_spec {1.4826 * np.median(np.abs(dz['search'] - np.median(dz['search']))):.4f} (search) and "
        f"{1.4826 * np.median(np.abs(dz['log grid'] - np.median(dz['log grid']))):.4f} (log grid) on these {args.galaxies}.",
    ]
    print("\n".join(body))
    write_section("Spectrum-emulator photometry in new bands: log-grid table against per-pixel search (bench_spectrum_photometry.py)", "\n".join(body))


if __name__ == "__main__":
    main()
