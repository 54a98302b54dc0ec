"""Photo-z of popz's three paths on the cosmoDC2 validation set, in one run: npe and npe+is on all of it, MCMC on a subset.

npe and npe+is fit all 20,449 galaxies of ``test_dc2_validation_9816``
(pz-rail-base) through ``fit_catalog`` with compact storage (what ``popz fit
--method npe --storage compact`` runs); MCMC fits the random subset that
``photoz_dc2.py --n N --seed S`` and ``peer_bpz.py`` use, and npe/npe+is are
scored on that subset too. No redshift labels are used. Metrics of the PDF
medians as in ``photoz_dc2.py``, the out-of-distribution flag rate, and the
throughput (after a warm-up chunk, so compilation is excluded).

    python benchmarks/photoz_dc2_paths.py --mcmc-n 1000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _results import write_section


def score(z, summary, cdf_at_truth) -> dict:
    from scipy import stats

    dz = (summary["z_median"].to_numpy() - z) / (1 + z)
    lo, hi = summary["z_q16"].to_numpy(), summary["z_q84"].to_numpy()
    return {
        "sigma_nmad": float(1.4826 * np.median(np.abs(dz - np.median(dz)))),
        "outliers": float(np.mean(np.abs(dz) > 0.15)),
        "bias": float(np.median(dz)),
        "coverage68": float(np.mean((z >= lo) & (z <= hi))),
        "pit_ks": float(stats.kstest(cdf_at_truth, "uniform").statistic),
        "ood": float(np.mean(summary["flags"].to_numpy() & 64 > 0)),
        "flagged": float(np.mean(summary["flags"].to_numpy() > 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mcmc-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--error-floor", type=float, default=0.02)
    parser.add_argument("--posterior", default="lsst-default")
    parser.add_argument("--limit", type=int, default=0, help="fit only the first N rows with npe (0: all)")
    args = parser.parse_args()

    import pandas as pd
    import qp

    from mock_realism import dc2_validation
    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.infer.amortized_fit import NPESettings, npe_batch
    from popz.infer.fit import FitSettings
    from popz.io.catalog import read_table, to_rubin_columns
    from popz.population import make_population_prior
    from popz.posterior.catalog_fit import fit_catalog, output_paths
    from popz.sps.filters import load_bands

    path = dc2_validation()["path"]
    table = read_table(path)
    subset = np.sort(np.random.default_rng(args.seed).choice(len(table), args.mcmc_n, replace=False))
    if args.limit:
        table = table.iloc[: args.limit]
        subset = subset[subset < args.limit]
    rubin = to_rubin_columns(table, list("ugrizy"), assume_dereddened=True)
    z = table["redshift"].to_numpy(np.float64)
    config = load_model("lsst-default")
    prior = make_population_prior(config)
    emulator = load("lsst-default")
    flow = load_posterior(args.posterior, config=config)
    common = dict(emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=default_data_model(0, 6, error_floor=args.error_floor),
                  extinction=make_extinction_table(load_bands(config.bands)))  # fmt: skip

    rows, sub_rows, speeds = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("npe", "npe+is"):
            settings = NPESettings(importance=method == "npe+is", seed=args.seed)

            def fitter(obs, object_id, settings=settings):
                return npe_batch(obs, flow=flow, settings=settings, object_id=object_id, **common)

            warm = Path(tmp) / f"warm-{method}.parquet"
            fit_catalog(rubin.iloc[:4096], config, tuple("ugrizy"), warm, emulator_id="dc2", settings=settings, fitter=fitter,
                        storage="compact", chunk_size=4096, **common)  # fmt: skip
            out = Path(tmp) / f"{method}.parquet"
            start = time.perf_counter()
            fit_catalog(rubin, config, tuple("ugrizy"), out, emulator_id="dc2", settings=settings, fitter=fitter,
                        storage="compact", chunk_size=4096, **common)  # fmt: skip
            seconds = time.perf_counter() - start
            speeds[method] = len(z) / seconds
            summary = pd.read_parquet(out)
            ens = qp.read(str(output_paths(out)[1]))
            locs = ens.objdata["locs"]
            levels = np.ravel(ens.metadata["quants"])  # qp adds the 0 and 1 quantiles to ours
            cdf = np.array([np.interp(t, q, levels) for q, t in zip(locs, z)])
            bytes_per = sum(p.stat().st_size for p in output_paths(out)) / len(z)
            m = score(z, summary, cdf)
            rows.append((method, len(z), m, speeds[method], bytes_per))
            sub_rows.append((method, len(subset), score(z[subset], summary.iloc[subset], cdf[subset]), None, None))
            print(method, m, f"{speeds[method]:.0f} gal/s", f"{bytes_per:.0f} B/object")

        sub = rubin.iloc[subset].reset_index(drop=True)
        out = Path(tmp) / "mcmc.parquet"
        start = time.perf_counter()
        fit_catalog(sub, config, tuple("ugrizy"), out, emulator_id="dc2", settings=FitSettings(seed=args.seed), chunk_size=256, **common)
        seconds = time.perf_counter() - start
        summary = pd.read_parquet(out)
        ens = qp.read(str(output_paths(out)[1]))
        grid, pdf = np.ravel(ens.metadata["xvals"]), ens.objdata["yvals"]
        c = np.cumsum(pdf, axis=1)
        c /= c[:, -1:]
        cdf = np.array([np.interp(t, grid, ci) for t, ci in zip(z[subset], c)])
        sub_rows.append(("mcmc", len(subset), score(z[subset], summary, cdf), len(subset) / seconds, None))
        print("mcmc", sub_rows[-1][2])

    def line(method, n, m, speed, nbytes):
        return (f"| {method} | {n} | {m['sigma_nmad']:.4f} | {m['outliers']:.3f} | {m['bias']:+.4f} | {m['pit_ks']:.3f} | "
                f"{m['coverage68']:.3f} | {m['ood']:.3f} | {m['flagged']:.2f} | {'' if speed is None else f'{speed:.0f}'} | "
                f"{'' if nbytes is None else f'{nbytes:.0f}'} |")  # fmt: skip

    head = ["| path | galaxies | sigma_NMAD | outliers | bias | PIT K-S | 68% coverage | OOD flagged | any flag | galaxies/s | bytes/object |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    body = [
        f"`{Path(path).name}`, E(B-V) = 0, error floor {args.error_floor}, posterior flow `{args.posterior}`, compact storage "
        "for npe (33 p(z) quantiles, 4 draws); MCMC 32 walkers x (1000 + 1000) steps. PDF median as point estimate. "
        "Peers on the subset: the `peer_bpz.py` section (same rows, same machine).",
        "",
        "All galaxies:",
        "",
        *head,
        *(line(*r) for r in rows),
        "",
        f"The random subset of {len(subset)} (seed {args.seed}) that MCMC and the peers fit:",
        "",
        *head,
        *(line(*r) for r in sub_rows),
    ]
    write_section("Photo-z on cosmoDC2, popz npe / npe+is / MCMC (photoz_dc2_paths.py)", "\n".join(body))


if __name__ == "__main__":
    main()
