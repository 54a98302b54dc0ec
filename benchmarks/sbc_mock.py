"""Simulation-based calibration of popz fit (MCMC) on mock galaxies drawn from the same prior and data model.

Draws ``--n`` i < 25.3 galaxies with ``make_mock`` (population prior at its
defaults, photometry from the SPS simulator itself unless ``--emulated``,
photerr 10-year noise, error floor 0), fits them with the same prior and data
model through the emulator (whose error model enters the likelihood), and reports the coverage of
the 68% and 95% central redshift intervals and the rank histogram of the true
redshift among the posterior samples (PNG).

    python benchmarks/sbc_mock.py --n 500

On a machine without bagpipes (a lent GPU), make the mock here with
``--save-mock FILE`` (it stops there) and fit it there with ``--mock FILE``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _results import write_section

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--n-burn", type=int, default=1000)
    parser.add_argument("--n-steps", type=int, default=1000)
    parser.add_argument("--n-walkers", type=int, default=32)
    parser.add_argument("--emulated", action="store_true", help="mock photometry from the emulator, not the simulator")
    parser.add_argument("--mock", type=Path, help="fit this mock (Parquet from --save-mock) instead of making one")
    parser.add_argument("--save-mock", type=Path, help="make the mock, write it to this Parquet file and stop")
    parser.add_argument("--p-de", type=float, default=None, help="share of differential-evolution steps (default: popz's)")
    parser.add_argument("--p-jump", type=float, default=None, help="share of mode-jump steps (default: popz's)")
    parser.add_argument("--chunk", type=int, default=250, help="galaxies per fit_batch call")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.data_model.mock import MockSettings, make_mock, read_mock_metadata, write_mock
    from popz.emulate.files import load
    from popz.infer.fit import FitSettings, fit_batch
    from popz.io.catalog import observations_from_table
    from popz.population import make_population_prior
    from popz.sps.filters import load_bands

    import pandas as pd

    config = load_model("lsst-default")
    emulator, prior = load("lsst-default"), make_population_prior(config)
    if args.mock:
        table = pd.read_parquet(args.mock).iloc[: args.n]
        meta = read_mock_metadata(args.mock)
        photometry, mock_seed = meta["photometry"], meta["seed"]
    else:
        mock = make_mock(config, MockSettings(n=args.n, seed=args.seed, chunk_size=5000), emulator=emulator, prior=prior,
                         simulator=not args.emulated)  # fmt: skip
        table, photometry, mock_seed = mock.table, mock.metadata["photometry"], args.seed
        if args.save_mock:
            write_mock(mock, args.save_mock, command="python benchmarks/sbc_mock.py " + " ".join(sys.argv[1:]))
            print(f"wrote {len(table)} mock galaxies ({photometry} photometry) to {args.save_mock}")
            return
    args.n = len(table)
    data = observations_from_table(table, list("ugrizy"))
    moves = {k: v for k, v in (("p_de", args.p_de), ("p_jump", args.p_jump)) if v is not None}
    settings = FitSettings(n_walkers=args.n_walkers, n_burn=args.n_burn, n_steps=args.n_steps, seed=args.seed)
    settings = settings._replace(moves=settings.moves._replace(**moves))
    extinction = make_extinction_table(load_bands(config.bands))
    start = time.perf_counter()
    samples, flags, ess, rhat = [], [], [], []
    chunk = args.chunk
    for k in range(0, args.n, chunk):
        obs = type(data.observations)(*(a[k : k + chunk] for a in data.observations))
        r = fit_batch(obs, emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=default_data_model(0, 6),
                      extinction=extinction, settings=settings, batch_index=k // chunk)  # fmt: skip
        samples.append(r.samples[:, :, 0])
        flags.append(r.flags)
        ess.append(r.ess)
        rhat.append(r.rhat[:, 0])
    seconds = time.perf_counter() - start
    z = np.concatenate(samples)
    flags, ess, rhat = np.concatenate(flags), np.concatenate(ess), np.concatenate(rhat)
    truth = table["true_redshift"].to_numpy()
    q = np.percentile(z, [2.5, 16, 84, 97.5], axis=1)
    cov68 = float(np.mean((truth >= q[1]) & (truth <= q[2])))
    cov95 = float(np.mean((truth >= q[0]) & (truth <= q[3])))
    ranks = np.mean(z < truth[:, None], axis=1)
    n_bins = 20
    counts, _ = np.histogram(ranks, bins=n_bins, range=(0, 1))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(np.arange(n_bins) / n_bins, counts, width=1 / n_bins, align="edge", color="C0")
    expected = args.n / n_bins
    ax.axhspan(expected - 2 * np.sqrt(expected), expected + 2 * np.sqrt(expected), color="0.8", zorder=0)
    ax.set_xlabel("rank of the true redshift among posterior samples")
    ax.set_ylabel("galaxies")
    ax.set_title(f"SBC, {args.n} mock galaxies (i < 25.3)")
    fig.tight_layout()
    # another walker count, move mixture or machine keeps its own section and plot
    import jax

    variant = [f"{args.n_walkers} walkers"] if args.n_walkers != 32 else []
    variant += [f"{k} {v}" for k, v in moves.items()]
    if jax.default_backend() != "cpu":
        variant.append(jax.default_backend())
    tag = "".join("_" + v.replace(" ", "") for v in variant)
    png = HERE / f"sbc_redshift_ranks{tag}.png"
    fig.savefig(png, dpi=80)
    from scipy import stats

    chi2 = stats.chisquare(counts)
    dz = (np.median(z, axis=1) - truth) / (1 + truth)
    print(f"coverage 68 {cov68:.3f} 95 {cov95:.3f}; rank chi2 p {chi2.pvalue:.3g}; {args.n / seconds:.2f} galaxies/s")
    body = [
        f"{args.n} mock galaxies (`make_mock`, seed {mock_seed}, i < 25.3, photometry from the "
        f"{'SPS simulator' if photometry == 'simulator' else 'emulator'}), fitted with the same population prior and data model "
        f"through the emulator; {settings.n_walkers} walkers x ({settings.n_burn} burn + {settings.n_steps}) steps; "
        f"moves {dict(settings.moves._asdict())}.",
        "",
        "| 68% coverage | 95% coverage | rank chi2 p-value (20 bins) | sigma_NMAD | outliers | galaxies/s | flagged not converged | median ESS | median split R-hat (z) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {cov68:.3f} | {cov95:.3f} | {chi2.pvalue:.3g} | {1.4826 * np.median(np.abs(dz - np.median(dz))):.4f} | "
        f"{np.mean(np.abs(dz) > 0.15):.3f} | {args.n / seconds:.2f} | {np.mean(flags & 16 > 0):.2f} | {np.median(ess):.0f} | {np.median(rhat):.2f} |",
        "",
        f"![SBC ranks]({png.name})",
    ]
    title = "Simulation-based calibration of popz fit on mocks (sbc_mock.py" + "".join(", " + v for v in variant) + ")"
    write_section(title, "\n".join(body))


if __name__ == "__main__":
    main()
