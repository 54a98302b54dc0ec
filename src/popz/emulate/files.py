"""Emulator files: weights (equinox leaves) + a JSON manifest, with checks on load.

A folder holds ``weights.eqx`` and ``manifest.json``. The manifest records the
format version, the kind of emulator, the model (name, config hash, the whole
config), the bands and their provenance, the architecture needed to rebuild the
network, how it was trained (command, settings, training-set size and SHA-256),
its accuracy table, the popz version, and the SHA-256 of the weights file.
Loading checks all of these and says what is incompatible.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import equinox as eqx
import jax

from popz import __version__
from popz.config import ModelConfig
from popz.errors import PopzError
from popz.io.atomic import atomic_path

__all__ = ["FORMAT_VERSION", "save_emulator", "load", "emulator_folder", "read_manifest", "sha256_file", "EmulatorFileError"]

FORMAT_VERSION = 1
WEIGHTS = "weights.eqx"
MANIFEST = "manifest.json"


class EmulatorFileError(PopzError):
    """A missing, corrupted or incompatible emulator file."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_emulator(emulator: eqx.Module, folder: str | Path, manifest: dict) -> Path:
    """Write ``emulator`` and its manifest (completed with format version, popz version, weights hash)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS) as tmp:
        eqx.tree_serialise_leaves(tmp, emulator)
    full = {
        "format_version": FORMAT_VERSION,
        "popz_version": __version__,
        **manifest,
        "weights_sha256": sha256_file(folder / WEIGHTS),
    }
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(full, indent=1, sort_keys=False))
    return folder


def _shipped_folder(name: str, kind: str) -> Path | None:
    folder = resources.files("popz") / "data" / "emulators" / name / kind
    return Path(str(folder)) if folder.is_dir() else None


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise EmulatorFileError(f"{folder} is not an emulator folder: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise EmulatorFileError(f"{path} is corrupted: not valid JSON ({err.msg} at line {err.lineno})") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise EmulatorFileError(
            f"{path} has format version {version}; this popz ({__version__}) reads version {FORMAT_VERSION}: "
            "retrain it with `popz train-emulator` or use a matching popz"
        )
    return manifest


def emulator_folder(name_or_folder: str | Path, kind: str | None = None) -> Path:
    """The folder of an emulator given as a folder or a shipped model name (``kind`` default: photometry)."""
    folder = Path(name_or_folder)
    if (folder / MANIFEST).is_file():
        return folder
    shipped = _shipped_folder(str(name_or_folder), kind or "photometry")
    if shipped is None:
        raise EmulatorFileError(
            f"no emulator at {name_or_folder!r}: not a folder with {MANIFEST} and not a shipped {kind or 'photometry'} emulator"
        )
    return shipped


def load(name_or_folder: str | Path = "lsst-default", *, kind: str | None = None, config: ModelConfig | None = None):
    """Load an emulator by shipped model name (``lsst-default``) or from a folder.

    ``kind`` is ``photometry`` (default for shipped names) or ``spectrum``; for a
    folder it must match the manifest when given. With ``config`` the emulator
    must have been trained for exactly that model (same config hash). Raises
    EmulatorFileError naming what is missing, corrupted or incompatible.
    """
    folder = emulator_folder(name_or_folder, kind)
    manifest = read_manifest(folder)
    try:
        if kind is not None and manifest["kind"] != kind:
            raise EmulatorFileError(f"{folder} holds a {manifest['kind']} emulator, not a {kind} one")
        model = ModelConfig.model_validate(manifest["model_config"])
        if model.hash != manifest["model_hash"]:
            raise EmulatorFileError(f"{folder}: the manifest's model config does not match its recorded hash")
        if config is not None and config.hash != model.hash:
            raise EmulatorFileError(
                f"{folder} was trained for model {model.name!r} (hash {model.hash[:12]}), not for {config.name!r} "
                f"(hash {config.hash[:12]}): retrain it for this model"
            )
        weights = checked_weights(folder, manifest)
        _check_band_files(folder, manifest)
        skeleton = _skeleton(manifest, model)
    except (KeyError, TypeError, ValueError) as err:
        raise EmulatorFileError(f"{folder / MANIFEST} is incomplete or malformed ({type(err).__name__}: {err})") from None
    return deserialise_weights(weights, skeleton)


def deserialise_weights(weights: Path, skeleton):
    """The module in ``weights`` read into ``skeleton``'s structure (EmulatorFileError when it does not fit)."""
    try:
        return eqx.tree_deserialise_leaves(weights, skeleton)
    except Exception as err:  # noqa: BLE001 - any failure here means an unreadable file
        raise EmulatorFileError(f"{weights} cannot be read with its manifest's architecture ({err})") from None


def checked_weights(folder: Path, manifest: dict) -> Path:
    """The weights file of ``folder``, present and with the SHA-256 its manifest records (else EmulatorFileError)."""
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise EmulatorFileError(f"{folder}: {WEIGHTS} is missing")
    if sha256_file(weights) != manifest["weights_sha256"]:
        raise EmulatorFileError(f"{weights} is corrupted: its SHA-256 differs from the manifest's")
    return weights


def _check_band_files(folder: Path, manifest: dict) -> None:
    """Bands given as curve files must still be the curves the emulator was trained with (SHA-256)."""
    from popz.sps.filters import load_band

    for name, recorded in zip(manifest["bands"], manifest["band_provenance"]):
        if recorded.startswith("file ") and load_band(name).provenance != recorded:
            raise EmulatorFileError(f"{folder}: filter curve {name} differs from the one the emulator was trained with")


def _skeleton(manifest: dict, model: ModelConfig):
    import numpy as np

    arch = manifest["architecture"]
    if manifest["kind"] == "photometry":
        from popz.emulate.photometry import new_photometry_emulator

        return new_photometry_emulator(
            jax.random.key(0),
            model,
            np.zeros((2, model.n_parameters)),
            hidden=tuple(arch["hidden"]),
            activation=arch["activation"],
            n_error_bins=arch["n_error_bins"],
        )
    if manifest["kind"] == "spectrum":
        from popz.emulate.spectrum import new_spectrum_emulator

        return new_spectrum_emulator(
            jax.random.key(0),
            model,
            np.zeros((2, model.n_parameters)),
            np.asarray(arch["rest_wavelength_A"]),
            hidden=tuple(arch["hidden"]),
            activation=arch["activation"],
            n_components=arch["n_components"],
        )
    raise EmulatorFileError(f"unknown emulator kind {manifest['kind']!r} in the manifest")
