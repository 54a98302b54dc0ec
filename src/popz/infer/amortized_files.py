"""Posterior-flow files: ``weights.eqx`` + ``manifest.json``, like the emulators', checked on load.

The manifest records the model (name, hash, config), the bands, the
architecture, how the flow was trained (command, settings, emulator, pool
SHA-256, loss history), the input-density threshold, the popz version and the
SHA-256 of the weights.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jax
import numpy as np

from popz.config import ModelConfig
from popz.emulate.files import MANIFEST, EmulatorFileError, checked_weights, deserialise_weights, read_manifest, save_emulator
from popz.infer.amortized import Architecture, PosteriorFlow, new_posterior_flow

__all__ = ["save_posterior", "load_posterior", "posterior_folder"]


def save_posterior(model: PosteriorFlow, folder: str | Path, manifest: dict) -> Path:
    return save_emulator(model, folder, manifest)


def posterior_folder(name_or_folder: str | Path) -> Path:
    """The folder of a posterior flow given as a folder or a shipped model name."""
    folder = Path(name_or_folder)
    if (folder / MANIFEST).is_file():
        return folder
    shipped = resources.files("popz") / "data" / "posteriors" / str(name_or_folder)
    if not shipped.is_dir():
        raise EmulatorFileError(f"no posterior flow at {name_or_folder!r}: not a folder with {MANIFEST} and not a shipped one")
    return Path(str(shipped))


def load_posterior(name_or_folder: str | Path = "lsst-default", *, config: ModelConfig | None = None) -> PosteriorFlow:
    """Load a posterior flow; with ``config`` it must have been trained for that model (same hash)."""
    from popz.sps.filters import band_labels

    folder = posterior_folder(name_or_folder)
    manifest = read_manifest(folder)
    try:
        if manifest["kind"] != "posterior":
            raise EmulatorFileError(f"{folder} holds a {manifest['kind']} emulator, not a posterior flow")
        model = ModelConfig.model_validate(manifest["model_config"])
        if config is not None and config.hash != model.hash:
            raise EmulatorFileError(
                f"{folder} was trained for model {model.name!r} (hash {model.hash[:12]}), not for {config.name!r}: retrain it"
            )
        weights = checked_weights(folder, manifest)
        d, b = model.n_parameters, len(model.bands)
        labels = band_labels(model.bands)
        cut_band = manifest["training"]["settings"]["cut_band"]
        z = np.zeros
        skeleton = new_posterior_flow(
            jax.random.key(0), parameter_names=model.parameter_names, band_names=model.bands, lower=z(d), upper=z(d) + 1,
            u_loc=z(d), u_scale=z(d) + 1, feature_loc=z(3 * b + 1), feature_scale=z(3 * b + 1) + 1, flux_scale_nJy=z(b) + 1,
            cut_band=labels.index(cut_band), cut_flux_nJy=0.0, cut_snr=0.0, ebv_max=0.0,
            architecture=Architecture(**manifest["architecture"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        raise EmulatorFileError(f"{folder / MANIFEST} is incomplete or malformed ({type(err).__name__}: {err})") from None
    return deserialise_weights(weights, skeleton)
