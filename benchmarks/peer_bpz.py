"""RAIL's BPZ (pz-rail-bpz, BPZ-lite, CWWSB4 templates, HDFN prior: no redshift labels) on the DC2 subset photoz_dc2.py fits.

BPZ writes into its package folder and edits its inputs, so it runs in its own
virtual environment on a private copy of the rows:

    python3 -m venv bpzenv && bpzenv/bin/pip install pz-rail-bpz
    bpzenv/bin/python benchmarks/peer_bpz.py --n 1000 --seed 0

It picks the same random rows as ``photoz_dc2.py --n N --seed S`` and scores
the PDF medians with the same metrics; the section goes to RESULTS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import h5py
    import rail
    from rail.core.data import TableHandle
    from rail.estimation.algos.bpz_lite import BPZliteEstimator, BPZliteInformer

    from _results import write_section
    from photoz_dc2 import metrics

    source = Path(list(rail.__path__)[0]) / "examples_data" / "testdata" / "test_dc2_validation_9816.hdf5"
    with h5py.File(source) as f:
        columns = {k: v[:] for k, v in f["photometry"].items()}
    n_all = len(columns["redshift"])
    rows = np.sort(np.random.default_rng(args.seed).choice(n_all, args.n, replace=False)) if args.n else np.arange(n_all)
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "subset.hdf5"
        with h5py.File(subset, "w") as f:
            for k, v in columns.items():
                f[f"photometry/{k}"] = v[rows]
        data = TableHandle("bpz_input", path=str(subset))
        data.read()
        inform = BPZliteInformer.make_stage(name="bpz_inform", hdf5_groupname="photometry", model=str(Path(tmp) / "bpz.pkl"))
        inform.inform(data)
        start = time.perf_counter()
        estimate = BPZliteEstimator.make_stage(
            name="bpz_estimate", hdf5_groupname="photometry", model=inform.get_handle("model"),
            output=str(Path(tmp) / "bpz_out.hdf5"),
        )  # fmt: skip
        ensemble = estimate.estimate(data).data
        seconds = time.perf_counter() - start
        grid = np.linspace(0.0, 3.0, 301)
        pdf = ensemble.pdf(grid)
        median = ensemble.median().ravel()
        lo, hi = (ensemble.ppf(np.array([q]))[:, 0] for q in (0.16, 0.84))
    z = columns["redshift"][rows].astype(np.float64)
    m = metrics(z, median, grid, pdf, lo, hi)
    print(m, f"{len(z) / seconds:.1f} galaxies/s")
    body = [
        f"RAIL BPZ-lite (pz-rail-bpz, CWWSB4, HDFN prior, no redshift labels) on the same {len(z)} rows as photoz_dc2.py "
        f"(seed {args.seed}); PDF median as point estimate; run in its own environment.",
        "",
        "| sigma_NMAD | outliers (>0.15) | bias | 68% coverage | PIT K-S | galaxies/s |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {m['sigma_nmad']:.4f} | {m['outliers']:.3f} | {m['bias']:+.4f} | {m['coverage68']:.3f} | {m['pit_ks']:.3f} | {len(z) / seconds:.1f} |",
    ]
    write_section(f"Photo-z on cosmoDC2, peer: RAIL BPZ (peer_bpz.py, n={len(z)})", "\n".join(body))


if __name__ == "__main__":
    main()
