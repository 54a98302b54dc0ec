"""popz photometry of bagpipes SEDs against bagpipes' own photometry.

1. Integration: popz's bandpass integration of a bagpipes spectrum (default
   R=100 grid) against bagpipes' photometry of the same spectrum: < 0.005 mag.
2. End to end: the popz simulator (R=100, pixel-averaged SSPs, popz IGM and
   distances) against bagpipes run at the galaxy's redshift on an R=3000 grid,
   where its point-sampled SSPs have converged: < 0.01 mag (over 40 prior
   draws: median 0.0003 mag, maximum 0.009 mag; benchmarks/simulator_accuracy.py).
3. popz's integration against a brute-force quadrature of the same spectrum: < 1e-4 mag.
"""

import numpy as np
import pytest

from popz.config import load_model
from popz.sps.bagpipes_backend import import_bagpipes
from popz.sps.filters import load_bands
from popz.sps.photometry import SPEED_OF_LIGHT_A_PER_S, band_mean_fnu, band_mean_fnu_reference, flux_nJy_to_ab
from popz.sps.simulator import make_simulator

LSST = [f"lsst2023-{b}" for b in "ugrizy"]
TOLERANCE_MAG = 0.005


@pytest.fixture(scope="module")
def lsst_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("filters")
    paths = []
    for band in load_bands(LSST):
        path = folder / f"{band.name}.dat"
        np.savetxt(path, np.c_[band.wavelength_A, band.throughput])
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def bagpipes_cosmology_simulator():
    """lsst-default with bagpipes' own cosmology (flat LCDM, H0=70, Om0=0.3), for end-to-end checks."""
    config = load_model("lsst-default")
    config = config.model_copy(update={"cosmology": config.cosmology.model_copy(update={"name": None, "H0": 70.0, "Om0": 0.3})})
    return make_simulator(config)


def _bagpipes_mags(sim, theta, filter_files):
    """bagpipes' own magnitudes at the true redshift, scaled to theta's stellar mass."""
    bagpipes = import_bagpipes()
    components = sim.components_at_redshift(theta)
    model = bagpipes.model_galaxy(components, filt_list=filter_files, phot_units="mujy")
    mags = -2.5 * np.log10(model.photometry * 1e-6 / 3631.0)
    log_mass = theta[sim.config.index("log_stellar_mass")]
    return model, mags - 2.5 * (log_mass - model.sfh.stellar_mass)


THETAS = {
    "z0.05 star-forming": dict(redshift=0.05, log_sfr_ratio=0.0, dust_av=0.3),
    "z0.7 quiescent": dict(redshift=0.7, log_sfr_ratio=-1.0, dust_av=0.1),
    "z1.6 dusty": dict(redshift=1.6, log_sfr_ratio=0.2, dust_av=1.5),
    "z3.2 dropout": dict(redshift=3.2, log_sfr_ratio=0.3, dust_av=0.2),
    "z3.9 dropout": dict(redshift=3.9, log_sfr_ratio=0.0, dust_av=0.0),
}


def _theta(config, redshift, log_sfr_ratio, dust_av):
    from popz.demo import track_theta

    return track_theta(config, redshift, log_sfr_ratio, dust_av)


@pytest.mark.parametrize("case", list(THETAS))
def test_popz_integration_of_bagpipes_spectrum_matches_bagpipes(case, bagpipes_cosmology_simulator, lsst_files):
    simulator = bagpipes_cosmology_simulator
    theta = _theta(simulator.config, **THETAS[case])
    model, _ = _bagpipes_mags(simulator, theta, lsst_files)
    z = THETAS[case]["redshift"]
    obs_lam = model.wavelengths * (1 + z)
    fnu_nJy = model.spectrum_full * obs_lam**2 / SPEED_OF_LIGHT_A_PER_S / 1e-32
    ours = np.array([flux_nJy_to_ab(band_mean_fnu(obs_lam, fnu_nJy, b)) for b in simulator.bands])
    theirs = -2.5 * np.log10(model.photometry * 1e-6 / 3631.0)
    assert np.all(np.abs(ours - theirs) < TOLERANCE_MAG), ours - theirs


def test_popz_integration_is_exact_for_pixelised_spectra(bagpipes_cosmology_simulator, prior_draws):
    # Against a brute-force quadrature of the same pixel-constant spectrum: popz's
    # per-pixel integration is exact, wherever filter edges and spectral breaks fall.
    sim = bagpipes_cosmology_simulator
    for theta in prior_draws[:15]:
        z = theta[sim.config.index("redshift")]
        obs = sim.rest_wavelength_A * (1 + z)
        fnu = sim.rest_sed_with_igm(theta) * obs**2  # any f_nu shape will do
        for band in sim.bands:
            ours, ref = band_mean_fnu(obs, fnu, band), band_mean_fnu_reference(obs, fnu, band)
            assert abs(flux_nJy_to_ab(ours) - flux_nJy_to_ab(ref)) < 1e-4, (band.name, z)


@pytest.fixture(scope="module")
def converged_bagpipes(bagpipes_cosmology_simulator, lsst_files):
    """One bagpipes model on an R=3000 grid (updated per case), with R restored afterwards."""
    bagpipes = import_bagpipes()
    sim = bagpipes_cosmology_simulator
    saved = bagpipes.config.R_phot
    bagpipes.config.R_phot = 3000.0
    try:
        theta = _theta(sim.config, **THETAS["z0.7 quiescent"])
        model, _ = _bagpipes_mags(sim, theta, lsst_files)
    finally:
        bagpipes.config.R_phot = saved
    return model


@pytest.mark.parametrize("case", list(THETAS))
def test_simulator_end_to_end_matches_converged_bagpipes(case, bagpipes_cosmology_simulator, converged_bagpipes):
    sim = bagpipes_cosmology_simulator
    theta = _theta(sim.config, **THETAS[case])
    converged_bagpipes.update(sim.components_at_redshift(theta))
    theirs = -2.5 * np.log10(converged_bagpipes.photometry * 1e-6 / 3631.0)
    theirs -= 2.5 * (theta[sim.config.index("log_stellar_mass")] - converged_bagpipes.sfh.stellar_mass)
    ours = sim.magnitudes(theta)
    assert np.all(np.abs(ours - theirs) < 0.01), ours - theirs
