"""Table look-ups inside the sampler's inner loop, as one fused kernel.

``jnp.interp`` and ``jnp.searchsorted`` find a grid cell by binary search in a
``while`` loop. On a GPU each trip round that loop is a kernel launch per
look-up, and a log density makes four look-ups (age of the Universe, distance
modulus, dV/dz, emulator error bin) of up to 14 trips each: hundreds of tiny
launches per MCMC step. The same binary search unrolled has no loop, so XLA
fuses it with the arithmetic around it. Results are bitwise those of
``jnp.interp`` / ``jnp.searchsorted`` (same algorithm, same formula).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["bin_index", "interp"]


def interp(x, xp, fp):
    """``jnp.interp(x, xp, fp)`` (constant beyond the ends) with an unrolled binary search.

    x : (...) points; xp : (n,) increasing grid; fp : (n,) values on it. Returns (...) like x.
    """
    x, xp, fp = jnp.asarray(x), jnp.asarray(xp), jnp.asarray(fp)
    dtype = jnp.result_type(x.dtype, xp.dtype, jnp.float32)  # as jnp.interp: x and xp promoted together, inexact
    x, xp, fp = x.astype(dtype), xp.astype(dtype), fp.astype(jnp.result_type(fp.dtype, jnp.float32))
    i = jnp.clip(jnp.searchsorted(xp, x, side="right", method="scan_unrolled"), 1, xp.shape[0] - 1)
    df = fp[i] - fp[i - 1]
    dx = xp[i] - xp[i - 1]
    delta = x - xp[i - 1]
    flat = jnp.abs(dx) <= np.spacing(np.finfo(dtype).eps)
    f = jnp.where(flat, fp[i - 1], fp[i - 1] + (delta / jnp.where(flat, 1, dx)) * df)
    f = jnp.where(x < xp[0], fp[0], f)
    return jnp.where(x > xp[-1], fp[-1], f)


def bin_index(edges, x):
    """Index (int32, shape of x) of the bin of ``edges`` (n + 1,) holding x, clipped to 0..n-1."""
    edges = jnp.asarray(edges)
    return jnp.clip(jnp.searchsorted(edges, x, side="right", method="scan_unrolled") - 1, 0, edges.shape[0] - 2)
