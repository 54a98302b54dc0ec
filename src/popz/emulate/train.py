"""Training and validating emulators from training sets made by ``popz simulate``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.config import ModelConfig
from popz.emulate.files import save_emulator, sha256_file
from popz.emulate.photometry import PhotometryEmulator, new_photometry_emulator
from popz.emulate.training import TrainingSettings, fit
from popz.errors import PopzError
from popz.sps.filters import band_labels

__all__ = ["read_training_set", "train_photometry_emulator", "accuracy_table", "residuals"]

N_ERROR_BINS = 16


def read_training_set(path: str | Path, config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Parameters (n, n_parameters) float32 and magnitudes (n, n_bands) float64 of a training set.

    Rows whose simulation failed (non-finite magnitudes) are dropped. Raises
    PopzError when the file is not a training set of ``config``.
    """
    import pandas as pd

    from popz.emulate.training_set import read_training_set_metadata

    path = Path(path)
    if not path.is_file():
        raise PopzError(f"training set {path} does not exist")
    meta = read_training_set_metadata(path)
    if meta["model_hash"] != config.hash:
        raise PopzError(
            f"{path} was simulated for model {meta['model']!r} (hash {meta['model_hash'][:12]}), "
            f"not {config.name!r} (hash {config.hash[:12]})"
        )
    table = pd.read_parquet(path)
    columns = [f"mag_{b}" for b in band_labels(config.bands)]
    theta = table[list(config.parameter_names)].to_numpy(np.float32)
    mags = table[columns].to_numpy(np.float64)
    ok = np.all(np.isfinite(mags), axis=1)
    return theta[ok], mags[ok]


def residuals(emulator: PhotometryEmulator, theta: np.ndarray, mags: np.ndarray, batch: int = 16384) -> np.ndarray:
    """Emulated minus simulated magnitudes, shape (n, n_bands)."""
    predict = jax.jit(jax.vmap(emulator.magnitudes))
    out = [np.asarray(predict(jnp.asarray(theta[i : i + batch]))) for i in range(0, len(theta), batch)]
    return np.concatenate(out) - mags


def accuracy_table(res: np.ndarray, bands: tuple[str, ...]) -> dict:
    """Per band: RMS, 68th and 99th percentiles of |residual| (mag), and the count."""
    labels = band_labels(bands)
    return {
        label: {
            "rms": float(np.sqrt(np.mean(res[:, j] ** 2))),
            "p68": float(np.percentile(np.abs(res[:, j]), 68)),
            "p99": float(np.percentile(np.abs(res[:, j]), 99)),
            "n": int(res.shape[0]),
        }
        for j, label in enumerate(labels)
    }


def _error_model(emulator: PhotometryEmulator, redshift: np.ndarray, res: np.ndarray) -> PhotometryEmulator:
    edges = np.asarray(emulator.error_redshift_edges)
    rms = np.zeros((edges.size - 1, res.shape[1]), np.float32)
    which = np.clip(np.searchsorted(edges, redshift, side="right") - 1, 0, edges.size - 2)
    for k in range(edges.size - 1):
        sel = which == k
        rms[k] = np.sqrt(np.mean(res[sel] ** 2, axis=0)) if sel.sum() >= 10 else np.sqrt(np.mean(res**2, axis=0))
    return eqx.tree_at(lambda e: e.error_rms_mag, emulator, jnp.asarray(rms))


def train_photometry_emulator(
    config: ModelConfig,
    train_path: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    hidden: tuple[int, ...] = (256, 256, 256, 256),
    activation: str = "gelu",
    settings: TrainingSettings = TrainingSettings(),
    validation_fraction: float = 0.05,
    command: str = "",
    log: Callable[[str], None] = print,
) -> tuple[PhotometryEmulator, dict]:
    """Train, measure on the validation split, attach the error model, save to ``out``; return (emulator, manifest)."""
    theta, mags = read_training_set(train_path, config)
    n = theta.shape[0]
    n_val = max(1, int(round(validation_fraction * n)))
    if n - n_val < settings.batch_size:
        raise PopzError(f"training set {train_path} has {n} usable rows: too few for batches of {settings.batch_size}")
    key = jax.random.key(seed)
    k_split, k_init, k_fit = jax.random.split(key, 3)
    perm = np.asarray(jax.random.permutation(k_split, n))
    val, train = perm[:n_val], perm[n_val:]
    emulator = new_photometry_emulator(
        k_init, config, theta[train], hidden=hidden, activation=activation, magnitudes=mags[train], n_error_bins=N_ERROR_BINS
    )
    features = jax.jit(jax.vmap(emulator.inputs.features))

    def inputs(rows):
        return np.asarray(features(jnp.asarray(theta[rows])), np.float32)

    def outputs(rows):
        return np.asarray(emulator.y_standardiser.forward(emulator.targets(theta[rows], mags[rows])), np.float32)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    network, history = fit(
        k_fit,
        emulator.network,
        lambda net, x: net(x),
        inputs(train),
        outputs(train),
        inputs(val),
        outputs(val),
        settings,
        checkpoint=out / "checkpoint.eqx",
        log=log,
    )
    emulator = eqx.tree_at(lambda e: e.network, emulator, network)
    res = residuals(emulator, theta[val], mags[val])
    emulator = _error_model(emulator, theta[val, config.index("redshift")], res)
    from popz.sps.filters import load_bands

    manifest = {
        "kind": "photometry",
        "model": config.name,
        "model_hash": config.hash,
        "model_config": config.to_dict(),
        "bands": list(config.bands),
        "band_provenance": [b.provenance for b in load_bands(config.bands)],
        "architecture": {"hidden": list(hidden), "activation": activation, "n_error_bins": N_ERROR_BINS},
        "training": {
            "command": command,
            "seed": seed,
            "settings": settings._asdict(),
            "train_set": str(train_path),
            "train_set_sha256": sha256_file(train_path),
            "n_rows": int(n),
            "n_train": int(n - n_val),
            "n_validation": int(n_val),
            "best_epoch": history.best_epoch + 1,
            "epochs_run": len(history.val_loss),
            "stopped": history.stopped,
        },
        "accuracy_validation": accuracy_table(res, config.bands),
    }
    save_emulator(emulator, out, manifest)
    for stale in ("checkpoint.eqx", "checkpoint.json"):
        (out / stale).unlink(missing_ok=True)
    return emulator, manifest
