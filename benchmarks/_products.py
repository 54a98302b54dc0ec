"""Exact comparison of two ``popz fit`` outputs (summary Parquet, p(z) qp file, samples), for the benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def differences(out: Path, reference: Path) -> str:
    """'' if the three products of ``out`` equal ``reference``'s exactly (NaN equal to NaN), else what differs first."""
    import h5py
    import pandas as pd

    from popz.posterior.catalog_fit import output_paths

    a, b = pd.read_parquet(out), pd.read_parquet(reference)
    if not a.equals(b):
        numeric = [c for c in a.columns if c in b.columns and a[c].dtype.kind == "f" and len(a) == len(b)]
        worst = max((float(np.nanmax(np.abs(a[c].to_numpy() - b[c].to_numpy()))) for c in numeric), default=float("nan"))
        return f"summary table differs (max |diff| {worst:.2e})"
    for mine, theirs in zip(output_paths(out)[1:], output_paths(reference)[1:]):
        with h5py.File(mine) as f, h5py.File(theirs) as g:
            keys = ["samples", "objectId"] if "samples" in g else [f"data/{k}" for k in g["data"]] + [f"ancil/{k}" for k in g["ancil"]]
            for key in keys:
                x, y = f[key][:], g[key][:]
                if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                    return f"{mine.name}:{key} differs"
    return ""
