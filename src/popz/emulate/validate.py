"""Held-out validation of emulators against the simulator: accuracy table and residual plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from popz.emulate.train import accuracy_table, read_training_set, residuals
from popz.io.atomic import atomic_path
from popz.sps.filters import band_labels

__all__ = ["validate_photometry_emulator", "residual_figure"]


def residual_figure(redshift: np.ndarray, res: np.ndarray, labels: tuple[str, ...], path: Path, title: str) -> Path:
    """Residuals (emulated - simulated, mag) against redshift per band: points and running 1/16/50/84/99 percentiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    ncols = min(3, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.1 * nrows), squeeze=False, sharex=True)
    edges = np.linspace(redshift.min(), redshift.max(), 25)
    mid = 0.5 * (edges[1:] + edges[:-1])
    which = np.clip(np.searchsorted(edges, redshift, side="right") - 1, 0, edges.size - 2)
    show = np.random.default_rng(0).permutation(len(redshift))[:5000]
    for j, ax in enumerate(axes.flat[:n]):
        ax.scatter(redshift[show], res[show, j], s=1, c="0.7", lw=0, rasterized=True)
        for q, style in ((1, "C3:"), (16, "C0--"), (50, "k-"), (84, "C0--"), (99, "C3:")):
            values = [np.percentile(res[which == k, j], q) if np.any(which == k) else np.nan for k in range(mid.size)]
            ax.plot(mid, values, style, lw=1.2)
        rms = np.sqrt(np.mean(res[:, j] ** 2))
        ax.set_title(f"{labels[j]}: RMS {rms:.4f} mag", fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
        lim = max(0.05, np.percentile(np.abs(res[:, j]), 99.5) * 1.2)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel("redshift")
        ax.set_ylabel("emulated - simulated [mag]")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def validate_photometry_emulator(emulator, config, heldout: str | Path, json_path: str | Path | None, png_path: str | Path | None):
    """Accuracy of a photometric emulator on a held-out training set; writes JSON and PNG when paths are given."""
    theta, mags = read_training_set(heldout, config)
    res = residuals(emulator, theta, mags)
    table = accuracy_table(res, config.bands)
    if json_path:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(table, indent=1))
    if png_path:
        residual_figure(
            theta[:, config.index("redshift")], res, band_labels(config.bands), Path(png_path),
            f"photometric emulator vs simulator, {len(theta)} held-out draws ({Path(heldout).name})",
        )
    return table
