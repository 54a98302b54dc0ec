"""The demo: fit the shipped sample catalog and plot the result; and a colour-redshift figure with tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from popz.config import ModelConfig
from popz.sps.filters import band_labels

__all__ = ["TRACK_TYPES", "colour_redshift_figure", "track_theta", "sample_catalog_path", "photoz_figure", "corner_figure"]


def sample_catalog_path() -> Path:
    """The shipped sample catalog: a mock LSST Object table with true redshifts (how it was made: catalogs/README.md)."""
    from importlib import resources

    return Path(str(resources.files("popz") / "data" / "catalogs" / "sample_lsst.parquet"))


def photoz_figure(summary, z_true: np.ndarray, png_path: Path) -> Path:
    """PDF-median photo-z with 68% intervals against the true redshift; writes ``png_path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from popz.posterior.report import redshift_metrics

    z = summary["z_median"].to_numpy()
    err = np.stack([z - summary["z_q16"].to_numpy(), summary["z_q84"].to_numpy() - z])
    metrics = redshift_metrics(z, z_true)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.errorbar(z_true, z, yerr=err, fmt="o", ms=3, lw=0.6, alpha=0.7, color="C0", label="popz (median, 68%)")
    top = float(max(z_true.max(), z.max()) * 1.05)
    ax.plot([0, top], [0, top], "k-", lw=0.8)
    for sign in (-1, 1):
        ax.plot([0, top], [0.15 * sign, top + 0.15 * (1 + top) * sign], "k:", lw=0.6)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("true redshift")
    ax.set_ylabel("photometric redshift")
    ax.set_title(f"{len(z)} galaxies: NMAD {metrics['sigma_nmad']:.3f}, outliers {metrics['outlier_fraction']:.1%}", fontsize=10)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path


def corner_figure(samples: np.ndarray, names, truth: np.ndarray | None, png_path: Path, keep=(0, 1, 2, 9)) -> Path:
    """Corner plot of one object's posterior samples (S, D) in the parameters ``keep``; writes ``png_path``."""
    import matplotlib

    matplotlib.use("Agg")
    import corner

    fig = corner.corner(
        samples[:, list(keep)], labels=[names[i] for i in keep], truths=None if truth is None else truth[list(keep)],
        quantiles=(0.16, 0.5, 0.84), show_titles=True, plot_contours=False, plot_density=False,
    )  # fmt: skip
    fig.savefig(png_path, dpi=80)
    return png_path

# Illustrative galaxy types: (log SFR ratio of every adjacent bin pair, dust A_V).
# A negative ratio means less star formation in the younger bin.
TRACK_TYPES = {
    "quiescent": (-1.0, 0.1),
    "star-forming": (0.0, 0.5),
    "starburst": (0.5, 1.2),
}


def track_theta(config: ModelConfig, redshift: float, sfr_ratio: float, dust_av: float) -> np.ndarray:
    """A parameter vector of ``config`` for a track: solar-ish metallicity, 10^10.5 Msun."""
    values = {
        "redshift": redshift,
        "log_stellar_mass": 10.5,
        "log_metallicity": -0.3,
        "dust_av": dust_av,
        "dust_eta": 2.0,
        "dust_index": 0.7,
        "log_u": -2.5,
    }
    theta = 0.5 * (config.lower + config.upper)
    for i, name in enumerate(config.parameter_names):
        theta[i] = sfr_ratio if name.startswith("log_sfr_ratio_") else values.get(name, theta[i])
    return np.clip(theta, config.lower, config.upper)


def colour_redshift_figure(config: ModelConfig, table_path: Path, png_path: Path, n_track: int = 40) -> Path:
    """Plot every adjacent colour against redshift for the galaxies in ``table_path`` plus tracks; write PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from popz.sps.simulator import make_simulator

    table = pd.read_parquet(table_path)
    labels = band_labels(config.bands)
    sim = make_simulator(config)
    z_lo, z_hi = config.parameters[config.index("redshift")].bounds
    z_track = np.linspace(max(z_lo, 0.02), z_hi, n_track)
    tracks = {
        name: np.array([sim.magnitudes(track_theta(config, z, ratio, av)) for z in z_track])
        for name, (ratio, av) in TRACK_TYPES.items()
    }
    n_colours = len(labels) - 1
    ncols = min(3, n_colours)
    nrows = int(np.ceil(n_colours / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    for k in range(n_colours):
        ax = axes.flat[k]
        a, b = labels[k], labels[k + 1]
        colour = table[f"mag_{a}"] - table[f"mag_{b}"]
        ax.scatter(table["redshift"], colour, s=4, c="0.6", lw=0, label="training-prior draws")
        for (name, mags), style in zip(tracks.items(), ("C3-", "C0-", "C2-")):
            ax.plot(z_track, mags[:, k] - mags[:, k + 1], style, lw=1.8, label=name)
        ax.set_xlabel("redshift")
        ax.set_ylabel(f"{a} - {b} [AB mag]")
        ax.set_ylim(np.nanpercentile(colour, 0.5) - 0.3, np.nanpercentile(colour, 99.5) + 0.3)
    for ax in axes.flat[n_colours:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{config.name}: colours of {len(table)} simulated galaxies (bagpipes) and tracks")
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
