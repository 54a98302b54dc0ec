"""Summaries of posterior samples: quantiles of every parameter, p(z) on a grid, the redshift mode.

samples : (G, S, D) for G galaxies, S samples, D parameters in the model's order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["summarize", "sorted_percentiles", "redshift_pdf", "DEFAULT_Z_GRID", "QUANTILES"]

DEFAULT_Z_GRID = np.linspace(0.0, 3.0, 301)  # RAIL's default
QUANTILES = (5, 16, 50, 84, 95)


def redshift_pdf(z_samples: np.ndarray, grid: np.ndarray = DEFAULT_Z_GRID, z_sorted: np.ndarray | None = None) -> np.ndarray:
    """p(z) on ``grid`` (G, n_grid), normalised to integrate to 1 over the grid (0 where no sample falls on it).

    A Gaussian kernel density estimate per galaxy with Silverman's bandwidth,
    floored at the grid spacing so that the curve is resolved.
    z_samples : (G, S); z_sorted : (G, S) the same sorted along axis 1, where the caller has it (saves a sort)
    """
    z = np.asarray(z_samples, np.float64)
    s = z.shape[1]
    if z_sorted is None:
        z_sorted = np.sort(z, axis=1)
    q25, q75 = sorted_percentiles(np.asarray(z_sorted, np.float64), (25, 75))
    spread = np.minimum(z.std(axis=1), (q75 - q25) / 1.349)
    spread = np.where(spread > 0, spread, z.std(axis=1))
    dz = grid[1] - grid[0]
    h = np.maximum(0.9 * spread * s ** (-0.2), dz)
    out = np.asarray(_kde(jnp.asarray(z, jnp.float32), jnp.asarray(h, jnp.float32), jnp.asarray(grid, jnp.float32)), np.float64)
    norm = np.trapezoid(out, grid, axis=1)
    return out / np.where(norm > 0, norm, 1.0)[:, None]


@jax.jit
def _kde(z, h, grid):
    """Unnormalised Gaussian KDE (G, n_grid) of samples z (G, S) with bandwidths h (G,).

    One galaxy at a time (``lax.map``): a GPU's sum over S depends on the array's
    shape, and a galaxy's p(z) must not depend on how many share its chunk.
    """

    def one(zh):
        u = (grid[:, None] - zh[0][None, :]) / zh[1]
        return jnp.exp(-0.5 * u * u).sum(axis=1)

    return jax.lax.map(one, (z, h))


def sorted_percentiles(sorted_samples: np.ndarray, percentiles) -> np.ndarray:
    """``np.percentile(x, percentiles, axis=1)`` (linear method, the same values bit for bit) of samples already sorted
    along axis 1: (len(percentiles),) + the shape without axis 1. One sort serves every parameter and level."""
    n = sorted_samples.shape[1]
    out = []
    for p in percentiles:
        index = np.true_divide(p, 100) * (n - 1)
        lo = int(np.floor(index))
        hi = min(lo + 1, n - 1)
        t = index - lo
        a, b = sorted_samples[:, lo], sorted_samples[:, hi]
        diff = b - a
        # numpy's lerp: from the nearer end, so that t = 0 and t = 1 return the samples themselves
        out.append(b - diff * (1 - t) if t >= 0.5 else a + diff * t)
    out = np.stack(out)
    # np.sort puts NaN last; np.percentile gives NaN for every level of a slice holding one
    return np.where(np.isnan(sorted_samples[:, -1]), np.nan, out)


def summarize(samples: np.ndarray, parameter_names, grid: np.ndarray = DEFAULT_Z_GRID) -> tuple[dict, np.ndarray]:
    """Columns {name: (G,)} and p(z) (G, n_grid).

    For every parameter p: ``p_mean`` and ``p_q05``, ``p_q16``, ``p_median``,
    ``p_q84``, ``p_q95``; for the redshift the short names ``z_*`` and
    ``z_mode`` (the maximum of p(z)).
    """
    samples = np.asarray(samples, np.float64)
    columns = {}
    ordered = np.sort(samples, axis=1)
    quantiles = sorted_percentiles(ordered, QUANTILES)  # (len(QUANTILES), G, D)
    for j, name in enumerate(parameter_names):
        short = "z" if name == "redshift" else name
        x = samples[:, :, j]
        q = quantiles[:, :, j]
        columns[f"{short}_mean"] = x.mean(axis=1)
        for level, values in zip(QUANTILES, q):
            columns[f"{short}_median" if level == 50 else f"{short}_q{level:02d}"] = values
    z_index = list(parameter_names).index("redshift")
    pdf = redshift_pdf(samples[:, :, z_index], grid, z_sorted=ordered[:, :, z_index])
    columns["z_mode"] = grid[np.argmax(pdf, axis=1)]
    return columns, pdf
