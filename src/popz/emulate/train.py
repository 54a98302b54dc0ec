"""Training and validating emulators from training sets made by ``popz simulate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, NamedTuple

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
CHECKPOINT = "checkpoint.bin"


def _training_set_seed(path: str | Path) -> int:
    from popz.emulate.training_set import read_training_set_metadata

    return int(read_training_set_metadata(path)["seed"])


def _training_set_command(path: str | Path) -> str:
    from popz.emulate.training_set import read_training_set_metadata

    meta = read_training_set_metadata(path)
    return meta.get("command", "")


class _Run(NamedTuple):
    """What every emulator manifest records about its training run."""

    config: ModelConfig
    train_path: Path
    command: str
    seed: int
    settings: TrainingSettings
    n_rows: int
    n_validation: int


def _split(key: jax.Array, n: int, validation_fraction: float, batch_size: int, path) -> tuple[np.ndarray, np.ndarray]:
    """Validation and training row indices from one permutation; PopzError when too few rows remain to train."""
    if not 0 < validation_fraction < 1:
        raise PopzError(f"--validation-fraction must be between 0 and 1, got {validation_fraction}")
    n_val = max(1, int(round(validation_fraction * n)))
    if n - n_val < batch_size:
        raise PopzError(
            f"training set {path}: {n - n_val} training rows (of {n} usable, {n_val} kept for validation) "
            f"are fewer than one batch of {batch_size}"
        )
    perm = np.asarray(jax.random.permutation(key, n))
    return perm[:n_val], perm[n_val:]


def _check_architecture(hidden: tuple[int, ...], activation: str) -> None:
    from popz.emulate.networks import ACTIVATIONS

    if not hidden or len(set(hidden)) != 1 or hidden[0] < 1:
        raise PopzError(f"--hidden must list layers of one positive width (e.g. 256,256,256,256), got {list(hidden)}")
    if activation not in ACTIVATIONS:
        raise PopzError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")


def _fingerprint(kind: str, train_path, seed: int, validation_fraction: float, **architecture) -> dict:
    return {
        "kind": kind,
        "train_set_sha256": sha256_file(train_path),
        "seed": seed,
        "validation_fraction": validation_fraction,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in architecture.items()},
    }


def _finish(emulator, out: Path, run: _Run, kind: str, architecture: dict, history, res: np.ndarray, extra: dict):
    """Write the emulator with its manifest and remove the training checkpoint; return the manifest."""
    from popz.sps.filters import load_bands

    config = run.config
    manifest = {
        "kind": kind,
        "model": config.name,
        "model_hash": config.hash,
        "model_config": config.to_dict(),
        "bands": list(config.bands),
        "band_provenance": [b.provenance for b in load_bands(config.bands)],
        "architecture": architecture,
        **extra,
        "training": {
            "command": run.command,
            "seed": run.seed,
            "settings": run.settings._asdict(),
            "train_set": str(run.train_path),
            "train_set_sha256": sha256_file(run.train_path),
            "train_set_command": _training_set_command(run.train_path),
            "train_set_seed": _training_set_seed(run.train_path),
            "n_rows": int(run.n_rows),
            "n_train": int(run.n_rows - run.n_validation),
            "n_validation": int(run.n_validation),
            "best_epoch": history.best_epoch + 1,
            "epochs_run": len(history.val_loss),
            "stopped": history.stopped,
        },
        "accuracy_validation": accuracy_table(res, config.bands),
    }
    save_emulator(emulator, out, manifest)
    if history.stopped != "time budget":  # a time-limited run stays resumable
        (out / CHECKPOINT).unlink(missing_ok=True)
    return manifest


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
    from popz.emulate.batching import batched_apply

    out = [np.asarray(batched_apply(emulator.magnitudes, jnp.asarray(theta[i : i + batch]))) for i in range(0, len(theta), batch)]
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
    loss_units: str = "standardised",
    band_weights: tuple[float, ...] | None = None,
    validation_fraction: float = 0.05,
    init: str | Path | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
) -> tuple[PhotometryEmulator, dict]:
    """Train, measure on the validation split, attach the error model, save to ``out``; return (emulator, manifest).

    ``init``: a photometric emulator (shipped name or folder) of the same model and
    architecture whose weights start the training (fine-tuning, e.g. with another
    ``loss_units``) instead of a random initialisation; its manifest is recorded.
    """
    _check_architecture(hidden, activation)
    if loss_units not in ("standardised", "mag"):
        raise PopzError(f"--loss-units must be standardised or mag, got {loss_units!r}")
    if band_weights is not None and (len(band_weights) != len(config.bands) or min(band_weights) <= 0):
        raise PopzError(f"--band-weights needs {len(config.bands)} positive numbers (one per band), got {list(band_weights)}")
    theta, mags = read_training_set(train_path, config)
    n = theta.shape[0]
    k_split, k_init, k_fit = jax.random.split(jax.random.key(seed), 3)
    val, train = _split(k_split, n, validation_fraction, settings.batch_size, train_path)
    emulator = new_photometry_emulator(
        k_init, config, theta[train], hidden=hidden, activation=activation, magnitudes=mags[train],
        n_error_bins=N_ERROR_BINS, loss_units=loss_units, band_weights=band_weights,
    )
    initialised_from = None
    if init is not None:
        emulator, initialised_from = _warm_start(emulator, init, config, hidden, activation)
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
        checkpoint=out / CHECKPOINT,
        log=log,
        fingerprint=_fingerprint(
            "photometry", train_path, seed, validation_fraction, hidden=hidden, activation=activation, loss_units=loss_units,
            band_weights=list(band_weights) if band_weights is not None else None,
            init=initialised_from["weights_sha256"] if initialised_from else None,
        ),
    )
    emulator = eqx.tree_at(lambda e: e.network, emulator, network)
    res = residuals(emulator, theta[val], mags[val])
    emulator = _error_model(emulator, theta[val, config.index("redshift")], res)
    run = _Run(config, Path(train_path), command, seed, settings, n, val.size)
    architecture = {"hidden": list(hidden), "activation": activation, "n_error_bins": N_ERROR_BINS, "loss_units": loss_units}
    if band_weights is not None:
        architecture["band_weights"] = list(band_weights)
    extra = {"initialised_from": initialised_from} if initialised_from else {}
    manifest = _finish(emulator, out, run, "photometry", architecture, history, res, extra)
    return emulator, manifest


def _warm_start(emulator: PhotometryEmulator, init, config: ModelConfig, hidden, activation) -> tuple[PhotometryEmulator, dict]:
    """``emulator`` with the network of the emulator at ``init``, rescaled to ``emulator``'s output standardiser.

    Both predict y = network(x) * scale + shift; the last layer is rescaled so the
    warm-started emulator predicts exactly what ``init`` does. Returns it with a
    summary of ``init``'s manifest. PopzError when the architectures differ.
    """
    from popz.emulate.files import emulator_folder, load, read_manifest

    folder = emulator_folder(init, "photometry")
    manifest = read_manifest(folder)
    arch = manifest.get("architecture", {})
    if list(arch.get("hidden", [])) != list(hidden) or arch.get("activation") != activation:
        raise PopzError(
            f"--init {init}: its network is {arch.get('hidden')} {arch.get('activation')}, "
            f"not {list(hidden)} {activation}; pass the same --hidden and --activation"
        )
    source = load(folder, kind="photometry", config=config)
    old, new = source.y_standardiser, emulator.y_standardiser
    ratio = old.scale / new.scale
    last = source.network.layers[-1]
    network = eqx.tree_at(
        lambda n: (n.layers[-1].weight, n.layers[-1].bias),
        source.network,
        (last.weight * ratio[:, None], (last.bias * old.scale + old.shift - new.shift) / new.scale),
    )
    emulator = eqx.tree_at(lambda e: (e.network, e.inputs), emulator, (network, source.inputs))
    summary = {
        "folder": str(init),
        "weights_sha256": manifest.get("weights_sha256"),
        "command": manifest.get("training", {}).get("command"),
        "train_set_sha256": manifest.get("training", {}).get("train_set_sha256"),
    }
    return emulator, summary


def read_training_spectra(path: str | Path, config: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parameters (n, n_parameters), magnitudes (n, n_bands), rest wavelengths (n_wave,) and
    log10 L_lambda (n, n_wave) of a training set with spectra; rows with any non-finite value dropped."""
    import h5py
    import pandas as pd

    from popz.emulate.training_set import read_training_set_metadata, spectra_path_for

    path = Path(path)
    meta = read_training_set_metadata(path)
    if meta["model_hash"] != config.hash:
        raise PopzError(f"{path} was simulated for another model ({meta['model']!r}, hash {meta['model_hash'][:12]})")
    spectra_file = spectra_path_for(path)
    if not spectra_file.is_file():
        raise PopzError(f"{spectra_file} is missing: simulate the training set with --spectra")
    table = pd.read_parquet(path)
    with h5py.File(spectra_file, "r") as h5:
        lam = h5["rest_wavelength_A"][:]
        log_l = h5["log10_l_lambda"][:]
        ids = h5["id"][:]
        run = json.loads(h5.attrs["popz"])
    same_run = all(run.get(k) == meta.get(k) for k in ("model_hash", "n", "seed", "chunk_size"))
    if not same_run or not np.array_equal(ids, table["id"].to_numpy()):
        raise PopzError(f"{spectra_file} does not belong to {path} (another simulate run): simulate again with --spectra")
    theta = table[list(config.parameter_names)].to_numpy(np.float32)
    mags = table[[f"mag_{b}" for b in band_labels(config.bands)]].to_numpy(np.float64)
    ok = np.all(np.isfinite(log_l), axis=1) & np.all(np.isfinite(mags), axis=1)
    return theta[ok], mags[ok], lam, log_l[ok]


def train_spectrum_emulator(
    config: ModelConfig,
    train_path: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    hidden: tuple[int, ...] = (256, 256, 256, 256),
    activation: str = "gelu",
    n_components: int = 64,
    n_pca_fit: int = 50000,
    settings: TrainingSettings = TrainingSettings(),
    validation_fraction: float = 0.05,
    command: str = "",
    log: Callable[[str], None] = print,
):
    """PCA of the training spectra + MLP to the PCA weights; measured on the validation split's LSST photometry."""
    from popz.emulate.spectrum import new_spectrum_emulator, pca_basis
    from popz.sps.filters import load_bands
    from popz.sps.jax_photometry import make_band_table

    _check_architecture(hidden, activation)
    theta, mags, lam, log_l = read_training_spectra(train_path, config)
    per_mass = log_l - theta[:, config.index("log_stellar_mass"), None]
    n = theta.shape[0]
    k_split, k_pca, k_init, k_fit = jax.random.split(jax.random.key(seed), 4)
    val, train = _split(k_split, n, validation_fraction, settings.batch_size, train_path)
    pca_rows = np.asarray(jax.random.choice(k_pca, train, (min(n_pca_fit, train.size),), replace=False))
    mean, basis, explained = pca_basis(per_mass[pca_rows], n_components)
    weights = ((per_mass - mean) @ basis.T).astype(np.float32)
    scale = float(np.sqrt(np.mean(weights[train] ** 2)))
    reconstruction = per_mass[val] - (mean + weights[val] @ basis)
    log(f"PCA: {n_components} components explain {explained.sum():.6f} of the variance; "
        f"reconstruction RMS on validation {np.sqrt(np.mean(reconstruction**2)):.4f} dex")
    emulator = new_spectrum_emulator(
        k_init, config, theta[train], lam, hidden=hidden, activation=activation, n_components=n_components,
        pca_mean=mean, basis=basis, output_scale=scale,
    )
    features = jax.jit(jax.vmap(emulator.inputs.features))
    x = np.asarray(features(jnp.asarray(theta)), np.float32)
    y = weights / scale
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    network, history = fit(
        k_fit, emulator.network, lambda net, v: net(v), x[train], y[train], x[val], y[val], settings,
        checkpoint=out / CHECKPOINT, log=log,
        fingerprint=_fingerprint(
            "spectrum", train_path, seed, validation_fraction,
            hidden=hidden, activation=activation, n_components=n_components, n_pca_fit=n_pca_fit,
        ),
    )
    emulator = eqx.tree_at(lambda e: e.network, emulator, network)
    table = make_band_table(load_bands(config.bands))
    predict = jax.jit(jax.vmap(lambda t: emulator.magnitudes(t, table)))
    res = np.asarray(predict(jnp.asarray(theta[val]))) - mags[val]
    run = _Run(config, Path(train_path), command, seed, settings, n, val.size)
    architecture = {
        "hidden": list(hidden),
        "activation": activation,
        "n_components": n_components,
        "rest_wavelength_A": [float(v) for v in lam],
    }
    extra = {"pca": {"explained_variance": float(explained.sum()), "n_fit": int(pca_rows.size)}}
    manifest = _finish(emulator, out, run, "spectrum", architecture, history, res, extra)
    return emulator, manifest
