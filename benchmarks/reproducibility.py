"""Bitwise reproducibility of popz fit: the same inputs, seed and batch size give the same bytes whatever the chunk size,
the number of CPU cores XLA may use, or the number of Dask workers.

Fits the first N rows of the cosmoDC2 validation set (amortized path, npe and npe+is) with several chunk sizes
in this process, then the npe+is fit again in a child process restricted to one core, and (``--dask``) as a
4-partition dataset on a 2-worker Dask LocalCluster; every summary column, p(z) array and sample is compared
exactly with the first fit.

    python benchmarks/reproducibility.py --n 2000 --dask
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _products import differences
from _results import write_section

CHILD = """
import os, sys
os.sched_setaffinity(0, {0})
sys.path.insert(0, {bench!r})
from reproducibility import fit
fit({catalog!r}, {out!r}, {method!r}, {chunk}, {batch})
"""


def job(method: str, chunk: int, batch: int):
    from popz.posterior.fit_job import FitJob

    return FitJob(method=method, storage="full", n_draws=50, error_floor=0.02, assume_dereddened=True, chunk_size=chunk, batch_size=batch)


def fit(catalog: str, out: str, method: str, chunk: int, batch: int) -> None:
    import pandas as pd

    from popz.posterior.fit_job import fit_table

    fit_table(job(method, chunk, batch), pd.read_parquet(catalog), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dask", action="store_true", help="also a 4-partition run on a 2-worker LocalCluster")
    args = parser.parse_args()

    import jax
    import pandas as pd

    from popz.io.catalog import read_table
    from popz.posterior.partitioned import fit_partitioned, read_partitioned

    sys.path.insert(0, str(Path(__file__).parent))
    from mock_realism import dc2_validation

    table = read_table(dc2_validation()["path"]).iloc[: args.n].reset_index(drop=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        catalog = tmp / "dc2.parquet"
        table.to_parquet(catalog)
        for method in ("npe", "npe+is"):
            reference = tmp / f"{method}-ref.parquet"
            fit(str(catalog), str(reference), method, args.n, args.batch)
            for chunk in sorted({args.n // 3 + 1, 100, 37}):
                out = tmp / f"{method}-{chunk}.parquet"
                fit(str(catalog), str(out), method, chunk, args.batch)
                rows.append(f"| {method} | chunk {chunk} (reference: one chunk of {args.n}) | {differences(out, reference) or 'identical'} |")
                print(rows[-1], flush=True)
        reference = tmp / "npe+is-ref.parquet"
        if jax.default_backend() == "cpu" and len(os.sched_getaffinity(0)) > 1:
            out = tmp / "one-core.parquet"
            code = CHILD.format({min(os.sched_getaffinity(0))}, bench=str(Path(__file__).parent), catalog=str(catalog),
                                out=str(out), method="npe+is", chunk=args.n, batch=args.batch)  # fmt: skip
            subprocess.run([sys.executable, "-c", code], check=True)
            rows.append(f"| npe+is | one CPU core instead of {len(os.sched_getaffinity(0))} (child process) | {differences(out, reference) or 'identical'} |")
            print(rows[-1], flush=True)
        if args.dask:
            folder = tmp / "parts"
            folder.mkdir()
            for k, part in enumerate(np.array_split(np.arange(args.n), 4)):
                table.iloc[part].to_parquet(folder / f"part{k}.parquet")
            dask_job = job("npe+is", args.n, args.batch)
            out = tmp / "dask"
            fit_partitioned(folder, out, dask_job._replace(chunk_size=args.n // 4 + 1), scheduler="local:2")
            same = read_partitioned(out).equals(pd.read_parquet(reference))
            rows.append(f"| npe+is | 4 Parquet partitions on a 2-worker Dask LocalCluster | {'identical' if same else 'summaries differ'} |")
            print(rows[-1], flush=True)
    device = jax.devices()[0]
    body = [
        f"JAX {jax.__version__} on `{device.device_kind}` ({device.platform}); the first {args.n} cosmoDC2 validation rows, "
        f"`popz fit --method npe|npe+is --n-draws 50 --batch-size {args.batch}`, seed 0. Each run is compared with the "
        "reference byte for byte: every summary column, the p(z) arrays and the samples.",
        "",
        "| method | run | result |",
        "|---|---|---|",
        *rows,
    ]
    write_section(f"Bitwise reproducibility, {device.platform} (reproducibility.py)", "\n".join(body))


if __name__ == "__main__":
    main()
