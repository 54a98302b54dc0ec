"""Fitting a whole catalog in resumable chunks and writing the posterior products.

Outputs, for ``--out OUT.parquet``:

- ``OUT.parquet``: one row per input object, in input order: ``objectId``,
  summaries of every parameter (:func:`popz.posterior.summaries.summarize`),
  ``flags`` (bitmask: :mod:`popz.io.catalog` input flags | :mod:`popz.infer.fit` flags)
  and sampler diagnostics (``ess``, ``rhat_max``, ``acceptance``);
- ``OUT.pz.hdf5``: p(z) of every object as a qp ``interp`` ensemble (RAIL-readable),
  with ``objectId`` as ancillary data;
- ``OUT.samples.hdf5``: ``samples`` (n, n_keep, D) float32 posterior draws
  (thinned to ``n_keep`` per object), ``objectId``, and the parameter names.

Chunks are written atomically to ``OUT.parts/`` as they finish; a rerun with
the same inputs and settings skips the finished ones (a rerun with others is
refused); the parts are removed once the outputs exist.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from popz.errors import PopzError
from popz.infer.fit import FitSettings, fit_batch
from popz.io.atomic import atomic_path
from popz.io.catalog import observations_from_table
from popz.posterior.summaries import DEFAULT_Z_GRID, summarize

__all__ = ["fit_catalog", "output_paths"]


def output_paths(out) -> tuple[Path, Path, Path]:
    """The three products of ``--out OUT.parquet``: OUT.parquet, OUT.pz.hdf5, OUT.samples.hdf5."""
    out = Path(out)
    return out, out.with_name(out.stem + ".pz.hdf5"), out.with_name(out.stem + ".samples.hdf5")


def _fingerprint(table, band_labels, settings: FitSettings, emulator_id: str, model_hash: str, chunk_size: int, n_keep: int) -> dict:
    digest = hashlib.sha256()
    for column in ["objectId", "ebv"] + [c for c in table.columns if c.endswith("_cModelFlux") or c.endswith("_cModelFluxErr")]:
        digest.update(np.ascontiguousarray(table[column].to_numpy(np.float64)).tobytes())
    return {
        "catalog_sha256": digest.hexdigest(),
        "n": len(table),
        "bands": list(band_labels),
        "settings": json.loads(json.dumps(settings._asdict(), default=lambda o: o._asdict())),
        "emulator": emulator_id,
        "model_hash": model_hash,
        "chunk_size": chunk_size,
        "n_keep": n_keep,
    }


def fit_catalog(
    table,
    config,
    band_labels,
    out,
    *,
    emulator,
    emulator_id: str,
    prior,
    hyper,
    data_model,
    extinction,
    settings: FitSettings = FitSettings(),
    chunk_size: int = 256,
    n_keep: int = 100,
    known_tracts=(),
    z_grid: np.ndarray = DEFAULT_Z_GRID,
    command: str = "",
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Fit every row of ``table`` (Rubin columns, see :func:`popz.io.catalog.to_rubin_columns`); return OUT's path."""
    import pandas as pd

    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(table, band_labels, settings, emulator_id, config.hash, chunk_size, n_keep)
    run_file = parts / "run.json"
    if run_file.exists():
        if json.loads(run_file.read_text()) != fingerprint:
            raise PopzError(f"{parts} holds a run with another catalog or settings: delete it, or rerun with the same options")
    else:
        with atomic_path(run_file) as tmp:
            tmp.write_text(json.dumps(fingerprint))
    n = len(table)
    n_chunks = -(-n // chunk_size)
    for k in range(n_chunks):
        path = parts / f"chunk_{k:06d}.npz"
        rows = table.iloc[k * chunk_size : (k + 1) * chunk_size]
        if path.exists():
            if progress:
                progress(len(rows))
            continue
        data = observations_from_table(rows, band_labels, known_tracts)
        result = fit_batch(
            data.observations, emulator=emulator, prior=prior, hyper=hyper, data_model=data_model,
            extinction=extinction, settings=settings, batch_index=k,
        )  # fmt: skip
        columns, pdf = summarize(result.samples, config.parameter_names, z_grid)
        pick = np.linspace(0, result.samples.shape[1] - 1, n_keep).astype(int)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f, objectId=data.object_id, flags=data.flags | result.flags, ess=result.ess,
                    rhat_max=result.rhat.max(axis=1), acceptance=result.acceptance, pdf=pdf.astype(np.float32),
                    samples=result.samples[:, pick].astype(np.float32), **{f"col_{c}": v for c, v in columns.items()},
                )  # fmt: skip
        if progress:
            progress(len(rows))

    chunks = [np.load(parts / f"chunk_{k:06d}.npz") for k in range(n_chunks)]
    cat = lambda key: np.concatenate([c[key] for c in chunks])  # noqa: E731
    frame = {"objectId": cat("objectId")}
    for key in chunks[0].files:
        if key.startswith("col_"):
            frame[key[4:]] = cat(key)
    frame.update(flags=cat("flags").astype(np.int32), ess=cat("ess"), rhat_max=cat("rhat_max"), acceptance=cat("acceptance"))
    summary = pd.DataFrame(frame)
    _write_outputs(summary, cat("pdf"), cat("samples"), out, z_grid, config.parameter_names, {**fingerprint, "command": command})
    shutil.rmtree(parts)
    return out


def _write_outputs(summary, pdf, samples, out: Path, z_grid, parameter_names, metadata: dict) -> None:
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq
    import qp

    out, pz, samples_path = output_paths(out)
    table = pa.Table.from_pandas(summary, preserve_index=False)
    table = table.replace_schema_metadata({b"popz": json.dumps(metadata).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    ensemble = qp.Ensemble(qp.interp, data=dict(xvals=z_grid, yvals=pdf))
    ensemble.set_ancil(dict(objectId=summary["objectId"].to_numpy()))
    with atomic_path(pz) as tmp:
        qp_tmp = tmp.with_name(tmp.name + ".hdf5")  # qp picks the format from the suffix
        ensemble.write_to(str(qp_tmp))
        qp_tmp.replace(tmp)
    with atomic_path(samples_path) as tmp:
        with h5py.File(tmp, "w") as f:
            f["samples"] = samples
            f["objectId"] = summary["objectId"].to_numpy()
            f.attrs["parameters"] = json.dumps(list(parameter_names))
