"""The spectrum emulator: parameters -> rest-frame SED, hence photometry in any bands.

The log10 rest-frame L_lambda per unit stellar mass is written as a mean
spectrum plus ``n_components`` principal components (PCA of the training
spectra, Alsing et al. 2020 "Speculator"); an MLP maps the encoded parameters
(:class:`popz.emulate.inputs.ParameterSpace`) to the component weights. The
stellar mass is added back exactly; IGM absorption (Inoue et al. 2014),
redshifting, distance and any bandpass are applied in JAX by
:mod:`popz.sps.jax_photometry`, the same way the simulator does it in numpy.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.config import ModelConfig
from popz.emulate.inputs import Distances, ParameterSpace, new_distances, new_parameter_space
from popz.emulate.networks import make_mlp
from popz.sps.jax_photometry import (
    BandTable,
    IGMTable,
    LogGridBandTable,
    log_grid_flux_nJy,
    make_igm_table,
    make_log_grid_band_table,
    observed_fnu_nJy,
    rest_sed_to_flux_nJy,
)
from popz.sps.photometry import AB_MAG_OF_ONE_NJY, pixel_edges_A

__all__ = ["SpectrumEmulator", "new_spectrum_emulator", "pca_basis"]


class SpectrumEmulator(eqx.Module):
    """theta (n_parameters,) -> log10 rest-frame L_lambda (n_wave,); photometry in any :class:`BandTable`."""

    network: eqx.nn.MLP
    inputs: ParameterSpace
    distances: Distances
    output_scale: jax.Array  # scalar: network outputs are PCA weights / output_scale
    pca_mean: jax.Array  # (n_wave,) mean log10 L_lambda per unit stellar mass
    pca_basis: jax.Array  # (n_components, n_wave) orthonormal rows
    rest_wavelength_A: jax.Array  # (n_wave,)
    rest_pixel_edges_A: jax.Array  # (n_wave + 1,)
    igm: IGMTable

    def pca_weights(self, theta: jax.Array) -> jax.Array:
        """PCA weights, shape (n_components,)."""
        return self.network(self.inputs.features(theta)) * self.output_scale

    def log10_rest_sed(self, theta: jax.Array) -> jax.Array:
        """log10 intrinsic rest-frame L_lambda in erg/s/A (no IGM), shape (n_wave,)."""
        theta = jnp.asarray(theta, jnp.float32)
        per_mass = self.pca_mean + self.pca_weights(theta) @ self.pca_basis
        return per_mass + theta[self.inputs.mass_index]

    def band_table(self, bands, subdivisions: int = 128) -> LogGridBandTable:
        """The fast table (:class:`LogGridBandTable`) of a tuple of Bandpass for this emulator's grid and redshifts."""
        z_max = float(self.igm.redshift[-1])
        return make_log_grid_band_table(tuple(bands), np.asarray(self.rest_pixel_edges_A), z_max, subdivisions)

    def flux_nJy(self, theta: jax.Array, bands: BandTable | LogGridBandTable) -> jax.Array:
        """Noiseless fluxes in nJy, shape (n_bands,), in any bands covered by the redshifted grid.

        ``bands``: a :class:`BandTable` (any grid), or for speed this emulator's :meth:`band_table`.
        """
        theta = jnp.asarray(theta, jnp.float32)
        z = theta[self.inputs.redshift_index]
        if isinstance(bands, LogGridBandTable):
            fnu = observed_fnu_nJy(
                self.rest_wavelength_A, self.log10_rest_sed(theta), self.igm(z), z, self.distances.log10_luminosity_distance_cm(z)
            )
            return log_grid_flux_nJy(fnu, z, bands)
        return rest_sed_to_flux_nJy(
            self.rest_wavelength_A,
            self.rest_pixel_edges_A,
            self.log10_rest_sed(theta),
            self.igm(z),
            z,
            self.distances.log10_luminosity_distance_cm(z),
            bands,
        )

    def magnitudes(self, theta: jax.Array, bands: BandTable | LogGridBandTable) -> jax.Array:
        """Noiseless AB magnitudes, shape (n_bands,)."""
        return AB_MAG_OF_ONE_NJY - 2.5 * jnp.log10(self.flux_nJy(theta, bands))

    def domain_flags(self, theta: jax.Array) -> jax.Array:
        return self.inputs.domain_flags(theta)


def pca_basis(log_spectra: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (n_wave,), orthonormal basis (n_components, n_wave) and explained variance fractions of spectra (n, n_wave)."""
    x = np.asarray(log_spectra, dtype=np.float64)
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    explained = singular**2 / np.sum(singular**2)
    return mean, vt[:n_components], explained[:n_components]


def new_spectrum_emulator(
    key: jax.Array,
    config: ModelConfig,
    theta: np.ndarray,
    rest_wavelength_A: np.ndarray,
    *,
    hidden: tuple[int, ...],
    activation: str,
    n_components: int,
    pca_mean: np.ndarray | None = None,
    basis: np.ndarray | None = None,
    output_scale: float = 1.0,
) -> SpectrumEmulator:
    """An untrained spectrum emulator; without ``pca_mean``/``basis`` a zero skeleton for loading."""
    n_wave = rest_wavelength_A.size
    inputs = new_parameter_space(config, theta)
    z_max = float(config.upper[config.index("redshift")])
    return SpectrumEmulator(
        network=make_mlp(key, n_in=inputs.x_standardiser.shift.shape[0], n_out=n_components, hidden=hidden, activation=activation),
        inputs=inputs,
        distances=new_distances(config),
        output_scale=jnp.asarray(output_scale, jnp.float32),
        pca_mean=jnp.asarray(np.zeros(n_wave) if pca_mean is None else pca_mean, jnp.float32),
        pca_basis=jnp.asarray(np.zeros((n_components, n_wave)) if basis is None else basis, jnp.float32),
        rest_wavelength_A=jnp.asarray(rest_wavelength_A, jnp.float32),
        rest_pixel_edges_A=jnp.asarray(pixel_edges_A(rest_wavelength_A), jnp.float32),
        igm=make_igm_table(rest_wavelength_A, z_max=z_max + 0.02),
    )
