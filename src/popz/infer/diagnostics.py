"""Convergence diagnostics of one ensemble chain (vmap over galaxies).

chain : (T, W, D) positions of W walkers over T (thinned) steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["integrated_autocorr_time", "split_rhat"]


def _autocorr_1d(x):
    """Normalised autocorrelation function (T,) of x (T, W), averaged over walkers (FFT, zero-padded)."""
    t = x.shape[0]
    x = x - jnp.mean(x, axis=0)
    n = 1 << (2 * t - 1).bit_length()  # a power of two >= 2T: no circular wrap-around
    f = jnp.fft.rfft(x, n=n, axis=0)
    acf = jnp.fft.irfft(f * jnp.conj(f), n=n, axis=0)[:t]
    acf = jnp.mean(acf, axis=1)
    return acf / jnp.where(acf[0] > 0, acf[0], 1.0)


def integrated_autocorr_time(chain, c: float = 5.0):
    """Integrated autocorrelation time per parameter, shape (D,), in (thinned) steps.

    The walker-averaged autocorrelation function summed up to Sokal's automatic
    window: the smallest M with M >= c tau(M) (Goodman & Weare 2010; emcee's estimator).
    """

    def one(x):
        rho = _autocorr_1d(x)
        taus = 2.0 * jnp.cumsum(rho) - 1.0
        m = jnp.arange(rho.shape[0])
        ok = m >= c * taus
        window = jnp.where(jnp.any(ok), jnp.argmax(ok), rho.shape[0] - 1)
        return taus[window]

    return jax.vmap(one, in_axes=2)(chain)


def split_rhat(chain):
    """Gelman-Rubin R-hat per parameter (D,), with every walker's chain split in two halves (2W chains)."""
    t = chain.shape[0] // 2
    halves = jnp.concatenate([chain[:t], chain[t : 2 * t]], axis=1)  # (t, 2W, D)
    means = jnp.mean(halves, axis=0)
    within = jnp.mean(jnp.var(halves, axis=0, ddof=1), axis=0)
    between = t * jnp.var(means, axis=0, ddof=1)
    var_plus = (t - 1) / t * within + between / t
    return jnp.sqrt(var_plus / jnp.where(within > 0, within, jnp.inf))
