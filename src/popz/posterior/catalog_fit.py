"""Fitting a whole catalog in resumable chunks and writing the posterior products.

Outputs, for ``--out OUT.parquet``:

- ``OUT.parquet``: one row per input object, in input order: ``objectId``,
  the catalog's ``tract``, ``coord_ra`` and ``coord_dec`` where it has them,
  summaries of every parameter (:func:`popz.posterior.summaries.summarize`),
  ``flags`` (bitmask: :mod:`popz.io.catalog` input flags | :mod:`popz.infer.fit` flags)
  and sampler diagnostics (``ess``, ``rhat_max``, ``acceptance``);
- ``OUT.pz.hdf5``: p(z) of every object as a qp ensemble (RAIL-readable), with
  ``objectId`` as ancillary data: ``interp`` on the redshift grid
  (``storage="full"``) or ``quant`` at :data:`popz.posterior.compact.PZ_QUANTILE_LEVELS`
  (``storage="compact"``);
- ``OUT.samples.hdf5``: ``samples`` (n, n_keep, D) float32 posterior draws
  (``n_keep`` per object; :data:`~popz.posterior.compact.N_COMPACT_SAMPLES`
  when compact), ``objectId``, and the parameter names.

The sampler is the MCMC of :mod:`popz.infer.fit` unless ``fitter`` is given
(the amortized path: :mod:`popz.infer.amortized_fit`).

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
from popz.io.catalog import PASSTHROUGH_COLUMNS, observations_from_table
from popz.posterior.summaries import DEFAULT_Z_GRID, summarize

__all__ = ["FALLBACK_BATCH", "default_batch_size", "fit_catalog", "fit_in_batches", "output_paths"]

DEFAULT_BATCH = {"cpu": 256}  # galaxies per device call; 4096 on accelerators, which want large calls
FALLBACK_BATCH = 1  # the amortized path's MCMC fallback refits galaxies one at a time: rare, and then independent of batching


def output_paths(out) -> tuple[Path, Path, Path]:
    """The three products of ``--out OUT.parquet``: OUT.parquet, OUT.pz.hdf5, OUT.samples.hdf5."""
    out = Path(out)
    return out, out.with_name(out.stem + ".pz.hdf5"), out.with_name(out.stem + ".samples.hdf5")


def _fingerprint(table, band_labels, settings, emulator_id: str, model_hash: str, chunk_size: int, batch_size: int, n_keep: int) -> dict:
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
        "batch_size": batch_size,
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
    settings=FitSettings(),
    fitter: Callable | None = None,
    storage: str = "full",
    chunk_size: int = 256,
    batch_size: int | None = None,
    first_row: int = 0,
    n_keep: int = 100,
    known_tracts=(),
    z_grid: np.ndarray = DEFAULT_Z_GRID,
    command: str = "",
    progress: Callable[[int], None] | None = None,
    metadata: dict | None = None,
) -> Path:
    """Fit every row of ``table`` (Rubin columns, see :func:`popz.io.catalog.to_rubin_columns`); return OUT's path.

    ``settings``: the sampler's settings (a NamedTuple; part of the run's fingerprint).
    ``fitter(observations, object_id) -> FitResult``: the amortized path; None for MCMC.
    ``chunk_size``: rows per resumable chunk; ``batch_size``: rows per call of the
    fitter (every call has exactly this shape, padded where rows are missing;
    default: :func:`default_batch_size`, or the catalog's size rounded up to a
    power of two if smaller), so that with random streams that follow the object ids, an
    object's result is bitwise the same whatever the chunk size.
    ``metadata``: more JSON-able facts for the outputs' metadata (the filters' throughput tags, say).
    ``first_row``: the catalog row of ``table``'s first row, when ``table`` is one
    partition of a larger catalog (fixes each row's slot in its device call).
    ``storage``: ``full`` or ``compact`` (see the module docstring).
    """
    import pandas as pd

    from popz.posterior.compact import N_COMPACT_SAMPLES, redshift_quantiles

    if storage not in ("full", "compact"):
        raise PopzError(f"storage must be full or compact, got {storage!r}")
    if batch_size is None:
        batch_size = default_batch_size(len(table))
    if chunk_size < 1 or batch_size < 1 or n_keep < 1:
        raise PopzError(f"chunk size, batch size and draws kept must be positive, got {chunk_size}, {batch_size}, {n_keep}")
    if storage == "compact":
        n_keep = N_COMPACT_SAMPLES
    if fitter is None:
        def fitter(observations, object_id):
            return fit_batch(
                observations, emulator=emulator, prior=prior, hyper=hyper, data_model=data_model,
                extinction=extinction, settings=settings, object_id=object_id,
            )  # fmt: skip

    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    fingerprint = {**_fingerprint(table, band_labels, settings, emulator_id, config.hash, chunk_size, batch_size, n_keep),
                   "storage": storage, "first_row": first_row}  # fmt: skip
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
        result = fit_in_batches(fitter, data.observations, data.object_id, batch_size, first_row=first_row + k * chunk_size)
        columns, pdf = summarize(result.samples, config.parameter_names, z_grid)
        if storage == "compact":
            pdf = redshift_quantiles(result.samples[:, :, config.parameter_names.index("redshift")])
        pick = np.linspace(0, result.samples.shape[1] - 1, n_keep).astype(int)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f, objectId=data.object_id, flags=data.flags | result.flags, pdf=pdf.astype(np.float32),
                    samples=result.samples[:, pick].astype(np.float32), **{f"col_{c}": v for c, v in columns.items()},
                    **{f"diag_{c}": v for c, v in result.diagnostics().items()},
                    **{f"pass_{c}": rows[c].to_numpy() for c in PASSTHROUGH_COLUMNS if c in rows.columns},
                )  # fmt: skip
        if progress:
            progress(len(rows))

    chunks = [np.load(parts / f"chunk_{k:06d}.npz") for k in range(n_chunks)]
    cat = lambda key: np.concatenate([c[key] for c in chunks])  # noqa: E731
    frame = {"objectId": cat("objectId")}
    for prefix in ("pass_", "col_"):  # the catalog's metadata, then the summaries
        frame.update({key[len(prefix):]: cat(key) for key in chunks[0].files if key.startswith(prefix)})
    frame["flags"] = cat("flags").astype(np.int32)
    for key in chunks[0].files:
        if key.startswith("diag_"):
            frame[key[5:]] = cat(key)
    summary = pd.DataFrame(frame)
    used = {
        "hyper": prior.hyper_dict(hyper),
        "data_model": {"tracts": [int(t) for t in known_tracts], "zero_points": np.asarray(data_model.zero_point).tolist(),
                       "error_floors": np.asarray(data_model.error_floor).tolist()},
    }  # fmt: skip
    _write_outputs(summary, cat("pdf"), cat("samples"), out, z_grid, config.parameter_names, {**fingerprint, **used, **(metadata or {}), "command": command}, storage)
    shutil.rmtree(parts)
    return out


def default_batch_size(n_total: int | None = None) -> int:
    """Galaxies per device call unless the user says: 256 on CPU, 4096 on a GPU or TPU, or for a catalog of
    ``n_total`` rows that is smaller, its size rounded up to a power of two."""
    import jax

    batch = DEFAULT_BATCH.get(jax.default_backend(), 4096)
    if n_total is not None:
        batch = min(batch, 1 << max(n_total - 1, 0).bit_length())
    return batch


def fit_in_batches(fitter: Callable, observations, object_id: np.ndarray, batch_size: int, first_row: int = 0):
    """``fitter`` over batches of exactly ``batch_size`` rows on a grid fixed by the rows' catalog positions.

    Row i of ``observations`` (catalog row ``first_row + i``) always sits in slot
    ``(first_row + i) % batch_size`` of its call; empty slots repeat a row of the
    same call and are discarded. XLA's results can differ in the last bits with
    the array shape and a row's place in it, so this is what makes an object's
    posterior bitwise independent of how the catalog was chunked.
    """
    import jax

    n = len(object_id)
    if n == 0:
        raise PopzError("no rows to fit")
    rows = first_row + np.arange(n)
    pieces = []
    for block in np.unique(rows // batch_size):
        local = np.flatnonzero(rows // batch_size == block)
        slots = rows[local] - block * batch_size
        index = np.full(batch_size, local[0])
        index[slots] = local
        result = fitter(jax.tree.map(lambda a: a[index], observations), np.asarray(object_id)[index])
        pieces.append(jax.tree.map(lambda a: np.asarray(a)[slots], result))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *pieces)


def _write_outputs(summary, pdf, samples, out: Path, z_grid, parameter_names, metadata: dict, storage: str = "full") -> None:
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq
    import qp

    out, pz, samples_path = output_paths(out)
    if storage == "compact":
        from popz.posterior.compact import PZ_QUANTILE_LEVELS

        # float32 summaries: 7 significant digits, far below any posterior width
        summary = summary.astype({c: np.float32 for c in summary.columns if summary[c].dtype == np.float64 and c not in PASSTHROUGH_COLUMNS})
        ensemble = qp.Ensemble(qp.quant, data=dict(quants=PZ_QUANTILE_LEVELS, locs=pdf))
    else:
        ensemble = qp.Ensemble(qp.interp, data=dict(xvals=z_grid, yvals=pdf))
    ensemble.set_ancil(dict(objectId=summary["objectId"].to_numpy()))
    with atomic_path(pz) as tmp:
        qp_tmp = tmp.with_name(tmp.name + ".hdf5")  # qp picks the format from the suffix
        ensemble.write_to(str(qp_tmp))
        if storage == "compact":
            _copy_as_float32(qp_tmp, tmp)
            qp_tmp.unlink()
        else:
            qp_tmp.replace(tmp)
    with atomic_path(samples_path) as tmp:
        with h5py.File(tmp, "w") as f:
            f["samples"] = samples
            f["objectId"] = summary["objectId"].to_numpy()
            f.attrs["parameters"] = json.dumps(list(parameter_names))
    # the summary table last: once it exists, so do the other two
    table = pa.Table.from_pandas(summary, preserve_index=False)
    table = table.replace_schema_metadata({b"popz": json.dumps(metadata).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


def _copy_as_float32(source: Path, target: Path) -> None:
    """Copy a qp HDF5 file with its float64 data arrays stored as float32 (qp writes float64; it reads either)."""
    import h5py

    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for name in src:
            if name != "data":
                src.copy(src[name], dst, name=name)
                continue
            group = dst.create_group("data")
            for key, value in src["data"].attrs.items():
                group.attrs[key] = value
            for key, data in src["data"].items():
                group.create_dataset(key, data=data[:].astype(np.float32) if data.dtype == np.float64 else data[:])
