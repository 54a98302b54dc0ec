"""Where the posterior flow is calibrated and where its input-density flag fires, for one or more flows.

Per flow: the mean ln q(theta_true | data) in theta's units (a fit measure that
compares flows whatever their map theta -> u), coverage of the 68% and 95% central intervals of redshift and log
stellar mass on 2,000 galaxies drawn from the flow's own training distribution
(``simulate_batch`` with the settings in its manifest, a fresh pool and seed),
with the simulation-based-calibration rank histograms of both (the first flow's in
``npe_sbc_ranks_training.png``; chi^2 p-values of 20 bins for every flow),
and the out-of-distribution rate (input density below the flow's threshold, or
outside its training cut) on those, on ``make_mock`` mocks as in
npe_calibration.py, and on all 20,449 cosmoDC2 validation galaxies.

These are the held-out mocks of the issue's calibration test: drawn from the
model the flow approximates (population prior, photometric emulator, the noise
model with its emulator-error noise and zero-point jitter, random depths and
masks), never seen in training. ``make_mock``'s mocks leave out the
emulator-error noise and the jitter, so any posterior that allows for them,
MCMC's included, covers more than nominal there (npe_calibration.py).

    python benchmarks/npe_diagnostics.py --posterior lsst-default OTHER_FOLDER
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _results import write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posterior", nargs="+", default=["lsst-default"])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    from mock_realism import dc2_validation
    from npe_calibration import coverage
    from popz.config import load_model
    from popz.data_model.extinction import make_extinction_table
    from popz.data_model.mock import MockSettings, make_mock
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior, posterior_folder
    from popz.infer.amortized_train import NPETrainSettings, build_pool, lsst_depths, simulate_batch
    from popz.io.catalog import observations_from_table, read_table, to_rubin_columns
    from popz.population import make_population_prior
    from popz.sps.filters import load_bands

    config = load_model("lsst-default")
    emulator, prior = load("lsst-default", kind="photometry", config=config), make_population_prior(config)
    ext = make_extinction_table(load_bands(config.bands))
    labels = list("ugrizy")
    dc2 = observations_from_table(to_rubin_columns(read_table(dc2_validation()["path"]), labels, assume_dereddened=True), labels).observations
    mock = make_mock(config, MockSettings(n=args.n, seed=31, chunk_size=20_000, error_floor=0.02), emulator=emulator, prior=prior)
    mock_obs = observations_from_table(mock.table, labels).observations
    iz, im = config.parameter_names.index("redshift"), config.parameter_names.index("log_stellar_mass")
    rows, first_ranks = [], None
    for name in args.posterior:
        flow = load_posterior(name, config=config)
        manifest = json.loads((posterior_folder(name) / "manifest.json").read_text())
        s = NPETrainSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["training"]["settings"].items()})
        pool = build_pool(jax.random.key(901), prior, emulator, 3 * args.n, flow.cut_band, s.cut_mag + s.pre_cut_margin, chunk=30_000, log=lambda m: None)
        theta, obs, selected = simulate_batch(jax.random.key(902), pool, jnp.arange(3 * args.n), ext, lsst_depths(labels), s, flow.cut_band)
        keep = np.flatnonzero(np.asarray(selected))[: args.n]
        obs, theta = jax.tree.map(lambda a: a[keep], obs), np.asarray(theta)[keep]
        draws = np.asarray(jax.jit(jax.vmap(lambda k, o: flow.sample_and_log_prob(k, o, 200)[0]))(jax.random.split(jax.random.key(903), keep.size), obs))
        density = jax.jit(jax.vmap(flow.input_log_density))
        inside = jax.jit(jax.vmap(flow.in_training_cut))

        def ood(o):
            return float(np.mean((np.asarray(density(o)) < float(flow.ood_threshold)) | ~np.asarray(inside(o))))

        (z68, z95), (m68, m95) = coverage(draws[:, :, iz], theta[:, iz]), coverage(draws[:, :, im], theta[:, im])
        ranks = {q: np.mean(draws[:, :, i] < theta[:, i, None], axis=1) for q, i in (("z", iz), ("log M", im))}
        p_rank = {q: stats.chisquare(np.histogram(r, bins=20, range=(0, 1))[0]).pvalue for q, r in ranks.items()}
        first_ranks = first_ranks or (name, ranks)
        # the fit itself, comparable between flows whatever their map theta -> u: mean ln q(theta_true | data)
        log_q = float(np.mean(np.asarray(jax.jit(jax.vmap(flow.log_prob))(jnp.asarray(theta), obs))))
        rows.append(f"| `{name}` ({manifest['weights_sha256'][:8]}) | {manifest['training']['history'][-1]['heldout'][0]:.2f} | {log_q:.2f} | "
                    f"{z68:.3f} | {z95:.3f} | {m68:.3f} | {m95:.3f} | {p_rank['z']:.3g} | {p_rank['log M']:.3g} | {ood(obs):.3f} | {ood(mock_obs):.3f} | {ood(dc2):.3f} |")  # fmt: skip
        print(rows[-1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    expected = keep.size / 20
    for ax, (q, r) in zip(axes, first_ranks[1].items()):
        ax.bar(np.arange(20) / 20, np.histogram(r, bins=20, range=(0, 1))[0], width=1 / 20, align="edge", color="C0")
        ax.axhspan(expected - 2 * np.sqrt(expected), expected + 2 * np.sqrt(expected), color="0.8", zorder=0)
        ax.set_title(f"npe: rank of true {q}, {keep.size} held-out mocks")
        ax.set_xlabel("rank")
    axes[0].set_ylabel("galaxies")
    fig.tight_layout()
    png = Path(__file__).parent / "npe_sbc_ranks_training.png"
    fig.savefig(png, dpi=80)
    body = [
        f"{keep.size} galaxies from each flow's own training distribution (fresh pool and noise, seeds 901-903), 200 draws each; "
        f"{len(mock.table)} `make_mock` mocks as in npe_calibration.py (seed 31); all {len(dc2.flux_nJy)} cosmoDC2 validation galaxies.",
        "",
        "| flow | held-out loss, -ln q(u) (its manifest) | mean ln q(theta_true) | z 68% | z 95% | log M 68% | log M 95% | z rank chi2 p | log M rank chi2 p | OOD rate, training distribution | OOD rate, make_mock | OOD rate, cosmoDC2 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Rank histograms of `{first_ranks[0]}` on its training distribution (grey: expected +/- 2 sigma):",
        "",
        f"![npe SBC ranks, training distribution]({png.name})",
    ]
    write_section("Amortized posterior: calibration on its training distribution, OOD rates (npe_diagnostics.py)", "\n".join(body))


if __name__ == "__main__":
    main()
