"""Calibration of the amortized posterior (npe, npe+is) on held-out mocks, and agreement with MCMC.

Mocks: ``make_mock`` (population prior at its defaults, photometric emulator,
photerr LSST 10-year noise, E(B-V) in [0, 0.1], i < 25.3) with an unreported 2%
error floor, the floor that the flow's training noise and the likelihood
assume; seed unseen in training. For ``--n`` of them: coverage of the 68% and
95% central intervals of redshift and log stellar mass and the rank
histograms (PNG), for npe and npe+is. For the first ``--n-mcmc``: the MCMC
posterior (the accurate path) and the median of |z_median(method) -
z_median(mcmc)| / sigma_z(mcmc), sigma_z = (q84 - q16) / 2.

    python benchmarks/npe_calibration.py --n 2000 --n-mcmc 300
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _results import write_section

HERE = Path(__file__).parent


def coverage(draws: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    q = np.percentile(draws, [2.5, 16, 84, 97.5], axis=1)
    return float(np.mean((truth >= q[1]) & (truth <= q[2]))), float(np.mean((truth >= q[0]) & (truth <= q[3])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--n-mcmc", type=int, default=300)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--posterior", default="lsst-default")
    args = parser.parse_args()

    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.data_model.mock import MockSettings, make_mock
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.infer.amortized_fit import NPESettings, npe_batch
    from popz.infer.fit import FitSettings, fit_batch
    from popz.io.catalog import observations_from_table
    from popz.population import make_population_prior
    from popz.sps.filters import load_bands

    config = load_model("lsst-default")
    emulator, prior = load("lsst-default"), make_population_prior(config)
    flow = load_posterior(args.posterior, config=config)
    floor = 0.02
    mock = make_mock(config, MockSettings(n=args.n, seed=args.seed, chunk_size=20_000, error_floor=floor), emulator=emulator, prior=prior)
    data = observations_from_table(mock.table, list("ugrizy"))
    common = dict(emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=default_data_model(0, 6, error_floor=floor),
                  extinction=make_extinction_table(load_bands(config.bands)))  # fmt: skip
    truth_z = mock.table["true_redshift"].to_numpy()
    truth_m = mock.table["true_log_stellar_mass"].to_numpy()
    chunk = 1000

    results, rows = {}, []
    for method in ("npe", "npe+is"):
        settings = NPESettings(n_draws=200, importance=method == "npe+is", seed=args.seed)
        start = time.perf_counter()
        parts = [
            npe_batch(jax.tree.map(lambda a: a[k : k + chunk], data.observations), flow=flow, settings=settings, batch_index=k // chunk, **common)
            for k in range(0, args.n, chunk)
        ]
        seconds = time.perf_counter() - start
        samples = np.concatenate([p.samples for p in parts])
        flags = np.concatenate([p.flags for p in parts])
        ess = np.concatenate([p.ess for p in parts])
        results[method] = samples
        cz68, cz95 = coverage(samples[:, :, 0], truth_z)
        cm68, cm95 = coverage(samples[:, :, 1], truth_m)
        ranks = np.mean(samples[:, :, 0] < truth_z[:, None], axis=1)
        counts, _ = np.histogram(ranks, bins=20, range=(0, 1))
        p_rank = stats.chisquare(counts).pvalue
        results[method + "_ranks"] = ranks
        dz = (np.median(samples[:, :, 0], axis=1) - truth_z) / (1 + truth_z)
        ood = np.mean(flags & 64 > 0)
        rows.append(
            f"| {method} | {cz68:.3f} | {cz95:.3f} | {cm68:.3f} | {cm95:.3f} | {p_rank:.3g} | "
            f"{1.4826 * np.median(np.abs(dz - np.median(dz))):.4f} | {np.mean(np.abs(dz) > 0.15):.3f} | {ood:.3f} | "
            f"{np.median(ess):.0f} | {args.n / seconds:.0f} |"
        )
        print(rows[-1])

    # MCMC on the first n_mcmc
    n_m = args.n_mcmc
    obs_m = jax.tree.map(lambda a: a[:n_m], data.observations)
    mcmc = fit_batch(obs_m, settings=FitSettings(seed=args.seed), **common)
    zm = mcmc.samples[:, :, 0]
    med_m = np.median(zm, axis=1)
    sig_m = (np.percentile(zm, 84, axis=1) - np.percentile(zm, 16, axis=1)) / 2
    agree = {m: float(np.median(np.abs(np.median(results[m][:n_m, :, 0], axis=1) - med_m) / sig_m)) for m in ("npe", "npe+is")}
    mc68, mc95 = coverage(zm, truth_z[:n_m])
    print("agreement", agree)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    expected = args.n / 20
    for ax, method in zip(axes, ("npe", "npe+is")):
        counts, _ = np.histogram(results[method + "_ranks"], bins=20, range=(0, 1))
        ax.bar(np.arange(20) / 20, counts, width=1 / 20, align="edge", color="C0")
        ax.axhspan(expected - 2 * np.sqrt(expected), expected + 2 * np.sqrt(expected), color="0.8", zorder=0)
        ax.set_title(f"{method}: rank of true z, {args.n} mocks")
        ax.set_xlabel("rank")
    axes[0].set_ylabel("galaxies")
    fig.tight_layout()
    png = HERE / "npe_sbc_ranks.png"
    fig.savefig(png, dpi=80)

    body = [
        f"{args.n} mocks (`make_mock`, seed {args.seed}, emulator photometry, photerr 10-year noise, unreported "
        f"{floor:.0%} error floor, E(B-V) 0-0.1, i < 25.3), never seen in training; 200 draws per galaxy "
        f"(npe+is: 1000 proposals resampled). Posterior flow `{args.posterior}`.",
        "",
        "| method | z 68% | z 95% | log M 68% | log M 95% | z rank chi2 p (20 bins) | sigma_NMAD | outliers | OOD flagged | median ESS | galaxies/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Agreement with MCMC (32 walkers x (1000 + 1000) steps) on the first {n_m}: median |z_median - z_median(mcmc)| / sigma_z(mcmc) "
        f"= {agree['npe']:.3f} (npe), {agree['npe+is']:.3f} (npe+is). MCMC's own z coverage there: 68% {mc68:.3f}, 95% {mc95:.3f}.",
        "",
        f"![npe SBC ranks]({png.name})",
    ]
    write_section("Amortized posterior: calibration on mocks and agreement with MCMC (npe_calibration.py)", "\n".join(body))


if __name__ == "__main__":
    main()
