"""Accuracy of popz photometry against bagpipes' own, over training-prior draws.

1. integration: popz's bandpass integration of bagpipes' spectrum vs bagpipes'
   photometry of the same spectrum (bagpipes' default R=100 grid), and both
   against a converged quadrature of that spectrum (each pixel constant, split
   into 64 sub-pixels, the filter interpolated at full resolution);
2. end to end: the popz simulator (R=100, pixel-averaged SSPs, popz IGM and
   distances) vs bagpipes at the galaxy's redshift on an R=3000 grid (converged);
3. AB zero point: a flat 3631 Jy spectrum; 4. doubling the stellar mass.
All with bagpipes' cosmology (flat LambdaCDM, H0=70, Om0=0.3) so the two agree on d_L and ages.

    python benchmarks/simulator_accuracy.py --n 40
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from _results import write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()

    import jax

    from popz.config import load_model
    from popz.population import TrainingPrior
    from popz.sps.bagpipes_backend import import_bagpipes
    from popz.sps.photometry import (
        AB_ZERO_POINT_NJY,
        SPEED_OF_LIGHT_A_PER_S,
        band_mean_fnu,
        band_mean_fnu_reference,
        flux_nJy_to_ab,
    )
    from popz.sps.simulator import make_simulator

    bagpipes = import_bagpipes()
    config = load_model("lsst-default")
    config = config.model_copy(update={"cosmology": config.cosmology.model_copy(update={"name": None, "H0": 70.0, "Om0": 0.3})})
    sim = make_simulator(config)
    theta = TrainingPrior(config).sample(jax.random.key(42), args.n).astype(np.float64)
    i_z, i_m = config.index("redshift"), config.index("log_stellar_mass")

    tmp = Path(tempfile.mkdtemp())
    files = []
    for band in sim.bands:
        path = tmp / f"{band.name}.dat"
        np.savetxt(path, np.c_[band.wavelength_A, band.throughput])
        files.append(str(path))

    def bagpipes_mags(model, t):
        mags = -2.5 * np.log10(model.photometry * 1e-6 / 3631.0)
        return mags - 2.5 * (t[i_m] - model.sfh.stellar_mass)

    integration, end_to_end, popz_vs_exact, bagpipes_vs_exact = [], [], [], []
    default_model = bagpipes.model_galaxy(sim.components_at_redshift(theta[0]), filt_list=files, phot_units="mujy")
    saved = bagpipes.config.R_phot
    bagpipes.config.R_phot = 3000.0
    converged = bagpipes.model_galaxy(sim.components_at_redshift(theta[0]), filt_list=files, phot_units="mujy")
    bagpipes.config.R_phot = saved
    for t in theta:
        z = t[i_z]
        default_model.update(sim.components_at_redshift(t))
        obs = default_model.wavelengths * (1 + z)
        fnu = default_model.spectrum_full * obs**2 / SPEED_OF_LIGHT_A_PER_S / 1e-32
        ours = np.array([flux_nJy_to_ab(band_mean_fnu(obs, fnu, b)) for b in sim.bands])
        theirs = -2.5 * np.log10(default_model.photometry * 1e-6 / 3631.0)
        exact = np.array([flux_nJy_to_ab(band_mean_fnu_reference(obs, fnu, b)) for b in sim.bands])
        integration.append(ours - theirs)
        popz_vs_exact.append(ours - exact)
        bagpipes_vs_exact.append(theirs - exact)
        converged.update(sim.components_at_redshift(t))
        end_to_end.append(sim.magnitudes(t) - bagpipes_mags(converged, t))
    integration, end_to_end = np.abs(integration), np.abs(end_to_end)
    popz_vs_exact, bagpipes_vs_exact = np.abs(popz_vs_exact), np.abs(bagpipes_vs_exact)
    worst = int(np.argmax(integration.max(1)))

    lam = sim.rest_wavelength_A * 1.5
    flat = [abs(flux_nJy_to_ab(band_mean_fnu(lam, np.full(lam.size, AB_ZERO_POINT_NJY), b))) for b in sim.bands]
    doubling = []
    for t in theta[:10]:
        t = t.copy()
        t[i_m] = min(t[i_m], config.upper[i_m] - 0.31)
        d = t.copy()
        d[i_m] += np.log10(2)
        doubling.append(np.abs(sim.magnitudes(t) - sim.magnitudes(d) - 2.5 * np.log10(2.0)))

    labels = [b.name.split("-")[-1] for b in sim.bands]
    lines = [
        f"`lsst-default` with bagpipes' cosmology, {args.n} training-prior draws (key 42). |difference| in mag.",
        "",
        "| check | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
        "| integration vs bagpipes, max | " + " | ".join(f"{v:.4f}" for v in integration.max(0)) + " |",
        "| integration vs bagpipes, median | " + " | ".join(f"{v:.4f}" for v in np.median(integration, 0)) + " |",
        "| popz integration vs converged quadrature, max | " + " | ".join(f"{v:.4f}" for v in popz_vs_exact.max(0)) + " |",
        "| bagpipes photometry vs converged quadrature, max | " + " | ".join(f"{v:.4f}" for v in bagpipes_vs_exact.max(0)) + " |",
        "| end to end vs converged bagpipes (R=3000), max | " + " | ".join(f"{v:.4f}" for v in end_to_end.max(0)) + " |",
        "| end to end vs converged bagpipes (R=3000), median | " + " | ".join(f"{v:.4f}" for v in np.median(end_to_end, 0)) + " |",
        "| flat 3631 Jy spectrum, AB mag | " + " | ".join(f"{v:.1e}" for v in flat) + " |",
        "| doubling mass: brightening - 2.5 log10 2 (= 0.752575), max (10 draws) | "
        + " | ".join(f"{v:.1e}" for v in np.max(doubling, 0))
        + " |",
        "",
        f"Largest integration difference: draw {worst} at z = {theta[worst, i_z]:.3f} "
        f"(band {labels[int(np.argmax(integration[worst]))]}); integration differences over 0.005 mag: "
        f"{int((integration > 0.005).sum())} of {integration.size} band-draws.",
    ]
    print("\n".join(lines))
    write_section("Simulator accuracy against bagpipes (simulator_accuracy.py)", "\n".join(lines))


if __name__ == "__main__":
    main()
