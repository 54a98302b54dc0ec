"""Throughput of the amortized path on this machine: popz fit --method npe / npe+is with compact storage, end to end.

Fits the first ``--n`` galaxies of the cosmoDC2 validation set through
``fit_catalog`` (reading from memory, flow draws, summaries, p(z) quantiles,
flags, atomic writes of the compact products), after a warm-up run that
compiles everything; reports galaxies/s and bytes per object. Run it alone:
anything else on the cores lowers the figure.

    python benchmarks/bench_npe.py --n 16384
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _results import write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=4096, help="galaxies per batch (fit_catalog's chunk_size)")
    parser.add_argument("--no-reference", action="store_true", help="skip the npe row with flowjax's own sampling transform")
    args = parser.parse_args()

    import jax

    from mock_realism import dc2_validation
    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.infer.amortized_fit import NPESettings, npe_batch
    from popz.io.catalog import read_table, to_rubin_columns
    from popz.population import make_population_prior
    from popz.posterior.catalog_fit import fit_catalog, output_paths
    from popz.sps.filters import load_bands

    config = load_model("lsst-default")
    rubin = to_rubin_columns(read_table(dc2_validation()["path"]).iloc[: args.n], list("ugrizy"), assume_dereddened=True)
    prior = make_population_prior(config)
    flow = load_posterior("lsst-default", config=config)
    common = dict(emulator=load("lsst-default"), prior=prior, hyper=prior.hyper(), data_model=default_data_model(0, 6, error_floor=0.02),
                  extinction=make_extinction_table(load_bands(config.bands)))  # fmt: skip
    import popz.infer.amortized as amortized
    import popz.infer.amortized_fit as amortized_fit

    fast_transform = amortized.coupling_forward
    runs = [("npe", fast_transform), ("npe+is", fast_transform)]
    if not args.no_reference:
        runs.append(("npe, flowjax's sampling transform", amortized.flowjax_forward))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, transform in runs:
            method = label.split(",")[0]
            amortized.coupling_forward = transform  # read when the fit compiles
            amortized_fit._COMPILED.clear()
            settings = NPESettings(n_draws=args.draws, importance=method == "npe+is")

            def fitter(obs, object_id, settings=settings):
                return npe_batch(obs, flow=flow, settings=settings, object_id=object_id, **common)

            kwargs = dict(emulator_id="bench", settings=settings, fitter=fitter, storage="compact", chunk_size=args.chunk, **common)
            fit_catalog(rubin.iloc[: args.chunk], config, tuple("ugrizy"), Path(tmp) / f"warm{len(rows)}.parquet", **kwargs)
            out = Path(tmp) / f"fit{len(rows)}.parquet"
            start = time.perf_counter()
            fit_catalog(rubin, config, tuple("ugrizy"), out, **kwargs)
            seconds = time.perf_counter() - start
            nbytes = sum(p.stat().st_size for p in output_paths(out)) / len(rubin)
            rows.append(f"| {label} | {len(rubin)} | {args.draws} | {len(rubin) / seconds:.0f} | {1e3 * seconds / len(rubin):.2f} | {nbytes:.0f} |")
            print(rows[-1])
    body = [
        f"JAX {jax.__version__} on `{jax.devices()[0].device_kind}` ({jax.default_backend()}); cosmoDC2 validation rows, "
        f"compact storage, chunks of {args.chunk}, "
        "after a warm-up run (compilation excluded). npe+is: 1000 proposals per galaxy through the emulator. "
        "The last row (unless `--no-reference`) is npe again with the flow's draws through flowjax's own transform, "
        "in place of `popz.infer.amortized.coupling_forward`: the same draws to float32 rounding.",
        "",
        "| method | galaxies | draws per galaxy | galaxies/s | ms per galaxy (all cores) | bytes/object |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    write_section(f"Amortized posterior throughput, {jax.default_backend()} (bench_npe.py)", "\n".join(body))


if __name__ == "__main__":
    main()
