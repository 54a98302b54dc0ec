"""Held-out validation of emulators against the simulator: accuracy table and residual plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from popz.emulate.train import accuracy_table, read_training_set, residuals
from popz.io.atomic import atomic_path
from popz.sps.filters import band_labels

__all__ = ["validate_photometry_emulator", "validate_spectrum_emulator", "residual_figure", "check_held_out"]


def check_held_out(manifest: dict, heldout: str | Path) -> None:
    """Refuse a test set drawn with the training set's seed: its rows would repeat training rows."""
    from popz.emulate.training_set import read_training_set_metadata
    from popz.errors import PopzError

    train_seed = manifest.get("training", {}).get("train_set_seed")
    test_seed = read_training_set_metadata(heldout)["seed"]
    if train_seed is not None and int(test_seed) == int(train_seed):
        raise PopzError(
            f"{heldout} was drawn with seed {test_seed}, the training set's seed: it repeats training rows; "
            "simulate a held-out set with another --seed"
        )


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


def simulated_magnitudes_from_spectra(config, heldout: str | Path, bands) -> tuple[np.ndarray, np.ndarray]:
    """Parameters (n, n_parameters) and the simulator's magnitudes (n, n_bands) in ``bands``,
    computed in numpy from the held-out set's stored rest-frame spectra (IGM, distance, bandpass)."""
    from popz.emulate.train import read_training_spectra
    from popz.sps.cosmology import make_cosmology_table
    from popz.sps.igm import IGMTransmission
    from popz.sps.photometry import flux_nJy_to_ab, rest_sed_to_flux_nJy

    theta, _, lam, log_l = read_training_spectra(heldout, config)
    igm = IGMTransmission(lam)
    cosmo = make_cosmology_table(config.cosmology)
    i_z = config.index("redshift")
    mags = np.empty((theta.shape[0], len(bands)))
    for k in range(theta.shape[0]):
        z = float(theta[k, i_z])
        sed = 10.0 ** log_l[k].astype(np.float64) * igm(z)
        mags[k] = flux_nJy_to_ab(rest_sed_to_flux_nJy(lam, sed, z, float(cosmo.luminosity_distance(z)), bands))
    return theta, mags


def validate_spectrum_emulator(
    emulator, config, heldout: str | Path, band_names: list[str] | None, json_path=None, png_path=None
) -> dict:
    """Accuracy of a spectrum emulator's photometry on a held-out set, in the model's bands or any ``band_names``."""
    import jax
    import jax.numpy as jnp

    from popz.sps.filters import load_bands
    from popz.sps.jax_photometry import make_band_table

    if band_names:
        bands = load_bands(band_names)
        theta, mags = simulated_magnitudes_from_spectra(config, heldout, bands)
    else:
        bands = load_bands(config.bands)
        theta, mags = read_training_set(heldout, config)
    table = make_band_table(bands)
    predict = jax.jit(jax.vmap(lambda t: emulator.magnitudes(t, table)))
    res = np.concatenate([np.asarray(predict(jnp.asarray(theta[i : i + 8192]))) for i in range(0, len(theta), 8192)]) - mags
    names = tuple(b.name for b in bands)
    report = accuracy_table(res, names)
    if json_path:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(report, indent=1))
    if png_path:
        residual_figure(
            theta[:, config.index("redshift")], res, band_labels(names), Path(png_path),
            f"spectrum emulator photometry vs simulator, {len(theta)} held-out draws ({Path(heldout).name})",
        )
    return report
