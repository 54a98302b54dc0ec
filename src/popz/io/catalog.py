"""Reading object catalogs (Rubin Object-table columns) into per-galaxy observations and flags.

Columns: ``objectId``, ``tract`` (optional), ``ebv``, and per band label
``<band>_cModelFlux`` / ``<band>_cModelFluxErr`` in nJy. Bad values never stop
a catalog; they are handled per object and flagged:

- a band whose flux is not finite or whose error is not finite and positive is
  masked (not observed) for that object;
- a tract the data model does not know uses the default zero-points
  (FLAG_UNKNOWN_TRACT, set only when a calibration gives some tracts their own);
- a missing (NaN) E(B-V) is taken as 0 (FLAG_EBV_MISSING); a negative one is
  set to 0 (FLAG_EBV_NEGATIVE): dust maps scatter below 0 only through noise;
- a band with an unusable value (infinite flux or error, a finite flux with a
  missing, zero or negative error, or a flux or error beyond 1e12 nJy, i.e.
  brighter than AB 1.4) is masked and the object flagged FLAG_BAND_INVALID; a
  band with both flux and error missing (NaN) is simply not observed;
- an object with no usable band is flagged FLAG_NO_BANDS (its posterior is the
  prior), one with a single usable band FLAG_ONE_BAND (redshift unconstrained).

Problems with the file itself are errors (PopzError, one line): a missing or
non-numeric column, no rows, missing or duplicated object ids, an unreadable
or truncated file. docs/errors.md lists every flag and message.
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
    "FLAG_BAND_INVALID",
    "FLAG_ONE_BAND",
    "FLAG_UNKNOWN_TRACT",
    "CatalogData",
    "observations_from_table",
]

FLAG_UNKNOWN_TRACT = 1
FLAG_EBV_MISSING = 2
FLAG_EBV_NEGATIVE = 4
FLAG_NO_BANDS = 8
FLAG_BAND_INVALID = 1024
FLAG_ONE_BAND = 2048
FLAG_NAMES = {
    FLAG_UNKNOWN_TRACT: "unknown_tract",
    FLAG_EBV_MISSING: "ebv_missing",
    FLAG_EBV_NEGATIVE: "ebv_negative",
    FLAG_NO_BANDS: "no_bands",
    FLAG_BAND_INVALID: "band_invalid",
    FLAG_ONE_BAND: "one_band",
}
ABSURD_FLUX_NJY = 1e12  # AB magnitude 1.4: no galaxy is this bright


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
    ``len(known_tracts)``, flagged when the column is there and some tracts are known.
    """
    needed = ["objectId", "ebv"] + [c for b in band_labels for c in (flux_column(b), flux_err_column(b))]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise PopzError(f"catalog lacks column(s) {', '.join(missing)} (fluxes and errors in nJy, E(B-V) in mag)")
    n = len(table)
    if n == 0:
        raise PopzError("catalog has no rows")
    object_id = checked_ids(table["objectId"])
    flags = np.zeros(n, np.int32)
    flux = np.stack([numeric_column(table, flux_column(b)) for b in band_labels], axis=1)
    err = np.stack([numeric_column(table, flux_err_column(b)) for b in band_labels], axis=1)
    observed = np.isfinite(flux) & np.isfinite(err) & (err > 0) & (np.abs(flux) < ABSURD_FLUX_NJY) & (err < ABSURD_FLUX_NJY)
    absent = np.isnan(flux) & np.isnan(err)
    flags |= np.where((~observed & ~absent).any(axis=1), FLAG_BAND_INVALID, 0).astype(np.int32)
    n_observed = observed.sum(axis=1)
    flags |= np.where(n_observed == 0, FLAG_NO_BANDS, 0).astype(np.int32)
    flags |= np.where(n_observed == 1, FLAG_ONE_BAND, 0).astype(np.int32)
    ebv = numeric_column(table, "ebv")
    flags |= np.where(~np.isfinite(ebv), FLAG_EBV_MISSING, 0).astype(np.int32)
    flags |= np.where(ebv < 0, FLAG_EBV_NEGATIVE, 0).astype(np.int32)
    ebv = np.where(np.isfinite(ebv), np.maximum(ebv, 0.0), 0.0)
    default_row = len(known_tracts)
    if "tract" in table.columns:
        lookup = {int(t): i for i, t in enumerate(known_tracts)}
        tract = numeric_column(table, "tract")
        rows = np.array([lookup.get(int(t), default_row) if np.isfinite(t) else default_row for t in tract], np.int32)
        if len(known_tracts):  # without a calibration every tract uses the default row: nothing to flag
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
    return CatalogData(object_id, obs, flags)


def numeric_column(table, name: str) -> np.ndarray:
    """Column ``name`` of ``table`` as float64 (n,); an error naming it and an offending value if it is not numeric."""
    column = table[name]
    try:
        return column.to_numpy(np.float64)
    except (TypeError, ValueError):
        import pandas as pd

        bad = column[pd.to_numeric(column, errors="coerce").isna() & column.notna()]
        example = f": row {bad.index[0]} holds {bad.iloc[0]!r}" if len(bad) else ""
        raise PopzError(f"column {name} is not numeric (dtype {column.dtype}){example}") from None


def checked_ids(column) -> np.ndarray:
    """Object ids (n,) int64: an error if any is missing, not an integer, or repeated."""
    values = numeric_column(column.to_frame(), column.name) if column.dtype.kind not in "iu" else None
    if values is not None:
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            raise PopzError(f"object id column: {int(bad.sum())} row(s) hold no integer id (first: row {int(np.argmax(bad))})")
        ids = values.astype(np.int64)
    else:
        ids = column.to_numpy().astype(np.int64)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = unique[counts > 1]
        listed = ", ".join(str(i) for i in repeated[:5]) + (" ..." if repeated.size > 5 else "")
        raise PopzError(f"object ids must be unique: {repeated.size} id(s) appear more than once ({listed})")
    return ids


def read_table(path) -> "object":
    """A catalog file as a pandas DataFrame: Parquet, CSV, FITS, or HDF5 (RAIL's layout: one group of columns)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise PopzError(f"catalog {path} does not exist")
    if path.stat().st_size == 0:
        raise PopzError(f"catalog {path} is an empty file")
    suffix = path.suffix.lower()
    readers = {".parquet": (_read_parquet, "Parquet"), ".pq": (_read_parquet, "Parquet"), ".csv": (_read_csv, "CSV"),
               ".fits": (_read_fits, "FITS"), ".fit": (_read_fits, "FITS"), ".hdf5": (_read_hdf5, "HDF5"),
               ".h5": (_read_hdf5, "HDF5"), ".hdf": (_read_hdf5, "HDF5")}  # fmt: skip
    if suffix not in readers:
        raise PopzError(f"catalog {path}: unknown format {suffix!r} (Parquet, CSV, FITS or HDF5)")
    reader, kind = readers[suffix]
    try:
        table = reader(path)
    except PopzError:
        raise
    except Exception as err:  # each library has its own exceptions for a truncated or corrupt file
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise PopzError(f"catalog {path} cannot be read as {kind} (truncated or corrupt?): {reason}") from None
    if len(table) == 0:
        raise PopzError(f"catalog {path} has no rows")
    return table


def _read_parquet(path):
    import pandas as pd

    return pd.read_parquet(path)


def _read_csv(path):
    import pandas as pd

    return pd.read_csv(path)


def _read_fits(path):
    from astropy.table import Table

    return Table.read(path).to_pandas()


def _read_hdf5(path):
    import h5py
    import pandas as pd

    with h5py.File(path, "r") as f:
        datasets = {k: v for k, v in f.items() if isinstance(v, h5py.Dataset)}
        if not datasets:
            groups = [v for v in f.values() if isinstance(v, h5py.Group)]
            if len(groups) != 1:
                raise PopzError(f"{path}: expected columns at the top level or in one group (RAIL's 'photometry')")
            datasets = {k: v for k, v in groups[0].items() if isinstance(v, h5py.Dataset)}
        lengths = {v.shape[0] if v.shape else -1 for v in datasets.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise PopzError(f"{path}: the HDF5 columns are not one-dimensional arrays of equal length")
        return pd.DataFrame({k: np.asarray(v[:]).astype(v.dtype.newbyteorder("=")) for k, v in datasets.items()})


PASSTHROUGH_COLUMNS = ("tract", "coord_ra", "coord_dec")  # Rubin Object-table metadata copied to the outputs
RAIL_FLUX_TEMPLATE = "mag_{band}_lsst"
RAIL_ERROR_TEMPLATE = "mag_err_{band}_lsst"
_NON_DETECTION_MAG = 90.0  # 99 (RAIL, SExtractor): not detected, the error column holding a limit
_NOT_OBSERVED_MAG = -90.0  # -99: not observed
LIMIT_RANGE_MAG = (15.0, 40.0)  # a non-detection's error column must read as a plausible limiting magnitude


def _magnitudes_to_flux(value, error, zero_point):
    """AB magnitudes and errors (n,) -> flux and error in nJy; sentinels become non-detections or missing values.

    m <= -90: not observed (NaN, NaN). m >= 90: a non-detection, flux 0 with the
    error column read as the 1-sigma limiting magnitude, if that lies within
    LIMIT_RANGE_MAG; otherwise (99/99, say) not observed.
    """
    magnitude = np.isfinite(value) & (value > _NOT_OBSERVED_MAG) & (value < _NON_DETECTION_MAG)
    flux = np.where(magnitude, 10.0 ** (-0.4 * (np.where(magnitude, value, 0.0) - zero_point)), np.nan)
    err = 0.4 * np.log(10.0) * flux * error  # NaN where the error is missing: flagged downstream as an invalid band
    limit_ok = (value >= _NON_DETECTION_MAG) & (error > LIMIT_RANGE_MAG[0]) & (error < LIMIT_RANGE_MAG[1])
    flux = np.where(limit_ok, 0.0, flux)
    err = np.where(limit_ok, 10.0 ** (-0.4 * (np.where(limit_ok, error, 30.0) - zero_point)), err)
    return flux, err


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
            out["objectId"] = checked_ids(table[column])
            break
    else:
        out["objectId"] = np.arange(len(table), dtype=np.int64)
    if "ebv" in table.columns:
        out["ebv"] = numeric_column(table, "ebv")
    elif assume_dereddened:
        out["ebv"] = 0.0
    else:
        raise PopzError("catalog has no 'ebv' column: pass --assume-dereddened if its fluxes are corrected for Galactic extinction")
    for column in PASSTHROUGH_COLUMNS:  # carried to the outputs beside objectId
        if column in table.columns:
            out[column] = table[column].to_numpy()
    for b in band_labels:
        fcol, ecol = flux_template.format(band=b), error_template.format(band=b)
        missing = [c for c in (fcol, ecol) if c not in table.columns]
        if missing:
            raise PopzError(f"catalog lacks column(s) {', '.join(missing)} for band {b}")
        value = numeric_column(table, fcol)
        error = numeric_column(table, ecol)
        if units == "mag":
            flux, err = _magnitudes_to_flux(value, error, AB_MAG_OF_ONE_NJY)
        else:
            scale = 1e3 if units == "uJy" else 1.0
            flux, err = value * scale, error * scale
        out[flux_err_column(b)] = err
        out[flux_column(b)] = flux
    return out
