"""Table look-ups inside the sampler's inner loop, as one fused kernel.

``jnp.interp`` and ``jnp.searchsorted`` find a grid cell by binary search in a
``while`` loop. On a GPU each trip round that loop is a kernel launch per
look-up, and a log density makes four look-ups (age of the Universe, distance
modulus, dV/dz, emulator error bin) of up to 14 trips each: hundreds of tiny
launches per MCMC step. The same binary search unrolled has no loop, so XLA
fuses it with the arithmetic around it. Results are bitwise those of
``jnp.interp`` / ``jnp.searchsorted`` (the same cell, the same formula).

The search is written here rather than taken from ``jnp.searchsorted(...,
method="scan_unrolled")``: that one's first trip gathers the table at one
constant index for every query, and XLA folds the gather into a constant the
size of the query array (16.7 million elements for the walkers' start of 4,096
galaxies, with XLA's slow-operation alarm). Here the first trip compares with
one scalar.
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
    i = jnp.clip(_count_at_or_below(xp, x), 1, xp.shape[0] - 1)
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
    return jnp.clip(_count_at_or_below(edges, x) - 1, 0, edges.shape[0] - 2)


def _count_at_or_below(table, x):
    """``jnp.searchsorted(table, x, side="right")`` (int32, shape of x) for an increasing ``table`` (n,): the number of
    entries <= x, by a branchless binary search unrolled over the bits of n (NaN x gives n, as searchsorted's)."""
    n = table.shape[0]
    if n == 0:
        return jnp.zeros(jnp.shape(x), jnp.int32)
    top = 1 << (n.bit_length() - 1)  # the largest power of two <= n
    # a query above everything would count the whole table; NaN compares false everywhere, so it is told apart here
    beyond = ~(x < table[n - 1])
    count = jnp.where(table[top - 1] <= x, top, 0).astype(jnp.int32)  # first trip: one scalar, nothing to fold
    step = top >> 1
    while step:
        candidate = count + step
        # entries past the end count as +inf; their index is clipped so that the gather stays in bounds
        below = (table[jnp.minimum(candidate, n) - 1] <= x) & (candidate <= n)
        count = jnp.where(below, candidate, count)
        step >>= 1
    return jnp.where(beyond, jnp.int32(n), count)
