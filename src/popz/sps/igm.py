"""Absorption by the intergalactic medium: Inoue et al. (2014).

The transmission exp(-tau_IGM) of Inoue, Shimizu, Iwata & Tanaka (2014, MNRAS
442, 1805): Lyman-series and Lyman-continuum absorption by the Lyman-alpha
forest and damped Lyman-alpha systems, as a function of rest-frame wavelength
and source redshift. We use the table bagpipes computes from that paper
(rest wavelengths 1-1225 A in 1 A steps, z = 0-10 in steps of 0.01) and
resample it onto a model's rest-frame wavelength grid once; a redshift is then
a linear interpolation between two table columns.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["IGMTransmission", "LYMAN_ALPHA_A"]

LYMAN_ALPHA_A = 1215.67


def _table_cache_path() -> Path:
    """Where the table is kept once read from bagpipes: ``POPZ_IGM_TABLE``, else ~/.cache/popz/inoue14_igm.npz."""
    return Path(os.environ.get("POPZ_IGM_TABLE") or Path.home() / ".cache" / "popz" / "inoue14_igm.npz")


def _inoue14_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(redshifts (n_z,), rest wavelengths (n_lam,) in A, transmission (n_z, n_lam)).

    Read from bagpipes and kept in a cache file (compressed, full precision), so that a
    machine without bagpipes (a GPU node fitting through the spectrum emulator)
    can use a copy of that file.
    """
    from popz.errors import PopzError

    cache = _table_cache_path()
    try:
        from popz.sps.bagpipes_backend import import_bagpipes

        config = import_bagpipes().config
    except ImportError:
        if not cache.is_file():
            raise PopzError(
                f"the IGM table comes from bagpipes, which is not installed, and there is no copy at {cache}: "
                "install bagpipes, or set POPZ_IGM_TABLE to a copy made where it is"
            ) from None
        with np.load(cache) as f:
            return tuple(np.asarray(f[k], dtype=np.float64) for k in ("redshift", "wavelength_A", "transmission"))
    table = (
        np.asarray(config.igm_redshifts, dtype=np.float64),
        np.asarray(config.igm_wavelengths, dtype=np.float64),
        np.asarray(config.raw_igm_grid, dtype=np.float64),
    )
    if not cache.is_file():
        _write_cache(cache, table)
    return table


def _write_cache(path: Path, table) -> None:
    """Write the table atomically; a read-only home is no error."""
    from popz.io.atomic import atomic_path

    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, redshift=table[0], wavelength_A=table[1], transmission=table[2])
    except OSError:
        pass


class IGMTransmission:
    """IGM transmission on a fixed rest-frame wavelength grid.

    Parameters
    ----------
    rest_wavelength_A : ndarray of shape (n_wave,)
        Increasing rest-frame wavelengths in Angstrom.
    """

    def __init__(self, rest_wavelength_A: np.ndarray):
        z_grid, table_wave, table = _inoue14_table()
        lam = np.asarray(rest_wavelength_A, dtype=np.float64)
        self.redshift_grid = z_grid
        self.rest_wavelength_A = lam
        blue = lam < LYMAN_ALPHA_A
        self._n_blue = int(blue.sum())
        # Interpolate only between table points on the same side of Lyman alpha,
        # so the step at 1215.67 A is not smeared over one table spacing.
        table_blue = table_wave < LYMAN_ALPHA_A
        resampled = np.empty((z_grid.size, self._n_blue))
        for i in range(z_grid.size):
            resampled[i] = np.interp(lam[blue], table_wave[table_blue], table[i, table_blue], left=0.0)
        # The pixel nearest Lyman alpha holds the Lyman-alpha line; when it lies
        # redward of 1215.67 A the line is still resonantly scattered, so it gets
        # the transmission of its blue neighbour (as bagpipes does).
        lya = int(np.abs(lam - LYMAN_ALPHA_A).argmin())
        self._lya_pixel = lya if lam[lya] > LYMAN_ALPHA_A and lya > 0 else None
        self._table = resampled

    def __call__(self, redshift: float) -> np.ndarray:
        """Transmission, shape (n_wave,), for a source at ``redshift`` (0 <= z <= 10)."""
        z_grid = self.redshift_grid
        if not 0.0 <= redshift <= z_grid[-1]:
            raise ValueError(f"IGM table covers 0 <= z <= {z_grid[-1]:g}; got z={redshift:g}")
        j = min(int(np.searchsorted(z_grid, redshift, side="right")), z_grid.size - 1)
        j = max(j, 1)
        w = (redshift - z_grid[j - 1]) / (z_grid[j] - z_grid[j - 1])
        trans = np.ones(self.rest_wavelength_A.size)
        trans[: self._n_blue] = (1.0 - w) * self._table[j - 1] + w * self._table[j]
        if self._lya_pixel is not None:
            trans[self._lya_pixel] = trans[self._lya_pixel - 1]
        return trans
