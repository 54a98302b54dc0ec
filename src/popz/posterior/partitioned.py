"""Fitting a catalog split in Parquet partitions, here or on a Dask cluster, resumably.

A dataset is a folder of Parquet files, taken in sorted path order, or a HATS
catalog (or collection), whose ``Norder=*/Dir=*/Npix=*.parquet`` leaves are
taken in HEALPix order (nested index at order 29); partition k holds catalog rows
``first_row .. first_row + n_rows``. Each partition is fitted by
:func:`popz.posterior.fit_job.fit_table` into ``OUT/part-KKKKK.parquet`` (with
its ``.pz.hdf5`` and ``.samples.hdf5``); the summary Parquet is written last,
so its presence marks the partition done. ``OUT/manifest.json`` (written
atomically after each partition) lists the partitions, their row ranges and
which are complete.

- A rerun skips completed partitions and resumes unfinished ones chunk by chunk.
- On Dask (``scheduler="local:N"`` or ``"tcp://host:port"``), a HATS catalog is
  read by LSDB (``Catalog.map_partitions``, one task per HEALPix pixel); a lost worker's
  partitions are recomputed by the scheduler on the others; models load once
  per worker process (:func:`popz.posterior.fit_job.prepare` is cached).
- Each row's random stream follows its object id and its slot in a device call
  follows its catalog row, so the results equal a single-process fit of the
  concatenated catalog with the same batch size, whatever the number of workers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, NamedTuple

from popz.errors import PopzError
from popz.io.atomic import atomic_path

__all__ = ["Partition", "hats_catalog", "list_partitions", "partition_output", "fit_partitioned", "read_partitioned"]

MANIFEST = "manifest.json"


class Partition(NamedTuple):
    index: int
    path: str
    n_rows: int
    first_row: int


_LEAF = re.compile(r"Norder=(\d+)/Dir=\d+/Npix=(\d+)\.parquet$")


def _properties(path: Path) -> dict[str, str]:
    lines = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in lines}


def hats_catalog(dataset) -> Path | None:
    """The catalog folder of the HATS catalog or collection at ``dataset``; None when it is not one."""
    folder = Path(dataset)
    if (folder / "collection.properties").is_file():
        primary = _properties(folder / "collection.properties").get("hats_primary_table_url")
        if not primary:
            raise PopzError(f"HATS collection {folder} names no primary catalog (hats_primary_table_url)")
        folder = folder / primary
    if ((folder / "hats.properties").is_file() or (folder / "properties").is_file()) and (folder / "dataset").is_dir():
        return folder
    return None


def _pixel(path) -> tuple[int, int]:
    """(order, pixel) of a HATS leaf file."""
    match = _LEAF.search(Path(path).as_posix())
    if match is None:
        raise PopzError(f"{path} is not a HATS leaf (Norder=K/Dir=D/Npix=N.parquet)")
    return int(match.group(1)), int(match.group(2))


def _hats_leaves(catalog: Path) -> list[Path]:
    leaves = list((catalog / "dataset").glob("Norder=*/Dir=*/Npix=*"))
    if any(leaf.is_dir() for leaf in leaves):
        raise PopzError(f"HATS catalog {catalog} splits pixels into folders of files: not supported, write one file per pixel")

    def nested_index_at_order_29(leaf):
        order, pixel = _pixel(leaf)
        return pixel << (2 * (29 - order))

    return sorted(leaves, key=nested_index_at_order_29)


def list_partitions(dataset) -> list[Partition]:
    """The Parquet partitions of ``dataset``: one file; a HATS catalog's leaves in HEALPix order; or a folder's
    files (searched recursively) in sorted path order."""
    import pyarrow.parquet as pq

    dataset = Path(dataset)
    catalog = hats_catalog(dataset)
    if catalog is not None:
        paths = _hats_leaves(catalog)
    elif dataset.is_file():
        paths = [dataset]
    elif dataset.is_dir():
        paths = sorted(p for p in dataset.rglob("*.parquet") if not p.name.startswith(".") and not p.name.startswith("_"))
    else:
        raise PopzError(f"dataset {dataset} does not exist")
    if not paths:
        raise PopzError(f"dataset {dataset} holds no .parquet files")
    partitions, first = [], 0
    for k, path in enumerate(paths):
        try:
            n = pq.ParquetFile(path).metadata.num_rows
        except Exception as err:  # noqa: BLE001 - pyarrow's errors for a corrupt file vary
            raise PopzError(f"partition {path} cannot be read as Parquet (truncated or corrupt?): {str(err).splitlines()[0][:200]}") from None
        partitions.append(Partition(k, str(path), n, first))
        first += n
    return partitions


def partition_output(out, partition: Partition) -> Path:
    return Path(out) / f"part-{partition.index:05d}.parquet"


def _fit_partition(job, partition: Partition, out: str, n_total: int, command: str, read_rows: Callable | None = None) -> int:
    """Fit one partition (runs on a worker) unless its output exists; returns its index.

    ``read_rows``: gives the partition's table (default: read its file).
    """
    from popz.io.catalog import read_table
    from popz.io.compilation_cache import enable_compilation_cache
    from popz.posterior.fit_job import fit_table

    enable_compilation_cache()  # a worker is a process of its own: POPZ_JAX_CACHE reaches it through the environment
    target = partition_output(out, partition)
    if not target.exists():
        table = read_rows() if read_rows is not None else read_table(partition.path)
        fit_table(job, table, target, first_row=partition.first_row, n_total=n_total, command=command)
    return partition.index


def _fit_hats_pixel(frame, pixel, job, out: str, by_pixel: dict, n_total: int, command: str):
    """LSDB's map_partitions function: fit the rows of one HEALPix pixel (runs on a worker)."""
    import pandas as pd
    import pyarrow as pa

    def read_rows():
        # a plain pandas frame with _healpix_29 back as a column, as a one-process fit reads the leaf (LSDB's pyarrow
        # dtypes stay; numbers and missing values read the same)
        return pa.Table.from_pandas(pd.DataFrame(frame).reset_index(), preserve_index=False).to_pandas()

    index = _fit_partition(job, by_pixel[(pixel.order, pixel.pixel)], out, n_total, command, read_rows)
    return pd.Series([index], dtype="int64", name="partition")


def _submit_hats(client, catalog: Path, todo: list[Partition], job, out: str, n_total: int, command: str):
    """One future per unfinished pixel, via LSDB's map_partitions; each returns a Series holding its partition index."""
    try:
        import lsdb
    except ImportError:
        raise PopzError("fitting a HATS catalog on Dask needs LSDB: pip install 'popz[hats]'") from None
    import pandas as pd

    by_pixel = {_pixel(p.path): p for p in todo}
    pixels = [lsdb.HealpixPixel(order, pixel) for order, pixel in by_pixel]
    # every column, as a one-process fit reads them (a catalog's hats_cols_default could otherwise drop tract or ids)
    hats = lsdb.open_catalog(catalog, search_filter=lsdb.PixelSearch(pixels), columns="all")
    listed = {(p.order, p.pixel) for p in hats.get_healpix_pixels()}
    unlisted = [f"Norder={o}/Npix={n}" for o, n in by_pixel if (o, n) not in listed]
    if unlisted:
        raise PopzError(f"HATS catalog {catalog}: leaves on disk missing from its metadata ({', '.join(unlisted[:3])}): "
                        "rebuild its partition_info.csv and _metadata (hats-import), or fit without --scheduler")  # fmt: skip
    series = hats.map_partitions(_fit_hats_pixel, job, out, by_pixel, n_total, command, include_pixel=True,
                                 meta=pd.Series([], dtype="int64", name="partition"))  # fmt: skip
    return client.compute(series.to_delayed())


def _write_manifest(out: Path, dataset, partitions, done: set[int], job) -> None:
    body = {
        "dataset": str(dataset),
        "job": job._asdict(),
        "n_rows": sum(p.n_rows for p in partitions),
        "partitions": [{**p._asdict(), "output": partition_output(out, p).name, "complete": p.index in done} for p in partitions],
    }
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(body, indent=1))


def _client(scheduler: str):
    from distributed import Client, LocalCluster

    if scheduler.startswith("local:"):
        try:
            n = int(scheduler.split(":", 1)[1])
        except ValueError:
            raise PopzError(f"--scheduler local:N needs a number of workers, got {scheduler!r}") from None
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    if scheduler.startswith("tcp://"):
        return Client(scheduler), None
    raise PopzError(f"--scheduler must be local:N or tcp://HOST:PORT, got {scheduler!r}")


def fit_partitioned(dataset, out, job, *, scheduler: str | None = None, command: str = "",
                    progress: Callable[[int], None] | None = None, partitions: list[Partition] | None = None) -> list[Path]:  # fmt: skip
    """Fit every partition of ``dataset`` into folder ``out``; returns the partitions' summary paths in order.

    ``partitions``: :func:`list_partitions` of ``dataset`` when the caller has it already (it reads every file's footer).
    """
    partitions = partitions if partitions is not None else list_partitions(dataset)
    out = Path(out)
    if out.suffix == ".parquet":
        raise PopzError(f"--out for a partitioned dataset is a folder, not a Parquet file: {out}")
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    if manifest.exists():
        previous = json.loads(manifest.read_text())
        if previous.get("job") != json.loads(json.dumps(job._asdict())) or [
            (p["path"], p["n_rows"]) for p in previous["partitions"]
        ] != [(p.path, p.n_rows) for p in partitions]:
            raise PopzError(f"{out} holds a run with another dataset or options: delete it, or rerun with the same options")
    n_total = sum(p.n_rows for p in partitions)
    done = {p.index for p in partitions if partition_output(out, p).exists()}
    _write_manifest(out, dataset, partitions, done, job)
    todo = [p for p in partitions if p.index not in done]
    for p in partitions:
        if p.index in done and progress:
            progress(p.n_rows)
    if scheduler is None:
        for p in todo:
            _fit_partition(job, p, str(out), n_total, command)
            done.add(p.index)
            _write_manifest(out, dataset, partitions, done, job)
            if progress:
                progress(p.n_rows)
    elif todo:
        from distributed import as_completed

        catalog = hats_catalog(dataset)
        client, cluster = _client(scheduler)
        try:
            if catalog is not None:
                futures = _submit_hats(client, catalog, todo, job, str(out), n_total, command)
            else:
                futures = [client.submit(_fit_partition, job, p, str(out), n_total, command, pure=False, key=f"popz-part-{p.index}")
                           for p in todo]  # fmt: skip
            for future in as_completed(futures):
                try:
                    index = future.result()
                except RuntimeError as err:  # LSDB wraps what the function raised, PopzError included, in a RuntimeError
                    match = re.search(r"Error applying function _fit_hats_pixel to partition \d+, pixel ([^:]+): (.*)", str(err), re.S)
                    if match is None:
                        raise
                    raise PopzError(f"HATS pixel {match.group(1)}: {match.group(2).strip()}") from None
                index = int(index.iloc[0]) if catalog is not None else index
                done.add(index)
                _write_manifest(out, dataset, partitions, done, job)
                if progress:
                    progress(partitions[index].n_rows)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return [partition_output(out, p) for p in partitions]


def read_partitioned(out):
    """The summary tables of a partitioned run, concatenated in partition order (an error if any is missing)."""
    import pandas as pd

    out = Path(out)
    if not (out / MANIFEST).is_file():
        raise PopzError(f"{out} is not a partitioned fit (no {MANIFEST})")
    body = json.loads((out / MANIFEST).read_text())
    missing = [p["output"] for p in body["partitions"] if not (out / p["output"]).exists()]
    if missing:
        raise PopzError(f"{out}: {len(missing)} partition(s) not fitted yet ({', '.join(missing[:3])}): rerun the fit")
    return pd.concat([pd.read_parquet(out / p["output"]) for p in body["partitions"]], ignore_index=True)
