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

__all__ = ["BandTable", "IGMTable", "make_band_table", "make_igm_table", "rest_sed_to_flux_nJy"]


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

    obs = rest_wavelength_A * (1.0 + redshift)
    log_fnu = (
        log10_l_lambda
        - jnp.log10(4.0 * jnp.pi)
        - 2.0 * log10_luminosity_distance_cm
        - jnp.log10(1.0 + redshift)
        + 2.0 * jnp.log10(obs)
        - np.log10(SPEED_OF_LIGHT_A_PER_S * NJY_CGS)
    )
    fnu_nJy = 10.0**log_fnu * igm_transmission
    edges = rest_pixel_edges_A * (1.0 + redshift)

    def one_band(lam, c_hi, c_lo, increment, total):
        return jnp.dot(fnu_nJy, _pixel_integrals(edges, lam, c_hi, c_lo, increment)) / total

    return jax.vmap(one_band)(bands.wavelength_A, bands.cumulative_hi, bands.cumulative_lo, bands.increment, bands.total)
