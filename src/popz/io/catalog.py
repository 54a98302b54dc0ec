"""Reading object catalogs (Rubin Object-table columns) into per-galaxy observations and flags.

Columns: ``objectId``, ``tract`` (optional), ``ebv``, and per band label
``<band>_cModelFlux`` / ``<band>_cModelFluxErr`` in nJy. Bad values never stop
a catalog; they are handled per object and flagged:

- a band whose flux is not finite or whose error is not finite and positive is
  masked (not observed) for that object;
- a tract the data model does not know uses the default zero-points
  (FLAG_UNKNOWN_TRACT);
- a missing (NaN) E(B-V) is taken as 0 (FLAG_EBV_MISSING); a negative one is
  set to 0 (FLAG_EBV_NEGATIVE): dust maps scatter below 0 only through noise;
- an object with no usable band is flagged FLAG_NO_BANDS (its posterior is the prior).

A missing column is an error (PopzError) naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from popz.data_model.mock import flux_column, flux_err_column
from popz.errors import PopzError
from popz.infer.likelihood import Observation

__all__ = [
    "FLAG_EBV_MISSING",
    "FLAG_EBV_NEGATIVE",
    "FLAG_NAMES",
    "FLAG_NO_BANDS",
    "FLAG_UNKNOWN_TRACT",
    "CatalogData",
    "observations_from_table",
]

FLAG_UNKNOWN_TRACT = 1
FLAG_EBV_MISSING = 2
FLAG_EBV_NEGATIVE = 4
FLAG_NO_BANDS = 8
FLAG_NAMES = {
    FLAG_UNKNOWN_TRACT: "unknown_tract",
    FLAG_EBV_MISSING: "ebv_missing",
    FLAG_EBV_NEGATIVE: "ebv_negative",
    FLAG_NO_BANDS: "no_bands",
}


class CatalogData(NamedTuple):
    """A catalog ready for the likelihood.

    object_id : (n,) int64
    observations : Observation with a leading axis n on every field
    flags : (n,) int32 bitmask of FLAG_*
    """

    object_id: np.ndarray
    observations: Observation
    flags: np.ndarray


def observations_from_table(table, band_labels: Sequence[str], known_tracts: Sequence[int] = ()) -> CatalogData:
    """Observations of every row of ``table`` (a pandas DataFrame) in ``band_labels``' order.

    ``known_tracts``: tract ids with their own zero-point rows, in row order; any
    other tract (or a table without a ``tract`` column) gets the default row
    ``len(known_tracts)``, flagged when the column is there.
    """
    needed = ["objectId", "ebv"] + [c for b in band_labels for c in (flux_column(b), flux_err_column(b))]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise PopzError(f"catalog lacks column(s) {', '.join(missing)} (fluxes and errors in nJy, E(B-V) in mag)")
    n = len(table)
    flags = np.zeros(n, np.int32)
    flux = np.stack([table[flux_column(b)].to_numpy(np.float64) for b in band_labels], axis=1)
    err = np.stack([table[flux_err_column(b)].to_numpy(np.float64) for b in band_labels], axis=1)
    observed = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    flags |= np.where(~observed.any(axis=1), FLAG_NO_BANDS, 0).astype(np.int32)
    ebv = table["ebv"].to_numpy(np.float64)
    flags |= np.where(~np.isfinite(ebv), FLAG_EBV_MISSING, 0).astype(np.int32)
    flags |= np.where(ebv < 0, FLAG_EBV_NEGATIVE, 0).astype(np.int32)
    ebv = np.where(np.isfinite(ebv), np.maximum(ebv, 0.0), 0.0)
    default_row = len(known_tracts)
    if "tract" in table.columns:
        lookup = {int(t): i for i, t in enumerate(known_tracts)}
        tract = table["tract"].to_numpy()
        rows = np.array([lookup.get(int(t), default_row) if np.isfinite(t) else default_row for t in tract], np.int32)
        flags |= np.where(rows == default_row, FLAG_UNKNOWN_TRACT, 0).astype(np.int32)
    else:
        rows = np.full(n, default_row, np.int32)
    obs = Observation(
        flux_nJy=jnp.asarray(np.where(observed, flux, 0.0), jnp.float32),
        flux_err_nJy=jnp.asarray(np.where(observed, err, 1.0), jnp.float32),
        observed=jnp.asarray(observed),
        ebv=jnp.asarray(ebv, jnp.float32),
        tract_index=jnp.asarray(rows),
    )
    return CatalogData(table["objectId"].to_numpy(np.int64), obs, flags)
