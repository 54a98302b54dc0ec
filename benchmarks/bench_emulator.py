"""Emulator throughput against the simulator, measured in the same run on the same machine.

Simulator: lsst-default photometry, one process, steady state (models/s).
Emulators: jit-compiled, vmapped over a batch of training-prior draws, float32,
timed after compilation as the median of repeated calls (models/s). Reports
the ratio to the simulator. On a GPU machine the same script gives the GPU
figures (JAX picks the device).

    python benchmarks/bench_emulator.py --emulator lsst-default --batch 100000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _results import write_section


def _time(fn, *args, repeats: int = 5) -> float:
    fn(*args).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args).block_until_ready()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", default="lsst-default", help="shipped name (photometry and spectrum) ")
    parser.add_argument("--batch", type=int, default=100000)
    parser.add_argument("--n-simulator", type=int, default=300)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from popz.config import load_model
    from popz.emulate.files import load
    from popz.population import TrainingPrior
    from popz.sps.jax_photometry import make_band_table
    from popz.sps.simulator import make_simulator

    config = load_model("lsst-default")
    theta = TrainingPrior(config).sample(jax.random.key(0), args.batch)
    sim = make_simulator(config)
    sim.magnitudes(theta[0].astype(np.float64))
    start = time.perf_counter()
    for t in theta[: args.n_simulator]:
        sim.magnitudes(t.astype(np.float64))
    sim_rate = args.n_simulator / (time.perf_counter() - start)

    device = jax.devices()[0]
    rows = [("simulator (bagpipes + popz photometry), 1 process", sim_rate, 1.0)]
    photometry = load(args.emulator, kind="photometry")
    fn = jax.jit(jax.vmap(photometry.magnitudes))
    rate = args.batch / _time(fn, jnp.asarray(theta))
    rows.append((f"photometric emulator, batch {args.batch}, {device.platform}", rate, rate / sim_rate))
    try:
        spectrum = load(args.emulator, kind="spectrum")
    except Exception as err:  # noqa: BLE001 - the spectrum emulator is optional here
        print(f"no spectrum emulator: {err}")
    else:
        table = make_band_table(sim.bands)
        fn = jax.jit(jax.vmap(lambda t: spectrum.magnitudes(t, table)))
        n = min(args.batch, 20000)
        rate = n / _time(fn, jnp.asarray(theta[:n]))
        rows.append((f"spectrum emulator -> LSST photometry, batch {n}, {device.platform}", rate, rate / sim_rate))
    for name, rate, ratio in rows:
        print(f"{name}: {rate:,.0f} models/s ({ratio:,.0f}x)")
    body = [
        f"JAX {jax.__version__} on `{device.device_kind}` ({device.platform}); float32.",
        "",
        "| what | models/s | x simulator |",
        "|---|---:|---:|",
    ]
    body += [f"| {name} | {rate:,.0f} | {ratio:,.0f} |" for name, rate, ratio in rows]
    write_section(f"Emulator throughput, {device.platform} (bench_emulator.py)", "\n".join(body))


if __name__ == "__main__":
    main()
