"""Bandpasses: loading, validation and provenance.

A band is named either by a speclite filter name (``lsst2023-r``, ``sdss2010-g``)
or by the path of a two-column text file (wavelength in Angstrom, throughput per
photon; ``#`` starts a comment). Throughputs are photon-counting responses: the
band-averaged flux density is the photon-weighted mean of f_nu (see
:mod:`popz.sps.photometry`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from popz.errors import FilterError

__all__ = ["Bandpass", "make_bandpass", "load_band", "load_bands", "validate_curve", "band_labels"]

# Negative throughputs smaller than this fraction of the peak are rounding noise
# in published curves (the SDSS r curve has -0.0013): clipped to zero. Larger
# ones mean a broken file.
_NEGATIVE_TOLERANCE = 0.01
_MIN_SAMPLES = 5


class Bandpass(NamedTuple):
    """One bandpass.

    name : str
        The name it was asked for (speclite name or file path).
    wavelength_A : ndarray of shape (n_samples,)
        Strictly increasing wavelengths in Angstrom.
    throughput : ndarray of shape (n_samples,)
        Non-negative response per photon, dimensionless.
    provenance : str
        Where the curve came from (speclite version, or file path and SHA-256).
    cumulative_response : ndarray of shape (n_samples,)
        int R dlambda / lambda from the first sample (trapezoids), for exact
        integration over pixels; made by :func:`make_bandpass`.
    """

    name: str
    wavelength_A: np.ndarray
    throughput: np.ndarray
    provenance: str
    cumulative_response: np.ndarray

    @property
    def pivot_wavelength_A(self) -> float:
        """Pivot wavelength sqrt(int T lambda dlambda / int T dlambda / lambda), Angstrom."""
        lam, t = self.wavelength_A, self.throughput
        return float(np.sqrt(np.trapezoid(t * lam, lam) / np.trapezoid(t / lam, lam)))


def make_bandpass(name: str, wavelength_A: np.ndarray, throughput: np.ndarray, provenance: str) -> Bandpass:
    """A validated :class:`Bandpass` from a curve (raises FilterError for a bad one)."""
    lam, t = validate_curve(wavelength_A, throughput, name)
    integrand = t / lam
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(lam))])
    return Bandpass(name, lam, t, provenance, cumulative)


def validate_curve(wavelength_A: np.ndarray, throughput: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Check a filter curve and return it as float64 arrays with tiny negatives clipped.

    Raises :class:`FilterError` naming the band and the problem.
    """
    lam = np.asarray(wavelength_A, dtype=np.float64)
    t = np.asarray(throughput, dtype=np.float64)
    if lam.ndim != 1 or lam.shape != t.shape:
        raise FilterError(f"filter {name}: expected two columns of equal length, got shapes {lam.shape} and {t.shape}")
    if lam.size < _MIN_SAMPLES:
        raise FilterError(f"filter {name}: only {lam.size} samples; at least {_MIN_SAMPLES} are needed")
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(t))):
        raise FilterError(f"filter {name}: wavelengths and throughputs must be finite numbers")
    if np.any(lam <= 0):
        raise FilterError(f"filter {name}: wavelengths must be positive (Angstrom)")
    if np.any(np.diff(lam) <= 0):
        i = int(np.argmax(np.diff(lam) <= 0))
        raise FilterError(
            f"filter {name}: wavelengths must increase strictly; row {i + 2} ({lam[i + 1]:g}) follows {lam[i]:g}"
        )
    peak = t.max()
    if peak <= 0:
        raise FilterError(f"filter {name}: throughput is nowhere positive")
    if t.min() < -_NEGATIVE_TOLERANCE * peak:
        raise FilterError(
            f"filter {name}: throughput {t.min():g} is negative beyond {_NEGATIVE_TOLERANCE:g} of the peak ({peak:g})"
        )
    return lam, np.clip(t, 0.0, None)


def _load_file(path: Path) -> Bandpass:
    try:
        data = np.loadtxt(path, comments="#", ndmin=2, dtype=np.float64)
    except (ValueError, OSError) as err:
        raise FilterError(f"filter file {path}: cannot be read as two numeric columns ({err})") from None
    if data.shape[1] < 2:
        raise FilterError(f"filter file {path}: expected two columns (Angstrom, throughput), found {data.shape[1]}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return make_bandpass(str(path), data[:, 0], data[:, 1], f"file {path.resolve()} sha256:{digest}")


def _load_speclite(name: str) -> Bandpass:
    import speclite
    import speclite.filters

    try:
        response = speclite.filters.load_filter(name)
    except (ValueError, RuntimeError, OSError):
        raise FilterError(
            f"unknown band {name!r}: not a speclite filter name (e.g. lsst2023-r, sdss2010-g) and not an existing file"
        ) from None
    return make_bandpass(
        name, np.asarray(response.wavelength), np.asarray(response.response), f"speclite {speclite.__version__}:{name}"
    )


def load_band(name: str) -> Bandpass:
    """A bandpass by speclite name or file path."""
    path = Path(name)
    if path.is_file():
        return _load_file(path)
    if path.suffix in (".dat", ".txt", ".par", ".pb", ".lowres", ".res") or "/" in name:
        raise FilterError(f"filter file {name} does not exist")
    return _load_speclite(name)


def load_bands(names: list[str] | tuple[str, ...]) -> tuple[Bandpass, ...]:
    """Bandpasses for a list of names, in order."""
    if len(set(names)) != len(names):
        raise FilterError(f"duplicated band names in {list(names)}")
    return tuple(load_band(n) for n in names)


def _sanitise(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def band_labels(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Short column labels for bands: ``lsst2023-u`` -> ``u``, ``path/sdss_u.dat`` -> ``sdss_u``.

    When two short labels collide (``lsst2023-u`` and ``sdss2010-u``), every band
    gets its full sanitised name instead (``lsst2023_u``, ``sdss2010_u``).
    """
    short = []
    for name in names:
        path = Path(name)
        if path.suffix or "/" in name:
            short.append(_sanitise(path.stem))
        else:
            short.append(_sanitise(name.rsplit("-", 1)[-1]))
    if len(set(short)) == len(short):
        return tuple(short)
    full = tuple(_sanitise(Path(n).stem if "/" in n else n) for n in names)
    if len(set(full)) != len(full):
        raise FilterError(f"bands {list(names)} cannot be given distinct column labels")
    return full
