"""Where the amortized posterior and MCMC disagree: the metric's own floor, and the flow's widths.

Issue 6 asks for median |z_median(npe) - z_median(mcmc)| / sigma_z(mcmc) <= 0.1
on 300 mock galaxies. This measures, on the first 300 of npe_calibration.py's
mocks (same seed):

- the floor of that metric: MCMC against MCMC with another seed;
- npe with 200 and with 2,000 draws (its own Monte Carlo share), npe+is
  with 1,000 and with 4,000 proposals;
- MCMC with an error floor of 0.0222 = sqrt(0.02^2 + 0.0092^2), the noise the
  flow was trained with (2% floor and a 1% zero-point jitter, 0.92% in flux);
- the ratio of each method's z width (half the 16-84% range) to MCMC's, in
  bins of MCMC's sigma_z / (1 + z).

    python benchmarks/npe_agreement.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _results import write_section


def agreement(a: np.ndarray, ref: np.ndarray) -> float:
    """Median over galaxies of |median(a) - median(ref)| / sigma(ref); a, ref: (G, S) redshift draws."""
    return float(np.median(np.abs(np.median(a, axis=1) - np.median(ref, axis=1)) / _sigma(ref)))


def _sigma(z: np.ndarray) -> np.ndarray:
    return (np.percentile(z, 84, axis=1) - np.percentile(z, 16, axis=1)) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--posterior", default="lsst-default")
    args = parser.parse_args()

    import jax

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
    # the mocks of npe_calibration.py (2,000 made, so that the first 300 are the same galaxies)
    mock = make_mock(config, MockSettings(n=2000, seed=args.seed, chunk_size=20_000, error_floor=0.02), emulator=emulator, prior=prior)
    obs = jax.tree.map(lambda a: a[: args.n], observations_from_table(mock.table, list("ugrizy")).observations)
    extinction = make_extinction_table(load_bands(config.bands))

    def common(floor: float) -> dict:
        return dict(emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=default_data_model(0, 6, error_floor=floor), extinction=extinction)

    z, seconds, ess = {}, {}, {}
    runs = [
        ("npe, 200 draws", NPESettings(n_draws=200, seed=args.seed)),
        ("npe, 2,000 draws", NPESettings(n_draws=2000, seed=args.seed)),
        ("npe+is, 1,000 proposals", NPESettings(n_draws=200, importance=True, seed=args.seed)),
        ("npe+is, 4,000 proposals", NPESettings(n_draws=200, importance=True, n_proposals=4000, seed=args.seed)),
    ]
    for name, settings in runs:
        start = time.perf_counter()
        result = npe_batch(obs, flow=flow, settings=settings, batch_index=0, **common(0.02))
        z[name], seconds[name], ess[name] = np.asarray(result.samples[:, :, 0]), time.perf_counter() - start, float(np.median(result.ess))
        print(name, f"{seconds[name]:.1f} s", flush=True)
    mcmc = [("MCMC, seed 31", 0.02, args.seed), ("MCMC, seed 32", 0.02, args.seed + 1), ("MCMC, floor 0.0222", 0.0222, args.seed)]
    for name, floor, seed in mcmc:
        start = time.perf_counter()
        z[name] = np.asarray(fit_batch(obs, settings=FitSettings(seed=seed), **common(floor)).samples[:, :, 0])
        seconds[name] = time.perf_counter() - start
        print(name, f"{seconds[name]:.1f} s", flush=True)

    ref = z["MCMC, seed 31"]
    rel = _sigma(ref) / (1 + np.median(ref, axis=1))
    bins = [(0.0, 0.02), (0.02, 0.05), (0.05, 0.1), (0.1, np.inf)]
    counts = [int(np.sum((rel >= lo) & (rel < hi))) for lo, hi in bins]
    refs = ["MCMC, seed 31", "MCMC, seed 32", "MCMC, floor 0.0222"]
    body = [
        f"The first {args.n} mocks of npe_calibration.py (`make_mock`, seed {args.seed}, 2% unreported floor), flow `{args.posterior}`. "
        "MCMC: 32 walkers x (1000 + 1000) steps, 3,200 thinned samples. Agreement: median over galaxies of "
        "|z_median - z_median(ref)| / sigma_z(ref), sigma_z half the 16-84% range. Width ratio: median of sigma_z / sigma_z(MCMC, seed 31), "
        f"in bins of MCMC's sigma_z / (1 + z) ({', '.join(f'[{lo}, {hi}): {c}' for (lo, hi), c in zip(bins, counts))} galaxies).",
        "",
        "| method | " + " | ".join(f"agreement with {r}" for r in refs) + " | median signed offset / sigma | width ratio, all | "
        + " | ".join(f"width ratio, [{lo}, {hi})" for lo, hi in bins) + " | median ESS |",
        "|---|" + "---:|" * (len(refs) + 3 + len(bins)),
    ]
    for name in z:
        signed = float(np.median((np.median(z[name], axis=1) - np.median(ref, axis=1)) / _sigma(ref)))
        ratio = _sigma(z[name]) / _sigma(ref)
        by_bin = [float(np.median(ratio[(rel >= lo) & (rel < hi)])) for lo, hi in bins]
        cells = ["-" if name == r else f"{agreement(z[name], z[r]):.3f}" for r in refs]
        body.append(
            f"| {name} | " + " | ".join(cells) + f" | {signed:+.3f} | {np.median(ratio):.3f} | " + " | ".join(f"{b:.3f}" for b in by_bin)
            + f" | {ess.get(name, float('nan')):.0f} |"
        )
    print("\n".join(body))
    write_section("Amortized posterior against MCMC: the metric's floor and the flow's widths (npe_agreement.py)", "\n".join(body))


if __name__ == "__main__":
    main()
