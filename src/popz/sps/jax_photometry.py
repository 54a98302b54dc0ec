"""Photometry of rest-frame SEDs in JAX: IGM, redshifting and any bandpass, differentiable.

The same conventions as :mod:`popz.sps.photometry` (photon-counting bands,
pixel-constant spectra integrated exactly over each pixel, fluxes in nJy), so
that a spectrum emulator's SEDs give photometry in any bands without retraining.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from popz.interpolation import bin_index
from popz.sps.filters import Bandpass
from popz.sps.photometry import NJY_CGS, SPEED_OF_LIGHT_A_PER_S

__all__ = [
    "BandTable",
    "IGMTable",
    "LogGridBandTable",
    "make_band_table",
    "make_igm_table",
    "make_log_grid_band_table",
    "rest_sed_to_flux_nJy",
    "observed_fnu_nJy",
    "log_grid_flux_nJy",
]


class BandTable(NamedTuple):
    """Bandpasses padded to one length, for JAX (float32-safe).

    The cumulative response C(lambda) = int R dlambda/lambda is kept as a float32
    pair (hi + lo) and per-sample increments, so that the integral over a pixel
    is formed from differences of nearby values and increments, never as the
    difference of two rounded cumulatives: in plain float32 that costs ~1e-3 mag
    when the flux sits on a steep filter edge (an emission line, a break).

    wavelength_A : (n_bands, n_samples) increasing, padded past the end
    cumulative_hi, cumulative_lo : (n_bands, n_samples)
    increment : (n_bands, n_samples) C[i+1] - C[i] (0 for the last sample)
    total : (n_bands,) the whole integral
    """

    wavelength_A: jnp.ndarray
    cumulative_hi: jnp.ndarray
    cumulative_lo: jnp.ndarray
    increment: jnp.ndarray
    total: jnp.ndarray


def make_band_table(bands: tuple[Bandpass, ...]) -> BandTable:
    n = max(b.wavelength_A.size for b in bands)
    lam = np.zeros((len(bands), n))
    cum = np.zeros((len(bands), n))
    for i, b in enumerate(bands):
        k = b.wavelength_A.size
        lam[i, :k] = b.wavelength_A
        lam[i, k:] = b.wavelength_A[-1] + np.arange(1, n - k + 1)
        cum[i, :k] = b.cumulative_response
        cum[i, k:] = b.cumulative_response[-1]
    hi = cum.astype(np.float32)
    lo = (cum - hi.astype(np.float64)).astype(np.float32)
    increment = np.zeros_like(cum)
    increment[:, :-1] = np.diff(cum, axis=1)
    return BandTable(
        jnp.asarray(lam, jnp.float32),
        jnp.asarray(hi),
        jnp.asarray(lo),
        jnp.asarray(increment, jnp.float32),
        jnp.asarray(cum[:, -1], jnp.float32),
    )


def _pixel_integrals(edges, lam, c_hi, c_lo, increment):
    """int R dlambda/lambda over each pixel between consecutive ``edges``, shape (n_edges - 1,)."""
    n = lam.shape[0]
    i = jnp.clip(jnp.searchsorted(lam, edges, side="right") - 1, 0, n - 2)
    frac = jnp.clip((edges - lam[i]) / (lam[i + 1] - lam[i]), 0.0, 1.0)
    a, b = i[:-1], i[1:]
    whole = (c_hi[b] - c_hi[a]) + (c_lo[b] - c_lo[a])
    return whole + frac[1:] * increment[b] - frac[:-1] * increment[a]


class IGMTable(NamedTuple):
    """Inoue et al. (2014) transmission on a rest-frame grid: (n_z,) redshifts x (n_z, n_wave)."""

    redshift: jnp.ndarray
    transmission: jnp.ndarray

    def __call__(self, redshift):
        """Transmission, shape (n_wave,), at ``redshift`` (linear in z between table rows)."""
        z = self.redshift
        j = bin_index(z, redshift) + 1  # rows j - 1 and j bracket the redshift
        w = (redshift - z[j - 1]) / (z[j] - z[j - 1])
        return (1.0 - w) * self.transmission[j - 1] + w * self.transmission[j]


def make_igm_table(rest_wavelength_A: np.ndarray, z_max: float = 6.0) -> IGMTable:
    """The IGM table of :class:`popz.sps.igm.IGMTransmission` on a given rest-frame grid, up to ``z_max``."""
    from popz.sps.igm import IGMTransmission

    igm = IGMTransmission(rest_wavelength_A)
    z = igm.redshift_grid[igm.redshift_grid <= z_max + 1e-9]
    table = np.stack([igm(float(zi)) for zi in z]).astype(np.float32)
    return IGMTable(jnp.asarray(z, jnp.float32), jnp.asarray(table))


def observed_fnu_nJy(rest_wavelength_A, log10_l_lambda, igm_transmission, redshift, log10_luminosity_distance_cm):
    """f_nu in nJy of each pixel, shape (n_wave,), of a rest-frame SED seen at ``redshift`` (IGM applied).

    Arguments as :func:`rest_sed_to_flux_nJy`'s.
    """
    obs = rest_wavelength_A * (1.0 + redshift)
    log_fnu = (
        log10_l_lambda
        - jnp.log10(4.0 * jnp.pi)
        - 2.0 * log10_luminosity_distance_cm
        - jnp.log10(1.0 + redshift)
        + 2.0 * jnp.log10(obs)
        - np.log10(SPEED_OF_LIGHT_A_PER_S * NJY_CGS)
    )
    return 10.0**log_fnu * igm_transmission


def rest_sed_to_flux_nJy(
    rest_wavelength_A, rest_pixel_edges_A, log10_l_lambda, igm_transmission, redshift, log10_luminosity_distance_cm, bands: BandTable
):
    """Band fluxes in nJy, shape (n_bands,), of one rest-frame SED seen at ``redshift`` (float32-safe).

    Parameters
    ----------
    rest_wavelength_A : (n_wave,) pixel centres ; rest_pixel_edges_A : (n_wave + 1,)
    log10_l_lambda : (n_wave,) log10 L_lambda in erg/s/A (kept in logs: L and d_L^2 overflow float32)
    igm_transmission : (n_wave,) in [0, 1]
    redshift, log10_luminosity_distance_cm : scalars
    bands : BandTable. Bands must lie inside the redshifted grid (not checked: this runs inside jit).
    """
    import jax

    fnu_nJy = observed_fnu_nJy(rest_wavelength_A, log10_l_lambda, igm_transmission, redshift, log10_luminosity_distance_cm)
    edges = rest_pixel_edges_A * (1.0 + redshift)

    def one_band(lam, c_hi, c_lo, increment, total):
        return jnp.dot(fnu_nJy, _pixel_integrals(edges, lam, c_hi, c_lo, increment)) / total

    return jax.vmap(one_band)(bands.wavelength_A, bands.cumulative_hi, bands.cumulative_lo, bands.increment, bands.total)


class LogGridBandTable(NamedTuple):
    """Pixel weights of bands on one log-uniform rest-frame grid, tabulated over ln(1 + z).

    On a grid whose pixel edges are e_p = e_0 exp(p Delta), redshifting is a
    shift by s = ln(1 + z) in ln(lambda), the same for every pixel. With the
    band's cumulative response C tabulated in ln(lambda) at a step
    delta = Delta / K from ln(e_0), pixel p's weight at shift s = (mK + r + f) delta
    (integers m, 0 <= r < K, 0 <= f < 1) is

        w_p = (1 - f) G[r, p + m] + f G[r + 1, p + m],   G[r, c] = C(e_0, (c + 1) K + r) - C(e_0, c K + r)

    so a redshift costs one contiguous slice of G per band: no search through
    the filter's samples per pixel (what :func:`rest_sed_to_flux_nJy` does).
    G is formed in float64 (differences of nearby values, never of rounded
    cumulatives) and stored in float32. C is the same piecewise-linear
    cumulative as :class:`BandTable`'s; the only approximation is its linear
    interpolation in ln(lambda) between steps delta.

    weights : (n_bands, K + 1, n_columns) G, with row K = row 0 moved one column
    log_step : scalar delta = Delta / K, in ln(Angstrom)
    total : (n_bands,) the whole integral of R dlambda / lambda
    n_pixels : (n_wave,) zeros; its length is the grid's pixel count
    """

    weights: jnp.ndarray
    log_step: jnp.ndarray
    total: jnp.ndarray
    n_pixels: jnp.ndarray


def make_log_grid_band_table(bands: tuple[Bandpass, ...], rest_pixel_edges_A, z_max: float, subdivisions: int = 128) -> LogGridBandTable:
    """:class:`LogGridBandTable` of ``bands`` for the rest grid with edges ``rest_pixel_edges_A`` (n_wave + 1,), z in [0, z_max].

    Raises PopzError if the grid is not log-uniform (to 1e-3 of a pixel).
    """
    from popz.errors import PopzError

    log_edges = np.log(np.asarray(rest_pixel_edges_A, np.float64))
    n_pix = log_edges.size - 1
    step = (log_edges[-1] - log_edges[0]) / n_pix
    if np.max(np.abs(log_edges - (log_edges[0] + step * np.arange(n_pix + 1)))) > 1e-3 * step:
        raise PopzError("the rest-frame grid is not uniform in log wavelength: use make_band_table")
    k = int(subdivisions)
    delta = step / k
    n_cols = n_pix + int(np.ceil(np.log1p(z_max) / step)) + 2
    j = np.arange((n_cols + 2) * k)
    lam = np.exp(log_edges[0] + j * delta)
    weights = np.zeros((len(bands), k + 1, n_cols), np.float32)
    total = np.zeros(len(bands), np.float32)
    for b, band in enumerate(bands):
        cum = np.interp(lam, band.wavelength_A, band.cumulative_response)
        g = (cum[k:] - cum[:-k])[: n_cols * k + 1]  # g[i] = C(i + K) - C(i)
        rows = g[: n_cols * k].reshape(n_cols, k).T  # rows[r, c] = g[c K + r]
        weights[b, :k] = rows
        weights[b, k, :] = g[k : n_cols * k + 1 : k]  # g[(c + 1) K]: row 0 one column on
        total[b] = band.cumulative_response[-1]
    return LogGridBandTable(jnp.asarray(weights), jnp.asarray(delta, jnp.float32), jnp.asarray(total), jnp.zeros(n_pix, jnp.float32))


def log_grid_flux_nJy(fnu_nJy, redshift, table: LogGridBandTable):
    """Band fluxes in nJy, shape (n_bands,), of pixel f_nu ``fnu_nJy`` (n_wave,) on the table's grid at ``redshift``.

    ``redshift`` must lie in the table's [0, z_max] (not checked: this runs inside jit).
    """
    import jax

    n_bands, k1, _ = table.weights.shape
    k = k1 - 1
    t = jnp.log1p(redshift) / table.log_step
    q = jnp.floor(t)
    f = t - q
    q = q.astype(jnp.int32)
    m, r = q // k, q % k
    w = jax.lax.dynamic_slice(table.weights, (0, r, m), (n_bands, 2, table.n_pixels.shape[0]))
    pixel = (1.0 - f) * w[:, 0] + f * w[:, 1]
    return (pixel @ fnu_nJy) / table.total
