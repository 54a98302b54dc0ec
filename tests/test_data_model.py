"""Data model (zero-points, noise, extinction, selection) and the likelihood."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popz.data_model import default_data_model, flux_variance, make_extinction_table, predicted_flux
from popz.data_model.noise import DataModelHyper
from popz.data_model.selection import log_selection_probability, magnitude_limit_to_flux_nJy
from popz.emulate.photometry import new_photometry_emulator
from popz.errors import ConfigError, PopzError
from popz.infer.likelihood import Observation, log_likelihood


@pytest.fixture(scope="module")
def extinction(simulator):
    return make_extinction_table(simulator.bands)


@pytest.fixture(scope="module")
def emulator(config, prior_draws):
    # an untrained network is enough for shapes, directions and gradients
    return new_photometry_emulator(jax.random.key(0), config, prior_draws, hidden=(16,), activation="gelu")


def test_a_5_percent_zero_point_makes_the_band_5_percent_brighter():
    hyper = default_data_model(n_tracts=3, n_bands=6)
    hyper = hyper._replace(zero_point=hyper.zero_point.at[1, 2].set(1.05))
    model = jnp.full(6, 100.0)
    flux = predicted_flux(model, 1, jnp.ones(6), hyper)
    assert np.allclose(flux, [100, 100, 105, 100, 100, 100])
    assert np.allclose(predicted_flux(model, 3, jnp.ones(6), hyper), 100.0)  # default tract row


def test_extinction_dims_blue_bands_more_and_vanishes_at_zero(extinction):
    a = np.asarray(extinction(0.1))
    assert np.all(np.diff(a) < 0) and a[0] > 0.4  # u loses most, ~4.7 x E(B-V) for F99
    assert np.allclose(np.asarray(extinction(0.0)), 0.0, atol=1e-7)
    assert np.all(np.asarray(extinction.transmission(0.3)) < 1)
    # R_b = A_b / E(B-V) for LSST with F99, R_V=3.1 (flat f_nu), within 5% of u 4.7, g 3.7, r 2.6, i 1.9, z 1.5, y 1.2
    assert np.allclose(a / 0.1, [4.69, 3.70, 2.58, 1.90, 1.50, 1.23], rtol=0.05)


def test_unknown_extinction_law_is_a_config_error(simulator):
    with pytest.raises(ConfigError, match="unknown extinction law 'CCM'"):
        make_extinction_table(simulator.bands, law="CCM")


def test_variance_adds_floor_inflation_and_emulator_error():
    hyper = DataModelHyper(jnp.ones((1, 2)), jnp.array([0.1, 0.0]), jnp.array([4.0, 1.0]))
    var = flux_variance(jnp.array([1.0, 1.0]), jnp.array([10.0, 10.0]), hyper, emulator_error_mag=jnp.array([0.0, 0.1]))
    assert np.allclose(var, [4.0 + 1.0, 1.0 + (0.4 * np.log(10) * 0.1 * 10) ** 2])


def test_bad_hyperparameters_raise():
    hyper = default_data_model(2, 3)
    with pytest.raises(PopzError, match="zero-points must be finite and positive"):
        hyper._replace(zero_point=-hyper.zero_point).check()
    with pytest.raises(PopzError, match="error floors"):
        hyper._replace(error_floor=jnp.full(3, 2.0)).check()


def _obs(flux, err, observed, ebv=0.05, tract=0):
    return Observation(jnp.asarray(flux, jnp.float32), jnp.asarray(err, jnp.float32), jnp.asarray(observed), jnp.float32(ebv), jnp.int32(tract))


@pytest.mark.parametrize("student_t", [None, 3.0])
def test_likelihood_gradient_is_finite_for_detections_non_detections_and_masked_bands(emulator, extinction, prior_draws, student_t):
    hyper = default_data_model(1, 6, error_floor=0.01)
    theta = jnp.asarray(prior_draws[3], jnp.float32)
    cases = {
        "detections": _obs([50, 80, 120, 150, 160, 170], [2, 2, 2, 3, 4, 6], [True] * 6),
        "non-detections": _obs([-3.0, 0.5, 1.0, -2.0, 0.0, 4.0], [2, 2, 2, 3, 4, 6], [True] * 6),
        "masked": _obs([np.nan, 80, 120, 150, np.nan, 170], [np.nan, 2, 2, 3, np.inf, 6], [False, True, True, True, False, True]),
    }
    for name, obs in cases.items():
        value, grad = jax.value_and_grad(log_likelihood)(theta, obs, emulator=emulator, hyper=hyper, extinction=extinction, dof=student_t)
        assert np.isfinite(value) and np.all(np.isfinite(np.asarray(grad))), name


def test_masked_bands_do_not_count_and_student_t_forgives_outliers(emulator, extinction, prior_draws):
    hyper = default_data_model(1, 6, error_floor=0.0)
    theta = jnp.asarray(prior_draws[0], jnp.float32)
    pred = predicted_flux(emulator.flux_nJy(theta), 0, extinction.transmission(0.05), hyper)
    err = 0.05 * pred + 1.0
    good = _obs(pred, err, [True] * 6)
    outlier = _obs(pred.at[2].add(30 * err[2]), err, [True] * 6)
    masked_outlier = _obs(pred.at[2].add(30 * err[2]), err, [True, True, False, True, True, True])
    like = lambda o, dof=None: float(log_likelihood(theta, o, emulator=emulator, hyper=hyper, extinction=extinction, dof=dof))  # noqa: E731
    assert like(outlier) < like(good) - 400  # 30 sigma in a Gaussian: -450
    assert like(outlier, 3.0) > like(good, 3.0) - 20  # Student-t: a few nats
    per_band_good = like(good) - like(_obs(pred, err, [True, True, False, True, True, True]))
    assert like(masked_outlier) == pytest.approx(like(good) - per_band_good, rel=1e-5)


def test_selection_probability():
    f_lim = magnitude_limit_to_flux_nJy(25.3)
    assert f_lim == pytest.approx(10 ** (-0.4 * (25.3 - 31.4)), rel=1e-4)
    p = np.exp(np.asarray(log_selection_probability(jnp.array([0.5, 1.0, 2.0]) * f_lim, f_lim, 0.2 * f_lim)))
    assert p[1] == pytest.approx(0.5) and p[0] < 0.01 and p[2] > 0.99


def test_a_redward_bandpass_shift_reddens_a_red_spectrum_through_the_spectrum_emulator(simulator, prior_draws):
    """Shifting g redward brightens a galaxy whose f_nu rises to the red; zero shift changes nothing."""
    from popz.data_model.bandpass import shifted_bands
    from popz.emulate import load
    from popz.sps.jax_photometry import make_band_table

    spectrum = load("lsst-default", kind="spectrum")
    theta = jnp.asarray(prior_draws[0], jnp.float32)
    nominal = np.asarray(spectrum.magnitudes(theta, make_band_table(simulator.bands)))
    same = np.asarray(spectrum.magnitudes(theta, make_band_table(shifted_bands(simulator.bands, [0.0] * 6))))
    assert np.allclose(nominal, same, atol=1e-5)
    shifted = np.asarray(spectrum.magnitudes(theta, make_band_table(shifted_bands(simulator.bands, [0, 100.0, 0, 0, 0, 0]))))
    red = nominal[1] > nominal[2]  # g fainter than r: f_nu rises to the red
    assert (shifted[1] < nominal[1]) == red and np.allclose(shifted[[0, 2, 3, 4, 5]], nominal[[0, 2, 3, 4, 5]], atol=1e-5)
    with pytest.raises(PopzError, match="one finite shift"):
        shifted_bands(simulator.bands, [1.0])
