"""What the compact posterior product loses against the full posterior (npe on cosmoDC2).

For ``--n`` galaxies of the cosmoDC2 validation set: a reference posterior of
4,000 flow draws per galaxy; the production run's 100 draws and the compact
product made from them (33 p(z) quantiles, summaries, 4 draws; see
``popz.posterior.compact``). Reports the K-S distance between the compact
p(z) CDF and the reference, beside the K-S distance of the 100 draws
themselves (the Monte-Carlo floor that any product of 100 draws has), and the
errors of z_q16 / z_median / z_q84 in units of the reference sigma_z.

    python benchmarks/npe_storage.py --n 2000
"""

from __future__ import annotations

import argparse

import numpy as np

from _results import write_section


def ks(cdf_fn, reference: np.ndarray) -> float:
    """sup |F(x) - ECDF_ref(x)| over the reference draws (sorted)."""
    n = reference.size
    f = cdf_fn(reference)
    return float(max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--posterior", default="lsst-default")
    args = parser.parse_args()

    import jax

    from mock_realism import dc2_validation
    from popz.config import load_model
    from popz.infer.amortized_files import load_posterior
    from popz.io.catalog import observations_from_table, read_table, to_rubin_columns
    from popz.posterior.compact import PZ_QUANTILE_LEVELS, floats_per_object, quantile_cdf, redshift_quantiles

    config = load_model("lsst-default")
    flow = load_posterior(args.posterior, config=config)
    table = read_table(dc2_validation()["path"]).iloc[: args.n]
    obs = observations_from_table(to_rubin_columns(table, list("ugrizy"), assume_dereddened=True), list("ugrizy")).observations
    draw = jax.jit(jax.vmap(lambda k, o: flow.sample_and_log_prob(k, o, 4000)[0][:, 0]))
    keys = jax.random.split(jax.random.key(1), args.n)
    reference = np.sort(np.asarray(draw(keys, obs)), axis=1)
    production = np.asarray(jax.jit(jax.vmap(lambda k, o: flow.sample_and_log_prob(k, o, 100)[0][:, 0]))(jax.random.split(jax.random.key(2), args.n), obs))
    quantiles = redshift_quantiles(production)
    ks_compact = np.array([ks(lambda x, q=q: quantile_cdf(q, x), r) for q, r in zip(quantiles, reference)])
    ks_draws = np.array([ks(lambda x, p=np.sort(p): np.searchsorted(p, x, side="right") / p.size, r) for p, r in zip(production, reference)])
    ref_q = np.percentile(reference, [16, 50, 84], axis=1)
    sigma = (ref_q[2] - ref_q[0]) / 2
    comp_q = np.array([np.interp([0.16, 0.5, 0.84], PZ_QUANTILE_LEVELS, q) for q in quantiles]).T
    err = np.abs(comp_q - ref_q) / sigma
    body = [
        f"{args.n} cosmoDC2 validation galaxies, posterior flow `{args.posterior}`. Compact product: "
        f"{floats_per_object(config.n_parameters)} floats per object (13 parameters).",
        "",
        "| quantity | median | 90th percentile |",
        "|---|---:|---:|",
        f"| K-S distance, compact p(z) vs 4,000-draw reference | {np.median(ks_compact):.3f} | {np.percentile(ks_compact, 90):.3f} |",
        f"| K-S distance, the 100 draws themselves vs reference (Monte-Carlo floor) | {np.median(ks_draws):.3f} | {np.percentile(ks_draws, 90):.3f} |",
        f"| abs error z_q16 / sigma_z | {np.median(err[0]):.3f} | {np.percentile(err[0], 90):.3f} |",
        f"| abs error z_median / sigma_z | {np.median(err[1]):.3f} | {np.percentile(err[1], 90):.3f} |",
        f"| abs error z_q84 / sigma_z | {np.median(err[2]):.3f} | {np.percentile(err[2], 90):.3f} |",
    ]
    print("\n".join(body))
    write_section("Amortized posterior: compact storage, information lost (npe_storage.py)", "\n".join(body))


if __name__ == "__main__":
    main()
