"""The shipped lsst-default emulators against the simulator on a small fixed set of prior draws.

Tolerances are the held-out accuracy targets with room for 30 draws: per band,
RMS <= 2x the target and no draw off by more than 0.25 mag. The full held-out
measurement (10,000 draws) is in benchmarks/RESULTS.md.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import popz.emulate
from popz.emulate.files import read_manifest
from popz.population import TrainingPrior
from popz.sps.filters import load_bands
from popz.sps.jax_photometry import make_band_table


@pytest.fixture(scope="module")
def draws_and_truth(simulator, config):
    theta = TrainingPrior(config).sample(jax.random.key(2024), 30)
    truth = np.array([simulator.magnitudes(t.astype(np.float64)) for t in theta])
    return theta, truth


def test_shipped_photometric_emulator_matches_the_simulator(config, draws_and_truth):
    emulator = popz.emulate.load("lsst-default", config=config)
    theta, truth = draws_and_truth
    res = np.asarray(jax.vmap(emulator.magnitudes)(jnp.asarray(theta))) - truth
    rms = np.sqrt(np.mean(res**2, axis=0))
    assert np.all(rms < 0.02), rms
    assert np.abs(res).max() < 0.25, np.abs(res).max()
    assert np.all(np.asarray(jax.vmap(emulator.domain_flags)(jnp.asarray(theta))) & 1 == 0)


def test_shipped_spectrum_emulator_matches_the_simulator_in_unseen_bands(simulator, config, draws_and_truth, sdss_filter_dir):
    emulator = popz.emulate.load("lsst-default", kind="spectrum", config=config)
    theta, truth = draws_and_truth
    lsst = make_band_table(simulator.bands)
    res = np.asarray(jax.vmap(lambda t: emulator.magnitudes(t, lsst))(jnp.asarray(theta))) - truth
    assert np.all(np.sqrt(np.mean(res**2, axis=0)) < 0.04), res
    sdss_bands = load_bands([str(sdss_filter_dir / f"sdss_{b}.dat") for b in "ugriz"])
    sdss_truth = np.array([simulator.magnitudes(t.astype(np.float64), sdss_bands) for t in theta])
    sdss = make_band_table(sdss_bands)
    res = np.asarray(jax.vmap(lambda t: emulator.magnitudes(t, sdss))(jnp.asarray(theta))) - sdss_truth
    assert np.all(np.sqrt(np.mean(res**2, axis=0)) < 0.06), res


def test_the_log_grid_band_table_matches_the_per_pixel_search(config, sdss_filter_dir):
    """The fast table (one slice per redshift) against :func:`rest_sed_to_flux_nJy`'s search of every pixel edge.

    Tolerance 1e-4 mag in every band brighter than 35 mag (measured: 1e-5 in LSST, 6.5e-5 in SDSS
    on 4,096 draws); the only approximation is the cumulative response interpolated in ln(lambda)
    at 1/128 of a pixel.
    """
    emulator = popz.emulate.load("lsst-default", kind="spectrum", config=config)
    theta = jnp.asarray(TrainingPrior(config).sample(jax.random.key(3), 512), jnp.float32)
    lsst = load_bands(config.bands)
    sdss = load_bands([str(sdss_filter_dir / f"sdss_{b}.dat") for b in "ugriz"])
    for bands in (lsst, sdss):
        slow, fast = make_band_table(tuple(bands)), emulator.band_table(bands)
        ref = np.asarray(jax.jit(jax.vmap(lambda t: emulator.magnitudes(t, slow)))(theta))
        got = np.asarray(jax.jit(jax.vmap(lambda t: emulator.magnitudes(t, fast)))(theta))
        assert np.max(np.abs(got - ref)[ref < 35]) < 1e-4
    # derivative in redshift (the table is tabulated in it) against finite differences
    fast = emulator.band_table(sdss)
    t0 = theta[7]

    def r_mag(z):
        return emulator.magnitudes(t0.at[0].set(z), fast)[2]

    z0 = float(t0[0])
    grad = float(jax.grad(r_mag)(jnp.float32(z0)))
    h = 1e-2
    numeric = float((r_mag(jnp.float32(z0 + h)) - r_mag(jnp.float32(z0 - h))) / (2 * h))
    assert np.isfinite(grad) and abs(grad - numeric) < 0.05 * abs(numeric) + 1e-3, (grad, numeric)


def test_the_log_grid_band_table_refuses_a_grid_that_is_not_log_uniform(config):
    from popz.errors import PopzError
    from popz.sps.jax_photometry import make_log_grid_band_table

    with pytest.raises(PopzError, match="not uniform in log wavelength"):
        make_log_grid_band_table(tuple(load_bands(config.bands)), np.linspace(1000.0, 20000.0, 500), z_max=1.0)


@pytest.mark.parametrize("kind", ["photometry", "spectrum"])
def test_shipped_manifests_record_how_they_were_made(kind, config):
    from importlib import resources

    folder = resources.files("popz") / "data" / "emulators" / "lsst-default" / kind
    manifest = read_manifest(folder)
    assert manifest["model_hash"] == config.hash
    training = manifest["training"]
    assert training["n_rows"] >= 500000 and len(training["train_set_sha256"]) == 64
    assert training["command"].startswith("popz train-emulator")
    assert (folder / "weights.eqx").stat().st_size < 5e6


def test_warm_start_from_the_shipped_emulator_predicts_what_it_does(config, prior_draws):
    """--init: the network is carried over and its last layer rescaled to the new output standardiser, exactly."""
    import jax
    import jax.numpy as jnp

    from popz.emulate import load
    from popz.emulate.photometry import new_photometry_emulator
    from popz.emulate.train import _warm_start
    from popz.errors import PopzError

    source = load("lsst-default", kind="photometry")
    theta = jnp.asarray(prior_draws, jnp.float32)
    mags = np.asarray(jax.vmap(source.magnitudes)(theta)) + 0.3  # any targets: only the standardiser depends on them
    fresh = new_photometry_emulator(jax.random.key(0), config, np.asarray(theta), hidden=(256,) * 4, activation="gelu", magnitudes=mags, loss_units="mag")
    warm, summary = _warm_start(fresh, "lsst-default", config, (256,) * 4, "gelu")
    assert np.max(np.abs(np.asarray(jax.vmap(warm.magnitudes)(theta) - jax.vmap(source.magnitudes)(theta)))) < 1e-4
    assert summary["weights_sha256"]
    with pytest.raises(PopzError, match="pass the same --hidden"):
        _warm_start(fresh, "lsst-default", config, (128,) * 3, "gelu")
