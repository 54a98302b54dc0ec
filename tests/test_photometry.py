"""Bandpass integration and AB magnitudes against analytic expectations."""

import numpy as np
import pytest

from popz.sps.filters import load_bands
from popz.sps.photometry import (
    AB_ZERO_POINT_NJY,
    SPEED_OF_LIGHT_A_PER_S,
    ab_to_flux_nJy,
    band_mean_fnu,
    flux_nJy_to_ab,
    observed_fnu_nJy,
)

LSST = [f"lsst2023-{b}" for b in "ugrizy"]


def _r100_grid(lo=1000.0, hi=30000.0):
    return np.exp(np.arange(np.log(lo), np.log(hi), 0.5 / 100))


@pytest.mark.parametrize("grid", ["r100", "r20", "uneven"])
def test_flat_3631_jy_is_ab_zero_in_every_band(grid):
    rng = np.random.default_rng(0)
    lam = {
        "r100": _r100_grid(),
        "r20": np.exp(np.arange(np.log(1000.0), np.log(30000.0), 0.5 / 20)),
        "uneven": np.sort(rng.uniform(1000.0, 30000.0, 3000)),
    }[grid]
    fnu = np.full(lam.size, AB_ZERO_POINT_NJY)
    for band in load_bands(LSST):
        mag = flux_nJy_to_ab(band_mean_fnu(lam, fnu, band))
        assert abs(mag) < 1e-4, (band.name, mag)


def test_flat_f_lambda_gives_pivot_wavelength_conversion():
    # A flat f_lambda has photon-weighted <f_nu> = f_lambda * pivot^2 / c exactly.
    lam = _r100_grid()
    f_lambda = 1e-17  # erg/s/cm2/A
    fnu_nJy = f_lambda * lam**2 / SPEED_OF_LIGHT_A_PER_S / 1e-32
    for band in load_bands(LSST):
        expected = f_lambda * band.pivot_wavelength_A**2 / SPEED_OF_LIGHT_A_PER_S / 1e-32
        got = band_mean_fnu(lam, fnu_nJy, band)
        assert abs(flux_nJy_to_ab(got) - flux_nJy_to_ab(expected)) < 2e-3, band.name


def test_ab_flux_round_trip_and_reference_values():
    mags = np.array([0.0, 20.0, 31.4, 25.3])
    assert np.allclose(flux_nJy_to_ab(ab_to_flux_nJy(mags)), mags, atol=1e-12)
    assert ab_to_flux_nJy(31.4) == pytest.approx(1.0, rel=1e-4)  # 31.4 AB is 1 nJy
    assert np.isnan(flux_nJy_to_ab(-1.0)) and np.isnan(flux_nJy_to_ab(0.0))


def test_band_outside_spectrum_raises():
    lam = _r100_grid(1000.0, 5000.0)
    (y,) = load_bands(["lsst2023-y"])
    with pytest.raises(ValueError, match="spans"):
        band_mean_fnu(lam, np.ones(lam.size), y)


def test_redshifting_conserves_bolometric_flux():
    # int f_lambda dlambda_obs = L / (4 pi d_L^2) for any z.
    lam = _r100_grid(100.0, 1e6)
    l_lambda = np.exp(-0.5 * ((lam - 5000.0) / 800.0) ** 2) * 1e40
    d_l = 1e28
    for z in (0.1, 1.0, 3.0):
        obs, fnu_nJy = observed_fnu_nJy(lam, l_lambda, z, d_l)
        f_lambda = fnu_nJy * 1e-32 * SPEED_OF_LIGHT_A_PER_S / obs**2
        total = np.trapezoid(f_lambda, obs)
        expected = np.trapezoid(l_lambda, lam) / (4 * np.pi * d_l**2)
        assert total == pytest.approx(expected, rel=1e-6)
