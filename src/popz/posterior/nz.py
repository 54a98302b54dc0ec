"""Redshift distributions n(z) of tomographic bins from per-object posteriors (``popz nz``).

Galaxies are assigned to bins on their posterior median redshift (``z_median``
of a ``popz fit`` table) or on a column the user gives. The n(z) of a bin is
the stack of its members' posteriors. Its uncertainty comes from realizations:
each one resamples the members with replacement (the bin's finite sample) and
takes one posterior draw per member (each galaxy's redshift uncertainty). The
realizations are what a cosmology analysis marginalises over. The bin's mean
redshift and its spread over the realizations are the summary.

Shapes: N galaxies, S stored draws per galaxy, R realizations, M bins, G grid points.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from popz.errors import PopzError
from popz.io.atomic import atomic_path

__all__ = ["NzResult", "tomographic_nz", "write_nz"]


class NzResult(NamedTuple):
    """n(z) of M bins.

    edges : (M + 1,) bin edges on the assignment column
    z_grid : (G,) redshift grid of the histograms
    nz : (M, G) stacked n(z), normalised to unit integral
    realizations : (M, R, G) n(z) of each realization, normalised
    mean_z : (M,) mean redshift of the stacked draws; mean_z_std : (M,) its spread over realizations
    realization_mean_z : (M, R)
    n_galaxies : (M,) members of each bin
    """

    edges: np.ndarray
    z_grid: np.ndarray
    nz: np.ndarray
    realizations: np.ndarray
    mean_z: np.ndarray
    mean_z_std: np.ndarray
    realization_mean_z: np.ndarray
    n_galaxies: np.ndarray


def tomographic_nz(
    redshift_draws: np.ndarray, assign: np.ndarray, edges, *, n_realizations: int = 200, z_grid=None, seed: int = 0
) -> NzResult:
    """n(z) per bin from ``redshift_draws`` (N, S) posterior draws and the assignment values ``assign`` (N,)."""
    draws = np.asarray(redshift_draws, np.float64)
    assign = np.asarray(assign, np.float64)
    edges = np.asarray(edges, np.float64)
    if draws.ndim != 2 or draws.shape[0] != assign.shape[0]:
        raise PopzError(f"redshift draws {draws.shape} and assignments {assign.shape} disagree (want (N, S) and (N,))")
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise PopzError(f"bin edges must be increasing, at least two: got {edges.tolist()}")
    if z_grid is None:
        z_grid = np.linspace(0.0, max(3.0, float(np.nanmax(draws)) + 0.01), 301)
    z_grid = np.asarray(z_grid, np.float64)
    width = np.diff(z_grid)
    rng = np.random.default_rng(seed)
    m = edges.size - 1
    nz = np.zeros((m, z_grid.size - 1))
    realizations = np.zeros((m, n_realizations, z_grid.size - 1))
    mean_z = np.full(m, np.nan)
    realization_mean = np.full((m, n_realizations), np.nan)
    counts = np.zeros(m, int)
    for b in range(m):
        members = np.flatnonzero((assign >= edges[b]) & (assign < edges[b + 1]) & np.isfinite(draws).all(axis=1))
        counts[b] = members.size
        if members.size == 0:
            continue
        stacked = draws[members].ravel()
        hist, _ = np.histogram(stacked, bins=z_grid)
        nz[b] = hist / max(hist.sum(), 1) / width
        mean_z[b] = stacked.mean()
        pick_galaxy = rng.integers(0, members.size, (n_realizations, members.size))
        pick_draw = rng.integers(0, draws.shape[1], (n_realizations, members.size))
        z = draws[members[pick_galaxy], pick_draw]  # (R, n_b)
        realization_mean[b] = z.mean(axis=1)
        for r in range(n_realizations):
            hist, _ = np.histogram(z[r], bins=z_grid)
            realizations[b, r] = hist / max(hist.sum(), 1) / width
    centres = 0.5 * (z_grid[1:] + z_grid[:-1])
    return NzResult(edges, centres, nz, realizations, mean_z, np.nanstd(realization_mean, axis=1), realization_mean, counts)


def write_nz(result: NzResult, out: str | Path, meta: dict) -> dict:
    """OUT (qp ensemble of the M stacked n(z), interp), OUT.realizations.hdf5 (M x R), OUT.json, OUT.png."""
    import qp

    out = Path(out)
    written = {}
    for path, yvals, ancil in (
        (out, result.nz, {"bin": np.arange(len(result.nz))}),
        (out.with_name(out.stem + ".realizations.hdf5"), result.realizations.reshape(-1, result.z_grid.size),
         {"bin": np.repeat(np.arange(len(result.nz)), result.realizations.shape[1])}),
    ):  # fmt: skip
        ensemble = qp.Ensemble(qp.interp, data=dict(xvals=result.z_grid, yvals=np.maximum(yvals, 0.0)))
        ensemble.set_ancil(ancil)
        with atomic_path(path) as tmp:
            qp_tmp = tmp.with_name(tmp.name + ".hdf5")  # qp picks the format from the suffix
            ensemble.write_to(str(qp_tmp))
            qp_tmp.replace(tmp)
        written[path.name] = str(path)
    summary = {
        "bins": [
            {"low": float(result.edges[b]), "high": float(result.edges[b + 1]), "n_galaxies": int(result.n_galaxies[b]),
             "mean_z": float(result.mean_z[b]), "mean_z_std": float(result.mean_z_std[b])}
            for b in range(len(result.nz))
        ],  # fmt: skip
        "n_realizations": int(result.realizations.shape[1]),
        **meta,
    }
    json_path = out.with_suffix(".json")
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    png = out.with_suffix(".png")
    _plot(result, png)
    return {**written, json_path.name: str(json_path), png.name: str(png)}


def _plot(result: NzResult, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for b in range(len(result.nz)):
        if result.n_galaxies[b] == 0:
            continue
        lo, hi = np.percentile(result.realizations[b], [16, 84], axis=0)
        line = ax.plot(result.z_grid, result.nz[b], lw=1.2, label=f"{result.edges[b]:.2f}-{result.edges[b + 1]:.2f} ({result.n_galaxies[b]})")
        ax.fill_between(result.z_grid, lo, hi, color=line[0].get_color(), alpha=0.3, lw=0)
    ax.set_xlabel("redshift")
    ax.set_ylabel("n(z)")
    ax.legend(fontsize=7, title="bin (galaxies)", title_fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
