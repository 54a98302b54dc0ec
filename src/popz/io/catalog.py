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


def read_table(path) -> "object":
    """A catalog file as a pandas DataFrame: Parquet, CSV, FITS, or HDF5 (RAIL's layout: one group of columns)."""
    from pathlib import Path

    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise PopzError(f"catalog {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".fits", ".fit"):
        from astropy.table import Table

        return Table.read(path).to_pandas()
    if suffix in (".hdf5", ".h5", ".hdf"):
        import h5py

        with h5py.File(path, "r") as f:
            group = f
            datasets = {k: v for k, v in group.items() if isinstance(v, h5py.Dataset)}
            if not datasets:
                groups = [v for v in group.values() if isinstance(v, h5py.Group)]
                if len(groups) != 1:
                    raise PopzError(f"{path}: expected columns at the top level or in one group (RAIL's 'photometry')")
                datasets = {k: v for k, v in groups[0].items() if isinstance(v, h5py.Dataset)}
            return pd.DataFrame({k: np.asarray(v[:]).astype(v.dtype.newbyteorder("=")) for k, v in datasets.items()})
    raise PopzError(f"catalog {path}: unknown format {suffix!r} (Parquet, CSV, FITS or HDF5)")


RAIL_FLUX_TEMPLATE = "mag_{band}_lsst"
RAIL_ERROR_TEMPLATE = "mag_err_{band}_lsst"
_NON_DETECTION_MAG = 90.0


def to_rubin_columns(
    table,
    band_labels: Sequence[str],
    *,
    flux_template: str | None = None,
    error_template: str | None = None,
    units: str = "nJy",
    id_column: str | None = None,
    assume_dereddened: bool = False,
):
    """A copy of ``table`` with Rubin columns (``objectId``, ``ebv``, ``<band>_cModelFlux[Err]`` in nJy).

    Column templates name the catalog's columns with a ``{band}`` placeholder
    (default: the Rubin names; RAIL's ``mag_{band}_lsst`` layout is recognised).
    ``units``: nJy, uJy or mag (AB). Magnitudes convert to flux here, once:
    f = 10^(-0.4 (m - 31.4)) nJy and sigma_f = 0.4 ln10 f sigma_m; a magnitude of
    90 or more (RAIL's 99) is a non-detection: flux 0 with the error column read
    as a 1-sigma limiting magnitude. A table without ``ebv`` is an error unless
    ``assume_dereddened`` (then E(B-V) = 0).
    """
    import pandas as pd

    from popz.sps.photometry import AB_MAG_OF_ONE_NJY

    if flux_template is None and all(f"mag_{b}_lsst" in table.columns for b in band_labels):
        flux_template, error_template, units = RAIL_FLUX_TEMPLATE, RAIL_ERROR_TEMPLATE, "mag"
    flux_template = flux_template or "{band}_cModelFlux"
    error_template = error_template or "{band}_cModelFluxErr"
    if units not in ("nJy", "uJy", "mag"):
        raise PopzError(f"--units must be nJy, uJy or mag, got {units!r}")
    out = pd.DataFrame(index=table.index)
    for column in (id_column, "objectId", "id"):
        if column and column in table.columns:
            out["objectId"] = table[column].to_numpy().astype(np.int64)
            break
    else:
        out["objectId"] = np.arange(len(table), dtype=np.int64)
    if "ebv" in table.columns:
        out["ebv"] = table["ebv"].to_numpy(np.float64)
    elif assume_dereddened:
        out["ebv"] = 0.0
    else:
        raise PopzError("catalog has no 'ebv' column: pass --assume-dereddened if its fluxes are corrected for Galactic extinction")
    if "tract" in table.columns:
        out["tract"] = table["tract"].to_numpy()
    for b in band_labels:
        fcol, ecol = flux_template.format(band=b), error_template.format(band=b)
        missing = [c for c in (fcol, ecol) if c not in table.columns]
        if missing:
            raise PopzError(f"catalog lacks column(s) {', '.join(missing)} for band {b}")
        value = table[fcol].to_numpy(np.float64)
        error = table[ecol].to_numpy(np.float64)
        if units == "mag":
            detected = np.isfinite(value) & (value < _NON_DETECTION_MAG)
            flux = np.where(detected, 10.0 ** (-0.4 * (np.where(detected, value, 0.0) - AB_MAG_OF_ONE_NJY)), 0.0)
            err = np.where(detected, 0.4 * np.log(10.0) * flux * error, 10.0 ** (-0.4 * (error - AB_MAG_OF_ONE_NJY)))
            err = np.where(np.isfinite(error), err, np.nan)
        else:
            scale = 1e3 if units == "uJy" else 1.0
            flux, err = value * scale, error * scale
        out[flux_err_column(b)] = err
        out[flux_column(b)] = flux
    return out
