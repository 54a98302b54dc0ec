"""Error floors from popz calibrate against the number of importance-sampling proposals per galaxy.

Same mock as calibrate_mock.py (seed 11: 4 tracts, zero-points with 3% scatter,
2% floor injected, i < 25.3), ``--n`` galaxies; for each ``--proposals`` K the
calibration's maximum a posteriori floors after its 2 rounds (zero-points and
floors free; the chains are not run). Tests whether the floors' excess comes
from the bias of ln p(d_i | eta) estimated from K proposals.

    python benchmarks/calibration_floors.py --n 3000 --proposals 128,512
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _results import write_section


class _AtMaximum(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--proposals", default="128,512")
    args = parser.parse_args()

    import jax

    import popz.infer.hierarchical as hierarchical
    from popz.config import load_model
    from popz.data_model import make_extinction_table
    from popz.data_model.mock import MockSettings, make_mock
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.io.catalog import observations_from_table
    from popz.population import make_population_prior
    from popz.sps.filters import load_bands
    from popz.sps.photometry import AB_MAG_OF_ONE_NJY

    def stop_at_maximum(objective, eta):  # the last round's maximum; the Laplace step and chains are skipped
        raise _AtMaximum(eta)

    hierarchical._laplace_covariance = stop_at_maximum
    bands = list("ugrizy")
    config = load_model("lsst-default")
    emulator, prior = load("lsst-default"), make_population_prior(config)
    mock = make_mock(config, MockSettings(n=args.n, seed=11, n_tracts=4, zero_point_scatter=0.03, error_floor=0.02, chunk_size=50000),
                     emulator=emulator, prior=prior)  # fmt: skip
    data = observations_from_table(mock.table, bands, known_tracts=[0, 1, 2, 3])
    rows = []
    for k in [int(x) for x in args.proposals.split(",")]:
        start = time.perf_counter()
        try:
            hierarchical.calibrate(
                data.observations, n_tracts=4, flow=load_posterior("lsst-default", config=config), emulator=emulator, prior=prior,
                extinction=make_extinction_table(load_bands(config.bands)), settings=hierarchical.CalibrationSettings(n_proposals=k, rounds=2),
                selection_band=bands.index("i"), selection_flux_nJy=10 ** (-0.4 * (25.3 - AB_MAG_OF_ONE_NJY)),
            )  # fmt: skip
        except _AtMaximum as found:
            floors = np.exp(np.asarray(found.args[0])[4 * 6 : 5 * 6])
        rows.append(f"| {k} | " + " | ".join(f"{f:.4f}" for f in floors) + f" | {time.perf_counter() - start:.0f} |")
        print(rows[-1], flush=True)
    body = [
        f"JAX {jax.__version__}; a mock of {args.n} galaxies with calibrate_mock.py's settings (seed 11); maximum a posteriori "
        "error floors after 2 rounds (zero-points and floors free). Injected floor: 0.02 in every band.",
        "",
        "| proposals per galaxy | " + " | ".join(bands) + " | seconds |",
        "|---:|" + "---:|" * 7,
        *rows,
    ]
    write_section(f"Error floors against proposals per galaxy, {jax.default_backend()} (calibration_floors.py)", "\n".join(body))


if __name__ == "__main__":
    main()
