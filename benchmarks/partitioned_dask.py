"""Partitioned fits on Dask: equal to one process, a worker lost mid-run, the whole run killed and rerun.

A mock of N galaxies (``popz mock``) split in P Parquet files:

1. one process (``popz fit DATASET --out A``, no scheduler) -> the reference;
2. ``--scheduler local:2`` -> must equal the reference;
3. the same on a LocalCluster of 2 workers, one worker process killed (SIGKILL) once
   the first partition is done -> must still complete, equal to the reference;
4. ``popz fit DATASET --scheduler local:2`` killed (SIGKILL to its process group)
   mid-run, then rerun -> only unfinished partitions are redone (the finished ones
   keep their files), and the table equals the reference, no object missing or repeated;
5. the mock written as a HATS catalog (LSDB, rows regrouped by HEALPix pixel), fitted
   with ``--scheduler local:2`` through LSDB's ``map_partitions`` -> sorted by objectId,
   the reference's table (columns compared exactly; the float differences reported).

    python benchmarks/partitioned_dask.py --n 100000 --partitions 8
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _results import write_section

OPTIONS = ["--method", "npe", "--storage", "compact", "--batch-size", "256", "--quiet"]


def popz(*args, env, check=True, **kwargs):
    return subprocess.run([sys.executable, "-m", "popz.cli", *map(str, args)], capture_output=True, text=True, env=env,
                          check=check, **kwargs)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()

    import pandas as pd

    from popz.posterior.fit_job import FitJob
    from popz.posterior.partitioned import fit_partitioned, list_partitions, read_partitioned

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "POPZ_JAX_CACHE": str(tmp / "jax-cache")}
        mock = tmp / "mock.parquet"
        popz("mock", "--n", args.n, "--out", mock, "--seed", 3, env=env)
        table = pd.read_parquet(mock)
        dataset = tmp / "dataset"
        dataset.mkdir()
        for k, part in enumerate(np.array_split(np.arange(len(table)), args.partitions)):
            table.iloc[part].to_parquet(dataset / f"part{k:02d}.parquet")

        start = time.perf_counter()
        popz("fit", dataset, "--out", tmp / "single", *OPTIONS, env=env)
        t_single = time.perf_counter() - start
        reference = read_partitioned(tmp / "single")
        ok_rows = len(reference) == len(table) and reference["objectId"].is_unique
        rows.append(f"| one process | {t_single:.0f} | {len(reference)} rows, ids unique: {ok_rows} | reference |")
        print(rows[-1], flush=True)

        start = time.perf_counter()
        popz("fit", dataset, "--out", tmp / "dask", "--scheduler", "local:2", *OPTIONS, env=env)
        t_dask = time.perf_counter() - start
        same = read_partitioned(tmp / "dask").equals(reference)
        rows.append(f"| 2 Dask workers (LocalCluster) | {t_dask:.0f} | {args.partitions} partitions | {'identical' if same else 'DIFFERS'} |")
        print(rows[-1], flush=True)

        # a worker killed once the first partition is written
        os.environ["POPZ_JAX_CACHE"] = env["POPZ_JAX_CACHE"]
        out = tmp / "lost-worker"
        job = FitJob(method="npe", storage="compact", batch_size=256)
        killed = []

        def kill_a_worker():
            while not list(out.glob("part-*.parquet")):
                time.sleep(0.5)
            from distributed import get_client

            client = get_client()
            workers = client.run(os.getpid)
            address, pid = next(iter(workers.items()))
            os.kill(pid, signal.SIGKILL)
            killed.append(address)

        threading.Thread(target=kill_a_worker, daemon=True).start()
        start = time.perf_counter()
        fit_partitioned(dataset, out, job, scheduler="local:2")
        t_lost = time.perf_counter() - start
        same = read_partitioned(out).equals(reference)
        rows.append(f"| 2 workers, one SIGKILLed after the first partition ({'killed' if killed else 'NOT killed'}) | {t_lost:.0f} | "
                    f"completed | {'identical' if same else 'DIFFERS'} |")  # fmt: skip
        print(rows[-1], flush=True)

        # the whole run killed, then rerun
        out = tmp / "killed-run"
        command = [sys.executable, "-m", "popz.cli", "fit", str(dataset), "--out", str(out), "--scheduler", "local:2", *OPTIONS]
        process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len(list(out.glob("part-*.parquet"))) < max(1, args.partitions // 3) and process.poll() is None:
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        finished = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
        start = time.perf_counter()
        popz("fit", dataset, "--out", out, "--scheduler", "local:2", *OPTIONS, env=env)
        t_rerun = time.perf_counter() - start
        untouched = all(p.stat().st_mtime_ns == m for p, m in finished.items())
        result = read_partitioned(out)
        same = result.equals(reference)
        n_parts = len(list_partitions(dataset))
        rows.append(f"| whole run SIGKILLed with {len(finished)} of {n_parts} partitions done, then rerun | {t_rerun:.0f} (rerun) | "
                    f"finished partitions untouched: {untouched}; {len(result)} rows, ids unique: {result['objectId'].is_unique} | "
                    f"{'identical' if same else 'DIFFERS'} |")  # fmt: skip
        print(rows[-1], flush=True)

        import lsdb

        catalog = tmp / "hats"
        lsdb.from_dataframe(table, ra_column="coord_ra", dec_column="coord_dec", partition_rows=-(-len(table) // args.partitions),
                            margin_threshold=None).write_catalog(catalog, catalog_name="mock", progress_bar=False)  # fmt: skip
        n_pixels = len(list_partitions(catalog))
        start = time.perf_counter()
        popz("fit", catalog, "--out", tmp / "hats-fit", "--scheduler", "local:2", *OPTIONS, env=env)
        t_hats = time.perf_counter() - start
        result = read_partitioned(tmp / "hats-fit").sort_values("objectId", ignore_index=True)
        expected = reference.sort_values("objectId", ignore_index=True)
        same_ids = result["objectId"].equals(expected["objectId"])
        exact = [c for c in expected.columns if np.array_equal(result[c].to_numpy(), expected[c].to_numpy(), equal_nan=True)]
        differ = {c: float(np.nanmax(np.abs(result[c].to_numpy() - expected[c].to_numpy())))
                  for c in expected.columns if c not in exact}  # fmt: skip
        rows.append(f"| HATS catalog ({n_pixels} HEALPix pixels) through LSDB map_partitions, 2 workers | {t_hats:.0f} | "
                    f"{len(result)} rows, same objectIds: {same_ids}; {len(exact)} of {len(expected.columns)} columns identical | "
                    + ("identical (sorted by objectId)" if not differ else "differs in " + ", ".join(f"{c} (max {d:.1e})" for c, d in differ.items()))
                    + " |")  # fmt: skip
        print(rows[-1], flush=True)

    body = [
        f"{args.n}-galaxy mock (`popz mock --seed 3`) in {args.partitions} Parquet files; `popz fit DATASET --out DIR "
        f"{' '.join(OPTIONS)}`. Each result is compared with the one-process run exactly (every column).",
        "",
        "| run | seconds | what | result |",
        "|---|---:|---|---|",
        *rows,
    ]
    write_section("Partitioned fits on Dask (partitioned_dask.py)", "\n".join(body))


if __name__ == "__main__":
    main()
