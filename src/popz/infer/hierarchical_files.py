"""Files of a calibration (``popz calibrate --out DIR``) and their use by ``popz fit --hyper DIR``.

DIR/summary.json  medians and standard deviations, shaped like a mock's metadata:
                  {"zero_points": {"<tract>": {"<band>": {"median", "std"}}},
                   "error_floors": {"<band>": {"median", "std"}},
                   "hyper": {"<name>": {"median", "std"}}, "free_hyper": [...], "r_hat_max": r, ...}
DIR/chains.npz    chains (n_chains, n_kept, P), names (P,), acceptance, r_hat, MAP and Laplace std
DIR/chains.png    trace plots of the chains
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from popz.errors import PopzError
from popz.io.atomic import atomic_path

__all__ = ["write_calibration", "read_calibration", "Calibration", "calibration_data_model"]

FORMAT_VERSION = 1


class Calibration(NamedTuple):
    """What ``popz fit --hyper`` takes from a calibration.

    tracts : list of int, tract ids in zero-point row order
    bands : list of str
    zero_points : (T, B) medians; error_floors : (B,)
    hyper : dict name -> median (every population hyperparameter)
    digest : sha256 of summary.json (part of a fit's fingerprint)
    """

    tracts: list
    bands: list
    zero_points: np.ndarray
    error_floors: np.ndarray
    hyper: dict
    digest: str


def write_calibration(out: str | Path, result, *, tract_ids, band_labels, prior, meta: dict) -> Path:
    """Write summary.json, chains.npz and chains.png into ``out`` (each atomically); return summary's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hyper_values = prior.hyper_dict(result.hyper)
    summary = {
        "format_version": FORMAT_VERSION,
        "zero_points": {
            str(t): {b: {"median": float(result.zero_points[i, j]), "std": float(result.zero_points_std[i, j])} for j, b in enumerate(band_labels)}
            for i, t in enumerate(tract_ids)
        },
        "error_floors": {b: {"median": float(result.error_floors[j]), "std": float(result.error_floors_std[j])} for j, b in enumerate(band_labels)},
        "hyper": {name: {"median": float(v), "std": float(result.hyper_std.get(name, 0.0))} for name, v in hyper_values.items()},
        "free_hyper": sorted(result.hyper_std),
        "r_hat_max": float(np.max(result.r_hat)),
        "acceptance": [float(a) for a in result.acceptance],
        "n_galaxies_used": int(result.n_used),
        "rounds": result.history,
        **meta,
    }
    names = [_readable(n, tract_ids, band_labels) for n in result.names]
    buffer = io.BytesIO()
    np.savez(
        buffer, chains=result.chains, names=np.array(names), acceptance=result.acceptance, r_hat=result.r_hat,
        map_eta=result.map_eta, laplace_std=result.laplace_std,
    )  # fmt: skip
    with atomic_path(out / "chains.npz") as tmp:
        tmp.write_bytes(buffer.getvalue())
    _plot_chains(out / "chains.png", result.chains, names, result.r_hat)
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    return out / "summary.json"


def _readable(name: str, tract_ids, band_labels) -> str:
    """zp_mag[0][3] -> zp_mag[tract 9813][i] (the calibration's coordinates use row and column numbers)."""
    if name.startswith("zp_mag["):
        t, b = (int(x) for x in name[len("zp_mag[") : -1].split("]["))
        return f"zp_mag[{tract_ids[t]}][{band_labels[b]}]"
    if name.startswith("ln_floor["):
        return f"ln_floor[{band_labels[int(name[len('ln_floor[') : -1])]}]"
    return name


def _plot_chains(path: Path, chains: np.ndarray, names: list, r_hat: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = chains.shape[-1]
    cols = 6
    rows = -(-p // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.6 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= p:
            ax.axis("off")
            continue
        for c in range(chains.shape[0]):
            ax.plot(chains[c, :, i], lw=0.5)
        ax.set_title(f"{names[i]}  R={r_hat[i]:.3f}", fontsize=6)
        ax.tick_params(labelsize=5)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def read_calibration(folder: str | Path, *, band_labels, prior) -> Calibration:
    """The medians of a calibration folder, checked against the bands and the prior of the fit that uses them."""
    path = Path(folder) / "summary.json"
    if not path.exists():
        raise PopzError(f"{folder} is not a calibration folder: no summary.json (make one with popz calibrate)")
    raw = path.read_bytes()
    try:
        summary = json.loads(raw)
    except json.JSONDecodeError as err:
        raise PopzError(f"{path} is not valid JSON ({err}): rerun popz calibrate") from None
    if summary.get("format_version") != FORMAT_VERSION:
        raise PopzError(f"{path} has format version {summary.get('format_version')}, this popz reads {FORMAT_VERSION}")
    bands = list(summary["error_floors"])
    if bands != list(band_labels):
        raise PopzError(f"{path} calibrates bands {bands}, the fit uses {list(band_labels)}")
    unknown = set(summary["hyper"]) - set(prior.hyper_names)
    if unknown:
        raise PopzError(f"{path} has hyperparameters the model does not know: {sorted(unknown)}")
    tracts = [int(t) for t in summary["zero_points"]]
    zero_points = np.array([[summary["zero_points"][str(t)][b]["median"] for b in bands] for t in tracts]).reshape(len(tracts), len(bands))
    floors = np.array([summary["error_floors"][b]["median"] for b in bands])
    hyper = {name: v["median"] for name, v in summary["hyper"].items()}
    return Calibration(tracts, bands, zero_points, floors, hyper, hashlib.sha256(raw).hexdigest())


def calibration_data_model(calibration: Calibration):
    """The DataModelHyper of a calibration: its zero-points (plus the default row of ones) and floors."""
    import jax.numpy as jnp

    from popz.data_model.noise import DataModelHyper

    b = len(calibration.bands)
    zero_point = np.concatenate([calibration.zero_points, np.ones((1, b))])
    return DataModelHyper(
        jnp.asarray(zero_point, jnp.float32), jnp.asarray(calibration.error_floors, jnp.float32), jnp.ones((b,), jnp.float32)
    ).check()
