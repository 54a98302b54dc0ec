"""The likelihood of one galaxy's fluxes given its SPS parameters (vmap it over galaxies).

Gaussian in flux (so non-detections, negative fluxes included, are data like any
other), with the variance of :func:`popz.data_model.noise.flux_variance`; or
Student-t with ``dof`` degrees of freedom and the same scale, for fits robust
to outliers. Bands not observed (``observed`` False: missing, masked) add
nothing, whatever their flux and error hold (NaN included).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax.scipy.special import gammaln

from popz.data_model.extinction import ExtinctionTable
from popz.data_model.noise import DataModelHyper, flux_variance, predicted_flux

__all__ = ["Observation", "log_likelihood", "log_likelihood_of_model_flux", "corrected_for_zero_points"]


class Observation(NamedTuple):
    """One galaxy's data (batch them with a leading axis and vmap).

    flux_nJy : (n_bands,) measured fluxes, nJy (any sign)
    flux_err_nJy : (n_bands,) their 1-sigma errors, nJy
    observed : (n_bands,) bool, False for bands without a usable measurement
    ebv : scalar E(B-V), mag
    tract_index : int scalar, row of the zero-point table (the last row: unknown tract)
    """

    flux_nJy: jnp.ndarray
    flux_err_nJy: jnp.ndarray
    observed: jnp.ndarray
    ebv: jnp.ndarray
    tract_index: jnp.ndarray


def corrected_for_zero_points(obs: Observation, zero_point) -> Observation:
    """One galaxy's fluxes and errors divided by its tract's zero-points (zero_point (T + 1, B)): calibrated data,
    what the amortized flow is trained on."""
    zp = zero_point[obs.tract_index]
    return obs._replace(flux_nJy=obs.flux_nJy / zp, flux_err_nJy=obs.flux_err_nJy / zp)


def log_likelihood(
    theta,
    obs: Observation,
    *,
    emulator,
    hyper: DataModelHyper,
    extinction: ExtinctionTable,
    dof: float | None = None,
):
    """log p(fluxes | theta, data model), a scalar, for one galaxy.

    theta : (n_parameters,) in the model's order; ``emulator`` is a photometric
    emulator in the same bands as ``obs``. ``dof`` None: Gaussian; else Student-t.
    """
    return log_likelihood_of_model_flux(
        emulator.flux_nJy(theta), emulator.error_mag(theta), obs, hyper=hyper, extinction=extinction, dof=dof
    )


def log_likelihood_of_model_flux(model_flux_nJy, emulator_error_mag, obs: Observation, *, hyper: DataModelHyper, extinction: ExtinctionTable, dof=None):
    """:func:`log_likelihood` given the noiseless model fluxes (n_bands,) in nJy and the emulator error (n_bands,) in mag."""
    predicted = predicted_flux(model_flux_nJy, obs.tract_index, extinction.transmission(obs.ebv), hyper)
    # neutral values where a band is not observed, so NaNs there cannot reach the gradient
    flux = jnp.where(obs.observed, obs.flux_nJy, predicted)
    err = jnp.where(obs.observed, obs.flux_err_nJy, 1.0)
    variance = flux_variance(err, predicted, hyper, emulator_error_mag)
    z2 = (flux - predicted) ** 2 / variance
    if dof is None:
        per_band = -0.5 * (z2 + jnp.log(2.0 * jnp.pi * variance))
    else:
        per_band = (
            gammaln(0.5 * (dof + 1.0))
            - gammaln(0.5 * dof)
            - 0.5 * jnp.log(dof * jnp.pi * variance)
            - 0.5 * (dof + 1.0) * jnp.log1p(z2 / dof)
        )
    return jnp.sum(jnp.where(obs.observed, per_band, 0.0))
