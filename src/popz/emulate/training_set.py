"""Training sets: parameters drawn from the training prior, run through the simulator.

``simulate_training_set`` writes a Parquet table (``id``, one float32 column per
parameter, one float64 ``mag_<band>`` column per band of the model) and, on
request, the rest-frame spectra to HDF5. The work is split into chunks of
parameters drawn from ``fold_in(key(seed), chunk)``; each chunk is written
atomically into ``OUT.parts/`` as soon as it is done, so a killed run resumes
where it stopped and gives the same table as an uninterrupted one. The final
files are assembled atomically and the parts folder is then removed.
"""

from __future__ import annotations

import json
import math
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from popz import __version__
from popz.config import ModelConfig
from popz.errors import PopzError
from popz.io.atomic import atomic_path
from popz.sps.filters import band_labels
from popz.sps.photometry import flux_nJy_to_ab

__all__ = ["SimulationSummary", "simulate_training_set", "spectra_path_for", "read_training_set_metadata"]

METADATA_KEY = b"popz"
DEFAULT_SPECTRA_RANGE_A = (400.0, 30000.0)


class SimulationSummary(NamedTuple):
    """What a simulation run did.

    n : int                 rows in the table
    n_failed : int          rows whose simulation raised (magnitudes NaN)
    n_chunks_done_before : int   chunks found complete from an earlier run
    table_path : Path
    spectra_path : Path or None
    """

    n: int
    n_failed: int
    n_chunks_done_before: int
    table_path: Path
    spectra_path: Path | None


def spectra_path_for(table_path: Path) -> Path:
    """Where the spectra of a training set go: ``sims.parquet`` -> ``sims.spectra.h5``."""
    return table_path.with_name(table_path.stem + ".spectra.h5")


# --- worker side -------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(config_json: str, spectra_range: tuple[float, float] | None, sim=None) -> None:
    from popz.sps.simulator import make_simulator

    if sim is None:
        sim = make_simulator(ModelConfig.model_validate_json(config_json))
    _WORKER["sim"] = sim
    if spectra_range is not None:
        lam = sim.rest_wavelength_A
        _WORKER["keep"] = (lam >= spectra_range[0]) & (lam <= spectra_range[1])


def _simulate_chunk(theta: np.ndarray, want_spectra: bool):
    """Magnitudes (n, n_bands) and optionally log10 L_lambda spectra (n, n_wave_kept) of a chunk."""
    sim = _WORKER["sim"]
    n = theta.shape[0]
    mags = np.full((n, len(sim.bands)), np.nan)
    spectra = np.full((n, int(_WORKER["keep"].sum())), np.nan, dtype=np.float32) if want_spectra else None
    for i in range(n):
        try:
            sed = sim.rest_sed(theta[i])
            mags[i] = flux_nJy_to_ab(sim.observe(sed, float(theta[i, sim.redshift_index])))
            if want_spectra:
                spectra[i] = np.log10(np.maximum(sed[_WORKER["keep"]], 1e-300))
        except Exception:  # noqa: BLE001 - one failed model must not stop a training set
            pass
    return mags, spectra


# --- parent side -------------------------------------------------------------


def _run_settings(config: ModelConfig, n: int, seed: int, chunk_size: int, spectra: bool, spectra_range) -> dict:
    import jax

    return {
        # the random stream may change between JAX releases: never mix two in one table
        "jax_version": jax.__version__,
        "model": config.name,
        "model_hash": config.hash,
        "n": n,
        "seed": seed,
        "chunk_size": chunk_size,
        "spectra": spectra,
        "spectra_range_A": list(spectra_range) if spectra else None,
    }


def _chunk_theta(prior, seed: int, chunk: int, size: int) -> np.ndarray:
    """Parameters of one chunk: drawn from ``fold_in(key(seed), chunk)``, whatever else ran before."""
    import jax

    return prior.sample(jax.random.fold_in(jax.random.key(seed), chunk), size)


def simulate_training_set(
    config: ModelConfig,
    n: int,
    out: str | Path,
    *,
    seed: int = 0,
    workers: int = 1,
    chunk_size: int = 500,
    spectra: bool = False,
    spectra_range_A: tuple[float, float] = DEFAULT_SPECTRA_RANGE_A,
    command: str = "",
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Draw ``n`` parameter vectors from the training prior, simulate them, write ``out``.

    ``progress(k)`` is called with the number of models finished after each chunk.
    Raises PopzError for bad arguments, a bad model (unknown bands, parameters the
    backend lacks) or a partial run made with other settings, before any work.
    """
    from popz.sps.simulator import make_simulator

    out = Path(out)
    if n < 1:
        raise PopzError(f"--n must be at least 1, got {n}")
    if workers < 1:
        raise PopzError(f"--workers must be at least 1, got {workers}")
    if chunk_size < 1:
        raise PopzError(f"--chunk-size must be at least 1, got {chunk_size}")
    if out.suffix != ".parquet":
        raise PopzError(f"--out must end in .parquet, got {out}")
    simulator = make_simulator(config)  # validates the model and its bands up front
    parts = out.with_name(out.name + ".parts")
    settings = _run_settings(config, n, seed, chunk_size, spectra, spectra_range_A)
    settings_file = parts / "run.json"
    if parts.exists() and settings_file.exists():
        previous = json.loads(settings_file.read_text())
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings[k])
            raise PopzError(
                f"{parts} holds a partial run with other settings ({', '.join(changed)} differ): "
                f"rerun with the same settings to resume, or delete {parts}"
            )
    parts.mkdir(parents=True, exist_ok=True)
    with atomic_path(settings_file) as tmp:
        tmp.write_text(json.dumps(settings, indent=1))

    n_chunks = math.ceil(n / chunk_size)
    sizes = [min(chunk_size, n - c * chunk_size) for c in range(n_chunks)]

    def chunk_file(c: int) -> Path:
        return parts / f"chunk_{c:06d}.npz"

    todo = [c for c in range(n_chunks) if not chunk_file(c).exists()]
    done_before = n_chunks - len(todo)
    if progress:
        progress(n - sum(sizes[c] for c in todo))
    range_arg = tuple(spectra_range_A) if spectra else None

    def save(c: int, theta: np.ndarray, result) -> None:
        mags, spec = result
        with atomic_path(chunk_file(c)) as tmp:
            with open(tmp, "wb") as handle:
                arrays = {"theta": theta, "mags": mags}
                if spec is not None:
                    arrays["spectra"] = spec
                np.savez(handle, **arrays)
        if progress:
            progress(sizes[c])

    if todo:
        from popz.population.training_prior import TrainingPrior

        prior = TrainingPrior(config)
        if workers == 1:
            _init_worker(config.model_dump_json(), range_arg, simulator)
            for c in todo:
                theta = _chunk_theta(prior, seed, c, sizes[c])
                save(c, theta, _simulate_chunk(theta, spectra))
        else:
            ctx = get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(config.model_dump_json(), range_arg)
            ) as pool:
                thetas = {c: _chunk_theta(prior, seed, c, sizes[c]) for c in todo}
                futures = {pool.submit(_simulate_chunk, thetas[c], spectra): c for c in todo}
                for future in as_completed(futures):
                    c = futures[future]
                    save(c, thetas.pop(c), future.result())

    table_path, n_failed = _assemble(config, simulator.bands, parts, n_chunks, out, settings, command)
    spectra_path = None
    if spectra:
        spectra_path = spectra_path_for(out)
        _assemble_spectra(simulator.rest_wavelength_A, parts, n_chunks, spectra_path, settings, range_arg)
    else:
        spectra_path_for(out).unlink(missing_ok=True)  # an older run's spectra no longer match the table
    shutil.rmtree(parts)
    return SimulationSummary(n, n_failed, done_before, table_path, spectra_path)


def _assemble(config: ModelConfig, bands, parts: Path, n_chunks: int, out: Path, settings: dict, command: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    thetas, mags = [], []
    for c in range(n_chunks):
        with np.load(parts / f"chunk_{c:06d}.npz") as data:
            thetas.append(data["theta"])
            mags.append(data["mags"])
    theta = np.concatenate(thetas)
    mag = np.concatenate(mags)
    labels = band_labels(config.bands)
    columns = {"id": pa.array(np.arange(theta.shape[0], dtype=np.int64))}
    for i, name in enumerate(config.parameter_names):
        columns[name] = pa.array(theta[:, i].astype(np.float32))
    for j, label in enumerate(labels):
        columns[f"mag_{label}"] = pa.array(mag[:, j])
    n_failed = int(np.any(~np.isfinite(mag), axis=1).sum())
    metadata = {
        **settings,
        "popz_version": __version__,
        "command": command,
        "parameters": list(config.parameter_names),
        "bands": list(config.bands),
        "band_columns": [f"mag_{b}" for b in labels],
        "band_provenance": [b.provenance for b in bands],
        "n_failed": n_failed,
        "model_config": config.to_dict(),
    }
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return out, n_failed


def _assemble_spectra(lam: np.ndarray, parts: Path, n_chunks: int, path: Path, settings: dict, spectra_range):
    import h5py

    keep = (lam >= spectra_range[0]) & (lam <= spectra_range[1])
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["popz"] = json.dumps({**settings, "popz_version": __version__})
            h5.attrs["units"] = "log10 L_lambda [erg s^-1 A^-1], rest frame, no IGM"
            h5.create_dataset("rest_wavelength_A", data=lam[keep])
            rows = 0
            dset = None
            for c in range(n_chunks):
                with np.load(parts / f"chunk_{c:06d}.npz") as data:
                    block = data["spectra"]
                if dset is None:
                    dset = h5.create_dataset(
                        "log10_l_lambda", shape=(settings["n"], block.shape[1]), dtype="f4", chunks=(min(1024, settings["n"]), block.shape[1])
                    )
                dset[rows : rows + block.shape[0]] = block
                rows += block.shape[0]
            h5.create_dataset("id", data=np.arange(rows, dtype=np.int64))


def read_training_set_metadata(path: str | Path) -> dict:
    """The popz metadata stored in a training-set Parquet file."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        raise PopzError(f"{path} is not a popz training set (no popz metadata)")
    return json.loads(meta[METADATA_KEY])
