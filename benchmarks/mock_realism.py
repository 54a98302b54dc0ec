"""Mock LSST catalog vs cosmoDC2 (the RAIL test set), and mock throughput.

Draws an i < 25.3 mock from lsst-default's population prior (default
hyperparameters, shipped photometric emulator, photerr 10-year noise, no
zero-point offsets, E(B-V) = 0 to match DC2's dereddened magnitudes) and
compares it with pz-rail-base's ``test_dc2_validation_9816`` (cosmoDC2,
i < 25.3): Kolmogorov-Smirnov distances of the redshift, i-band magnitude and
colour distributions, the median redshifts, and a PNG. The throughput is
selected galaxies per second of ``make_mock`` after compilation (a first
small mock compiles everything).

    python benchmarks/mock_realism.py --n 100000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _results import write_section

HERE = Path(__file__).parent


def dc2_validation() -> dict:
    """cosmoDC2 validation set from the installed pz-rail-base: redshift and ugrizy magnitudes (99 = undetected).

    ``POPZ_DC2_VALIDATION`` names the file instead, where pz-rail-base is not installed (a GPU machine).
    """
    import os

    import h5py

    if os.environ.get("POPZ_DC2_VALIDATION"):
        path = Path(os.environ["POPZ_DC2_VALIDATION"])
    else:
        import rail

        path = Path(list(rail.__path__)[0]) / "examples_data" / "testdata" / "test_dc2_validation_9816.hdf5"
    with h5py.File(path) as f:
        g = f["photometry"]
        return {"redshift": g["redshift"][:], **{b: g[f"mag_{b}_lsst"][:] for b in "ugrizy"}, "path": str(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    from popz.config import load_model
    from popz.data_model.mock import MockSettings, make_mock
    from popz.sps.photometry import AB_MAG_OF_ONE_NJY

    from popz.emulate.files import load
    from popz.population import make_population_prior

    config = load_model("lsst-default")
    objects = dict(emulator=load("lsst-default", kind="photometry"), prior=make_population_prior(config))
    make_mock(config, MockSettings(n=100, seed=args.seed + 1, ebv_range=(0.0, 0.0)), **objects)  # compile
    start = time.perf_counter()
    mock = make_mock(config, MockSettings(n=args.n, seed=args.seed, ebv_range=(0.0, 0.0)), **objects)
    seconds = time.perf_counter() - start
    rate = args.n / seconds
    t = mock.table
    mag = {b: np.where(t[f"{b}_cModelFlux"] > 0, AB_MAG_OF_ONE_NJY - 2.5 * np.log10(np.clip(t[f"{b}_cModelFlux"], 1e-30, None)), np.nan) for b in "ugrizy"}
    dc2 = dc2_validation()
    rows = []
    quantities = {"redshift": (t["true_redshift"].to_numpy(), dc2["redshift"]), "i": (mag["i"], dc2["i"])}
    for a, b in zip("ugriz", "grizy"):
        quantities[f"{a}-{b}"] = (mag[a] - mag[b], dc2[a] - dc2[b])
    for name, (x, y) in quantities.items():
        x = x[np.isfinite(x) & (np.abs(x) < 50)]
        y = y[np.isfinite(y) & (np.abs(y) < 50)]
        ks = stats.ks_2samp(x, y)
        rows.append((name, ks.statistic, np.median(x), np.median(y), len(x), len(y)))
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    for ax, (name, (x, y)) in zip(axes.ravel(), quantities.items()):
        x = x[np.isfinite(x) & (np.abs(x) < 50)]
        y = y[np.isfinite(y) & (np.abs(y) < 50)]
        lo, hi = np.percentile(np.concatenate([x, y]), [0.5, 99.5])
        bins = np.linspace(lo, hi, 60)
        ax.hist(x, bins, density=True, histtype="step", label="popz mock", color="C0")
        ax.hist(y, bins, density=True, histtype="step", label="cosmoDC2", color="C3")
        ax.set_xlabel(name)
    axes[0, 0].legend()
    fig.suptitle(f"popz mock (lsst-default population prior, {args.n} galaxies, i < 25.3) vs cosmoDC2 validation (RAIL)")
    fig.tight_layout()
    png = HERE / "mock_vs_dc2.png"
    fig.savefig(png, dpi=80)
    z_mock, z_dc2 = rows[0][2], rows[0][3]
    print(f"{args.n} galaxies in {seconds:.1f} s: {rate:,.0f} galaxies/s ({mock.metadata['n_drawn']} prior draws)")
    for r in rows:
        print(r)
    body = [
        f"Mock: `make_mock`, seed {args.seed}, {args.n} galaxies, E(B-V) = 0, no zero-point offsets; "
        f"cosmoDC2: `{Path(dc2['path']).name}` from pz-rail-base ({len(dc2['redshift'])} galaxies, i < 25.3).",
        "",
        f"Throughput: {rate:,.0f} selected galaxies/s ({args.n} in {seconds:.1f} s, {mock.metadata['n_drawn']:,} population draws, compiled beforehand).",
        "",
        f"Median redshift: mock {z_mock:.3f}, DC2 {z_dc2:.3f} (difference {z_mock - z_dc2:+.3f}).",
        "",
        "| quantity | K-S distance | median mock | median DC2 | n mock | n DC2 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    body += [f"| {n} | {d:.3f} | {a:.3f} | {b:.3f} | {na} | {nb} |" for n, d, a, b, na, nb in rows]
    body += ["", f"![mock vs DC2]({png.name})"]
    write_section("Mock catalog vs cosmoDC2 (mock_realism.py)", "\n".join(body))


if __name__ == "__main__":
    main()
