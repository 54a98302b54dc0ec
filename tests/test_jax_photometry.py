"""JAX photometry (for emulators) against the numpy photometry of the simulator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popz.population import TrainingPrior
from popz.sps.filters import load_bands
from popz.sps.jax_photometry import make_band_table, make_igm_table, rest_sed_to_flux_nJy
from popz.sps.photometry import flux_nJy_to_ab, pixel_edges_A


@pytest.fixture(scope="module")
def setup(simulator, config):
    lam = simulator.rest_wavelength_A
    keep = (lam >= 400) & (lam <= 30000)
    return lam[keep], keep, make_igm_table(lam[keep], z_max=4.1)


def _jax_mags(simulator, setup, theta, table):
    lam, keep, igm = setup
    z = float(theta[simulator.redshift_index])
    sed = simulator.rest_sed(theta)[keep]
    flux = rest_sed_to_flux_nJy(
        jnp.asarray(lam, jnp.float32),
        jnp.asarray(pixel_edges_A(lam), jnp.float32),
        jnp.asarray(np.log10(sed), jnp.float32),
        igm(jnp.float32(z)),
        jnp.float32(z),
        jnp.log10(jnp.float32(simulator.cosmology.luminosity_distance(z))),
        table,
    )
    return flux_nJy_to_ab(np.asarray(flux))


def _check_bands(simulator, config, setup, bands):
    # key 5 includes a z=3.57 galaxy whose Lyman-alpha line sits on the g filter's red edge,
    # where a plain float32 cumulative response loses 2e-3 mag
    theta = TrainingPrior(config).sample(jax.random.key(5), 12).astype(np.float64)
    table = make_band_table(bands)
    for t in theta:
        diff = _jax_mags(simulator, setup, t, table) - simulator.magnitudes(t, bands)
        assert np.all(np.abs(diff) < 1e-4), (t[0], diff)


def test_float32_jax_photometry_matches_numpy_in_lsst(simulator, config, setup):
    _check_bands(simulator, config, setup, simulator.bands)


def test_float32_jax_photometry_matches_numpy_in_sdss_curves(simulator, config, setup, sdss_filter_dir):
    _check_bands(simulator, config, setup, load_bands([str(sdss_filter_dir / f"sdss_{b}.dat") for b in "ugriz"]))


def test_jax_photometry_is_differentiable(simulator, config, setup):
    lam, keep, igm = setup
    theta = 0.5 * (config.lower + config.upper)
    log_sed = jnp.asarray(np.log10(simulator.rest_sed(theta)[keep]), jnp.float32)
    table = make_band_table(simulator.bands)
    edges = jnp.asarray(pixel_edges_A(lam), jnp.float32)

    def total_flux(z):
        return jnp.sum(rest_sed_to_flux_nJy(jnp.asarray(lam, jnp.float32), edges, log_sed, igm(z), z, 27.0, table))

    grad = jax.grad(total_flux)(jnp.float32(1.3))
    step = 1e-2
    numeric = (total_flux(1.3 + step) - total_flux(1.3 - step)) / (2 * step)
    assert jnp.isfinite(grad) and abs(grad - numeric) < 0.05 * abs(numeric)


def test_igm_table_without_bagpipes_reads_the_copy_made_with_it(tmp_path, monkeypatch):
    """A machine without bagpipes uses the copy of the Inoue table written where bagpipes was: the same numbers."""
    import popz.sps.bagpipes_backend as backend
    from popz.errors import PopzError
    from popz.sps import igm

    copy = tmp_path / "igm.npz"
    monkeypatch.setenv("POPZ_IGM_TABLE", str(copy))
    lam = np.linspace(900.0, 1300.0, 50)
    with_bagpipes = make_igm_table(lam, z_max=3.0)
    assert copy.is_file()

    def no_bagpipes():
        raise ImportError("no bagpipes here")

    monkeypatch.setattr(backend, "import_bagpipes", no_bagpipes)
    without = make_igm_table(lam, z_max=3.0)
    np.testing.assert_array_equal(np.asarray(without.transmission), np.asarray(with_bagpipes.transmission))
    copy.unlink()
    with pytest.raises(PopzError, match="POPZ_IGM_TABLE"):
        igm.IGMTransmission(lam)
