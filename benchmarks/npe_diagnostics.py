"""Where the posterior flow is calibrated and where its input-density flag fires, for one or more flows.

Per flow: the mean ln q(theta_true | data) in theta's units (a fit measure that
compares flows whatever their map theta -> u), coverage of the 68% and 95% central intervals of redshift and log
stellar mass on 2,000 galaxies drawn from the flow's own training distribution
(``simulate_batch`` with the settings in its manifest, a fresh pool and seed),
and the out-of-distribution rate (input density below the flow's threshold, or
outside its training cut) on those, on ``make_mock`` mocks as in
npe_calibration.py, and on all 20,449 cosmoDC2 validation galaxies.

    python benchmarks/npe_diagnostics.py --posterior lsst-default OTHER_FOLDER
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from _results import write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posterior", nargs="+", default=["lsst-default"])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

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
    rows = []
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
        # the fit itself, comparable between flows whatever their map theta -> u: mean ln q(theta_true | data)
        log_q = float(np.mean(np.asarray(jax.jit(jax.vmap(flow.log_prob))(jnp.asarray(theta), obs))))
        rows.append(f"| `{name}` ({manifest['weights_sha256'][:8]}) | {manifest['training']['history'][-1]['heldout'][0]:.2f} | {log_q:.2f} | "
                    f"{z68:.3f} | {z95:.3f} | {m68:.3f} | {m95:.3f} | {ood(obs):.3f} | {ood(mock_obs):.3f} | {ood(dc2):.3f} |")  # fmt: skip
        print(rows[-1])
    body = [
        f"{keep.size} galaxies from each flow's own training distribution (fresh pool and noise, seeds 901-903), 200 draws each; "
        f"{len(mock.table)} `make_mock` mocks as in npe_calibration.py (seed 31); all {len(dc2.flux_nJy)} cosmoDC2 validation galaxies.",
        "",
        "| flow | held-out loss, -ln q(u) (its manifest) | mean ln q(theta_true) | z 68% | z 95% | log M 68% | log M 95% | OOD rate, training distribution | OOD rate, make_mock | OOD rate, cosmoDC2 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    write_section("Amortized posterior: calibration on its training distribution, OOD rates (npe_diagnostics.py)", "\n".join(body))


if __name__ == "__main__":
    main()
