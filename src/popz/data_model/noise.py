"""The data model's hyperparameters and what they do to model fluxes and variances.

For one galaxy in tract t, band b:

    predicted flux   = zero_point[t, b] x 10^(-0.4 A_b(E(B-V))) x model flux
    variance         = inflation[b] x flux_err^2 + (floor[b] x predicted)^2
                       + (0.4 ln 10 x emulator error[b] x predicted)^2

A zero-point above 1 makes the band brighter (the catalog's calibration is off
by that factor). Tract row ``n_tracts`` (the last) is the default used for
tracts the hyperparameters do not know: zero-points 1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from popz.errors import PopzError

__all__ = ["DataModelHyper", "default_data_model", "predicted_flux", "flux_variance", "MAG_TO_FRACTION"]

MAG_TO_FRACTION = 0.4 * np.log(10.0)  # d(flux)/flux per mag


class DataModelHyper(NamedTuple):
    """Data-model hyperparameters.

    zero_point : (n_tracts + 1, n_bands) multiplicative flux factors; the last row is the default tract
    error_floor : (n_bands,) fractional error added in quadrature (0.01 = 1%)
    error_inflation : (n_bands,) factor on the catalog's flux variance (1 = as given)
    """

    zero_point: jnp.ndarray
    error_floor: jnp.ndarray
    error_inflation: jnp.ndarray

    def check(self) -> "DataModelHyper":
        """Raise PopzError for values outside their physical range."""
        zp, floor, infl = (np.asarray(a) for a in self)
        if zp.ndim != 2 or floor.shape != (zp.shape[1],) or infl.shape != (zp.shape[1],):
            raise PopzError(f"data-model shapes disagree: zero_point {zp.shape}, floor {floor.shape}, inflation {infl.shape}")
        if not np.all(np.isfinite(zp)) or np.any(zp <= 0):
            raise PopzError("zero-points must be finite and positive (flux factors, 1 = no offset)")
        if not np.all(np.isfinite(floor)) or np.any(floor < 0) or np.any(floor > 1):
            raise PopzError("error floors must be fractions between 0 and 1")
        if not np.all(np.isfinite(infl)) or np.any(infl <= 0):
            raise PopzError("error inflation factors must be finite and positive")
        return self


def default_data_model(n_tracts: int, n_bands: int, error_floor: float = 0.0) -> DataModelHyper:
    """Zero-points 1 everywhere, a uniform error floor, no inflation."""
    return DataModelHyper(
        jnp.ones((n_tracts + 1, n_bands), jnp.float32),
        jnp.full((n_bands,), error_floor, jnp.float32),
        jnp.ones((n_bands,), jnp.float32),
    )


def predicted_flux(model_flux_nJy, tract_index, extinction_transmission, hyper: DataModelHyper):
    """Fluxes the catalog should show, shape (n_bands,): zero-point x Galactic extinction x model flux (nJy)."""
    return hyper.zero_point[tract_index] * extinction_transmission * model_flux_nJy


def flux_variance(flux_err_nJy, predicted_nJy, hyper: DataModelHyper, emulator_error_mag=0.0):
    """Total variance in nJy^2, shape (n_bands,): inflated catalog errors + floor + emulator error."""
    relative = hyper.error_floor**2 + (MAG_TO_FRACTION * emulator_error_mag) ** 2
    return hyper.error_inflation * flux_err_nJy**2 + relative * predicted_nJy**2
