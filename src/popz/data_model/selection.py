"""Selection: a flux (magnitude) limit in a detection band, and its probability for a model galaxy."""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.stats import norm

from popz.sps.photometry import ab_to_flux_nJy

__all__ = ["log_selection_probability", "magnitude_limit_to_flux_nJy"]


def magnitude_limit_to_flux_nJy(mag_limit: float) -> float:
    """The flux in nJy of an AB magnitude limit (a cut m < m_lim is f > f_lim)."""
    return float(ab_to_flux_nJy(mag_limit))


def log_selection_probability(predicted_flux_nJy, flux_limit_nJy, flux_sigma_nJy):
    """log P(observed flux > limit) for a galaxy whose noiseless flux in the detection band is ``predicted_flux_nJy``.

    With Gaussian noise of standard deviation ``flux_sigma_nJy`` (nJy) at the limit:
    log Phi((f - f_lim) / sigma). Scalars or broadcastable arrays; differentiable.
    """
    return norm.logcdf((predicted_flux_nJy - flux_limit_nJy) / jnp.maximum(flux_sigma_nJy, 1e-30))
