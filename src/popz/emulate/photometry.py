"""The photometric emulator: parameters -> AB magnitudes in a fixed band set.

What the network learns is the smooth part only. For every band,

    mag = y(features) - 2.5 log10(M* / Msun) + DM(z)

where DM(z) = 5 log10(d_L / 10 pc) is computed exactly from the model's
cosmology and the stellar mass enters exactly (the SED is linear in mass). y is
one MLP (a shared trunk with an output per band) on standardised inputs and
outputs; the inputs are described in :class:`popz.emulate.inputs.ParameterSpace`.

The emulator also carries its training domain (the model's bounds and the
0.1/99.9 percentiles of the training set) and an error model (the RMS of
held-out residuals per band in redshift bins), which the likelihood adds to the
flux variance.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.config import ModelConfig
from popz.emulate.inputs import (
    DOMAIN_OUTSIDE_BOUNDS,
    DOMAIN_SPARSE_TAIL,
    Distances,
    ParameterSpace,
    new_distances,
    new_parameter_space,
)
from popz.emulate.networks import Standardiser, make_mlp
from popz.interpolation import bin_index
from popz.sps.photometry import AB_MAG_OF_ONE_NJY

__all__ = ["PhotometryEmulator", "new_photometry_emulator", "DOMAIN_OUTSIDE_BOUNDS", "DOMAIN_SPARSE_TAIL"]


class PhotometryEmulator(eqx.Module):
    """theta (n_parameters,) -> AB magnitudes (n_bands,). Every method takes one galaxy; vmap for many."""

    network: eqx.nn.MLP
    inputs: ParameterSpace
    distances: Distances
    y_standardiser: Standardiser
    error_redshift_edges: jax.Array  # (n_zbins + 1,)
    error_rms_mag: jax.Array  # (n_zbins, n_bands) held-out residual RMS per redshift bin
    band_names: tuple = eqx.field(static=True)

    def magnitudes(self, theta: jax.Array) -> jax.Array:
        """Noiseless AB magnitudes, shape (n_bands,), of one parameter vector (n_parameters,)."""
        theta = jnp.asarray(theta, jnp.float32)
        y = self.y_standardiser.inverse(self.network(self.inputs.features(theta)))
        z = theta[self.inputs.redshift_index]
        return y - 2.5 * theta[self.inputs.mass_index] + self.distances.distance_modulus(z)

    def flux_nJy(self, theta: jax.Array) -> jax.Array:
        """Noiseless fluxes in nJy, shape (n_bands,)."""
        return 10.0 ** (-0.4 * (self.magnitudes(theta) - AB_MAG_OF_ONE_NJY))

    def error_mag(self, theta: jax.Array) -> jax.Array:
        """Emulator error (held-out RMS, mag), shape (n_bands,), at theta's redshift."""
        z = theta[self.inputs.redshift_index]
        edges = self.error_redshift_edges
        i = bin_index(edges, z)
        return self.error_rms_mag[i]

    def domain_flags(self, theta: jax.Array) -> jax.Array:
        """Bitmask (int32 scalar) of :mod:`popz.emulate.inputs` domain flags; 0 inside the training domain."""
        return self.inputs.domain_flags(theta)

    def targets(self, theta: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        """What the network learns, shape (n, n_bands): mag + 2.5 log M - DM(z)."""
        theta = jnp.asarray(theta, jnp.float32)
        dm = jax.vmap(self.distances.distance_modulus)(theta[:, self.inputs.redshift_index])
        return np.asarray(magnitudes + 2.5 * np.asarray(theta[:, self.inputs.mass_index])[:, None] - np.asarray(dm)[:, None])


def new_photometry_emulator(
    key: jax.Array,
    config: ModelConfig,
    theta: np.ndarray,
    *,
    hidden: tuple[int, ...],
    activation: str,
    magnitudes: np.ndarray | None = None,
    n_error_bins: int = 1,
    loss_units: str = "standardised",
    band_weights: tuple[float, ...] | None = None,
) -> PhotometryEmulator:
    """An untrained emulator for ``config`` with standardisers fitted to a training set.

    theta : (n, n_parameters) training parameters; magnitudes : (n, n_bands) their magnitudes.
    With ``magnitudes`` None the output standardiser is the identity (a skeleton for loading).
    ``n_error_bins`` redshift bins (equal width over the bounds) hold the error model.
    ``loss_units``: ``standardised`` scales each band's output by its own spread;
    ``mag`` uses one scale for all bands, so a mean-squared loss weighs every band's
    error in magnitudes equally (the spread of u is twice that of y in lsst-default).
    ``band_weights`` (n_bands,) multiply each band's squared error in the loss on top.
    """
    inputs = new_parameter_space(config, theta)
    n_bands = len(config.bands)
    z_lo, z_hi = config.parameters[config.index("redshift")].bounds
    emulator = PhotometryEmulator(
        network=make_mlp(key, n_in=inputs.x_standardiser.shift.shape[0], n_out=n_bands, hidden=hidden, activation=activation),
        inputs=inputs,
        distances=new_distances(config),
        y_standardiser=Standardiser(jnp.zeros(n_bands), jnp.ones(n_bands)),
        error_redshift_edges=jnp.asarray(np.linspace(z_lo, z_hi, n_error_bins + 1), jnp.float32),
        error_rms_mag=jnp.zeros((n_error_bins, n_bands), jnp.float32),
        band_names=tuple(config.bands),
    )
    if magnitudes is not None:
        fitted = Standardiser.fit(emulator.targets(theta, magnitudes))
        if loss_units == "mag":
            fitted = Standardiser(fitted.shift, jnp.full_like(fitted.scale, jnp.sqrt(jnp.mean(fitted.scale**2))))
        elif loss_units != "standardised":
            raise ValueError(f"loss_units must be 'standardised' or 'mag', got {loss_units!r}")
        if band_weights is not None:
            # a mean-squared loss on outputs scaled by scale / sqrt(w) weighs band b's squared error by w_b
            weights = jnp.asarray(band_weights, jnp.float32)
            fitted = Standardiser(fitted.shift, fitted.scale / jnp.sqrt(weights))
        emulator = eqx.tree_at(lambda e: e.y_standardiser, emulator, fitted)
    return emulator
