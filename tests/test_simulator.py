"""The SPS simulator: physics invariants, bounds, corners of the parameter box."""

import itertools

import numpy as np
import pytest

from popz.errors import ParameterError
from popz.sps.filters import load_bands


def test_default_model_has_the_required_physics(config):
    names = config.parameter_names
    assert config.n_parameters >= 10
    assert sum(n.startswith("log_sfr_ratio_") for n in names) >= 5  # >= 6 continuity bins
    for required in ("redshift", "log_stellar_mass", "log_metallicity", "dust_av", "dust_eta", "dust_index", "log_u"):
        assert required in names
    assert config.parameters[config.index("redshift")].bounds[1] == 4.0
    assert config.cosmology.name == "Planck18"


def test_doubling_stellar_mass_brightens_every_band_by_0p7526(simulator, prior_draws, config):
    i_mass = config.index("log_stellar_mass")
    for theta in prior_draws[:10]:
        theta = theta.copy()
        theta[i_mass] = min(theta[i_mass], config.upper[i_mass] - 0.31)
        doubled = theta.copy()
        doubled[i_mass] += np.log10(2.0)
        delta = simulator.magnitudes(theta) - simulator.magnitudes(doubled)
        assert np.allclose(delta, 2.5 * np.log10(2.0), atol=1e-6), delta
        assert abs(2.5 * np.log10(2.0) - 0.7526) < 1e-4


def test_prior_draws_give_finite_magnitudes(simulator, prior_draws):
    mags = np.array([simulator.magnitudes(t) for t in prior_draws])
    assert np.all(np.isfinite(mags))
    assert np.all((mags > 5) & (mags < 80))


def test_every_corner_of_the_parameter_box_is_finite(simulator, config):
    lo, hi = config.lower, config.upper
    n_bad = 0
    for bits in itertools.product((False, True), repeat=config.n_parameters):
        mags = simulator.magnitudes(np.where(bits, hi, lo))
        n_bad += not np.all(np.isfinite(mags))
    assert n_bad == 0, f"{n_bad} of {2 ** config.n_parameters} corners gave non-finite magnitudes"


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_each_parameter_swept_alone_is_finite(simulator, config, fraction):
    mid = 0.5 * (config.lower + config.upper)
    for i in range(config.n_parameters):
        theta = mid.copy()
        theta[i] = config.lower[i] + fraction * (config.upper[i] - config.lower[i])
        assert np.all(np.isfinite(simulator.magnitudes(theta))), config.parameter_names[i]


def test_out_of_bounds_and_wrong_shape_raise_clear_errors(simulator, config):
    theta = 0.5 * (config.lower + config.upper)
    bad = theta.copy()
    bad[config.index("dust_av")] = -0.5
    with pytest.raises(ParameterError, match=r"dust_av=-0.5 is outside its bounds \[0, 3\]"):
        simulator.magnitudes(bad)
    with pytest.raises(ParameterError, match=r"shape \(13,\)"):
        simulator.rest_sed(theta[:5])


def test_any_bands_with_user_curves(simulator, config, sdss_filter_dir):
    theta = 0.5 * (config.lower + config.upper)
    theta[config.index("redshift")] = 0.1
    sdss = load_bands([str(sdss_filter_dir / f"sdss_{b}.dat") for b in "ugriz"])
    lsst = simulator.magnitudes(theta)
    mags = simulator.magnitudes(theta, sdss)
    assert mags.shape == (5,) and np.all(np.isfinite(mags))
    # SDSS r and LSST r cover nearly the same wavelengths: within 0.1 mag
    assert abs(mags[2] - lsst[2]) < 0.1


def test_sed_is_positive_and_redder_bands_see_longer_wavelengths(simulator, config):
    theta = 0.5 * (config.lower + config.upper)
    sed = simulator.rest_sed(theta)
    lam = simulator.rest_wavelength_A
    optical = (lam > 3000) & (lam < 10000)
    assert np.all(sed[optical] > 0)
    assert np.all(np.diff([b.pivot_wavelength_A for b in simulator.bands]) > 0)


def test_igm_lyman_alpha_forest_decrement_grows_with_redshift(simulator):
    # Mean flux decrement D_A over rest 1050-1170 A: Inoue et al. (2014) Fig. 4
    # gives ~0.02 at z=0.5, ~0.1 at z=2 and ~0.35 at z=3.5.
    lam = simulator.rest_wavelength_A
    forest = (lam > 1050) & (lam < 1170)
    decrement = {z: 1 - simulator.igm(z)[forest].mean() for z in (0.5, 2.0, 3.5)}
    assert 0.01 < decrement[0.5] < 0.05
    assert 0.06 < decrement[2.0] < 0.15
    assert 0.25 < decrement[3.5] < 0.45
    t = simulator.igm(3.5)
    assert np.all((t >= 0) & (t <= 1)) and np.all(t[lam > 1216.0] == 1.0)
    assert t[(lam > 700) & (lam < 750)].max() < 0.1  # Lyman continuum mostly absorbed


def test_igm_matches_bagpipes_table_on_the_same_grid(simulator):
    from popz.sps.bagpipes_backend import import_bagpipes

    theirs = import_bagpipes().models.igm_model.igm(simulator.rest_wavelength_A)
    for z in (0.3, 2.0, 3.333, 4.0):
        assert np.allclose(simulator.igm(z), theirs.trans(z), atol=1e-6), z
