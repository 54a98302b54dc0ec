"""popz calibrate on the cosmoDC2 validation set (no redshifts used), then the photo-z before and after.

The zero-points (one set: the file has no tracts) and error floors are
calibrated on a random subsample of the 20,449 galaxies (i < 25.3 cut given);
then every galaxy is fitted with ``npe`` (the flow conditioned on the
recalibrated fluxes) and ``npe+is`` (weights with the calibrated zero-points
and floors), with zero-points fixed at 1 and calibrated, and scored against the
true redshifts (PDF median).

    python benchmarks/calibrate_dc2.py --subsample 5000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _results import write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsample", type=int, default=5000)
    parser.add_argument("--proposals", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from mock_realism import dc2_validation
    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.data_model.noise import DataModelHyper
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.infer.amortized_fit import NPESettings, npe_batch
    from popz.infer.hierarchical import CalibrationSettings, calibrate
    from popz.io.catalog import observations_from_table, read_table, to_rubin_columns
    from popz.population import make_population_prior
    from popz.sps.filters import load_bands
    from popz.sps.photometry import AB_MAG_OF_ONE_NJY

    bands = list("ugrizy")
    dc2 = dc2_validation()
    rubin = to_rubin_columns(read_table(dc2["path"]), bands, assume_dereddened=True).assign(tract=0)
    data = observations_from_table(rubin, bands, known_tracts=[0])
    z_true = dc2["redshift"]
    config = load_model("lsst-default")
    emulator, prior = load("lsst-default"), make_population_prior(config)
    flow = load_posterior("lsst-default", config=config)
    extinction = make_extinction_table(load_bands(config.bands))
    pick = np.sort(np.random.default_rng(0).choice(len(rubin), args.subsample, replace=False))
    start = time.perf_counter()
    result = calibrate(
        jax.tree.map(lambda a: a[pick], data.observations), n_tracts=1, flow=flow, emulator=emulator, prior=prior,
        extinction=extinction, settings=CalibrationSettings(n_proposals=args.proposals, n_steps=args.steps, n_burn=args.steps // 5),
        selection_band=bands.index("i"), selection_flux_nJy=10 ** (-0.4 * (25.3 - AB_MAG_OF_ONE_NJY)),
        progress=lambda m: print(f"{time.perf_counter() - start:.0f} s: {m}", flush=True),
    )  # fmt: skip
    minutes = (time.perf_counter() - start) / 60
    calibrated = DataModelHyper(
        jnp.asarray(np.concatenate([result.zero_points, np.ones((1, 6))]), jnp.float32),
        jnp.asarray(result.error_floors, jnp.float32), jnp.ones(6, jnp.float32),
    )  # fmt: skip
    body = [
        f"JAX {jax.__version__}; calibration on {args.subsample} of the {len(rubin)} galaxies, {args.proposals} proposals, "
        f"4 chains x {args.steps} steps, {minutes:.1f} min; R-hat max {result.r_hat.max():.3f}, acceptance "
        f"{np.round(result.acceptance, 2).tolist()}.",
        "",
        "| band | zero-point (flux factor) | error floor |",
        "|---|---:|---:|",
        *(f"| {b} | {result.zero_points[0, j]:.4f} +/- {result.zero_points_std[0, j]:.4f} | "
          f"{result.error_floors[j]:.4f} +/- {result.error_floors_std[j]:.4f} |" for j, b in enumerate(bands)),  # fmt: skip
        "",
        f"Photo-z of all {len(rubin)} galaxies against their true redshifts (PDF median of 100 draws):",
        "",
        "| method | zero-points | sigma_NMAD | outliers | bias |",
        "|---|---|---:|---:|---:|",
    ]
    iz = config.parameter_names.index("redshift")
    for method in ("npe", "npe+is"):
        for label, data_model in (("fixed at 1, floor 0.02", default_data_model(1, 6, error_floor=0.02)), ("calibrated", calibrated)):
            medians = []
            for row in range(0, len(rubin), 4096):
                obs = jax.tree.map(lambda a: a[row : row + 4096], data.observations)
                fit = npe_batch(obs, flow=flow, emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=data_model,
                                extinction=extinction, settings=NPESettings(importance=method == "npe+is"), batch_index=row)  # fmt: skip
                medians.append(np.median(fit.samples[:, :, iz], axis=1))
            dz = (np.concatenate(medians) - z_true) / (1 + z_true)
            nmad = 1.4826 * np.median(np.abs(dz - np.median(dz)))
            body.append(f"| {method} | {label} | {nmad:.4f} | {np.mean(np.abs(dz) > 0.15):.1%} | {np.median(dz):+.4f} |")
            print(body[-1], flush=True)
    write_section(f"Calibration on cosmoDC2 validation, {jax.default_backend()} (calibrate_dc2.py)", "\n".join(body))


if __name__ == "__main__":
    main()
