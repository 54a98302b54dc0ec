"""Emulator throughput against the simulator, measured in the same run on the same machine.

Simulator: lsst-default photometry, one process, steady state (models/s).
Emulators: jit-compiled, vmapped over a batch of training-prior draws, float32,
timed after compilation as the median of repeated calls (models/s), both as
one vmap over the whole batch and in cache-sized blocks (``chunked_vmap``, what
popz uses). Reports the ratio to the simulator in one process, and to the
simulator on every core (``--workers``, measured in the same run; XLA uses all
cores for the emulator). On a GPU machine the same script gives the GPU
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


def _simulate_chunk(args) -> float:
    config, theta = args
    from popz.sps.simulator import make_simulator

    sim = make_simulator(config)
    sim.magnitudes(theta[0].astype(np.float64))
    start = time.perf_counter()
    for t in theta:
        sim.magnitudes(t.astype(np.float64))
    return len(theta) / (time.perf_counter() - start)


def _simulator_rate_workers(config, theta: np.ndarray, workers: int) -> float:
    """Steady-state models/s of ``workers`` simulator processes running at once (sum of their rates)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        rates = pool.map(_simulate_chunk, [(config, part) for part in np.array_split(theta, workers)])
    return float(sum(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", default="lsst-default", help="shipped name (photometry and spectrum) ")
    parser.add_argument("--batch", type=int, default=100000)
    parser.add_argument("--n-simulator", type=int, default=300, help="0: emulators only (a GPU machine without bagpipes)")
    parser.add_argument("--workers", type=int, default=2, help="simulator processes for the all-cores figure")
    parser.add_argument("--chunk", default="2048", help="rows per block for chunked_vmap; several, comma-separated, are each timed")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from popz.config import load_model
    from popz.emulate.batching import chunked_vmap
    from popz.emulate.files import load
    from popz.population import TrainingPrior
    from popz.sps.jax_photometry import make_band_table
    from popz.sps.filters import load_bands

    config = load_model("lsst-default")
    theta = TrainingPrior(config).sample(jax.random.key(0), args.batch)
    device = jax.devices()[0]
    rows = []
    sim_rate = sim_rate_all = float("nan")
    if args.n_simulator > 0:
        from popz.sps.simulator import make_simulator

        sim = make_simulator(config)
        sim.magnitudes(theta[0].astype(np.float64))
        start = time.perf_counter()
        for t in theta[: args.n_simulator]:
            sim.magnitudes(t.astype(np.float64))
        sim_rate = args.n_simulator / (time.perf_counter() - start)
        sim_rate_all = _simulator_rate_workers(config, np.asarray(theta[: args.n_simulator * args.workers]), args.workers)
        rows += [
            ("simulator (bagpipes + popz photometry), 1 process", sim_rate, 1.0, sim_rate / sim_rate_all),
            (f"simulator, {args.workers} processes", sim_rate_all, sim_rate_all / sim_rate, 1.0),
        ]
    photometry = load(args.emulator, kind="photometry")
    fn = jax.jit(jax.vmap(photometry.magnitudes))
    rate = args.batch / _time(fn, jnp.asarray(theta))
    rows.append((f"photometric emulator, one vmap over batch {args.batch}, {device.platform}", rate, rate / sim_rate, rate / sim_rate_all))
    for chunk in (int(c) for c in str(args.chunk).split(",")):
        fn = jax.jit(chunked_vmap(photometry.magnitudes, chunk))
        rate = args.batch / _time(fn, jnp.asarray(theta))
        rows.append(
            (f"photometric emulator, batch {args.batch} in blocks of {chunk}, {device.platform}", rate, rate / sim_rate, rate / sim_rate_all)
        )
    try:
        spectrum = load(args.emulator, kind="spectrum")
    except Exception as err:  # noqa: BLE001 - the spectrum emulator is optional here
        print(f"no spectrum emulator: {err}")
    else:
        n = min(args.batch, 20000)
        # the log-grid table that popz fit --filters uses, and the per-pixel search it replaced
        for label, table in (("log-grid table", spectrum.band_table(load_bands(config.bands))), ("per-pixel search", make_band_table(load_bands(config.bands)))):
            fn = jax.jit(chunked_vmap(lambda t, table=table: spectrum.magnitudes(t, table), 512))
            rate = n / _time(fn, jnp.asarray(theta[:n]))
            rows.append((f"spectrum emulator -> LSST photometry ({label}), batch {n} in blocks of 512, {device.platform}", rate, rate / sim_rate, rate / sim_rate_all))
    for name, rate, ratio, ratio_all in rows:
        print(f"{name}: {rate:,.0f} models/s ({ratio:,.0f}x one process, {ratio_all:,.0f}x all processes)")

    def times(ratio: float) -> str:
        return "not measured" if np.isnan(ratio) else f"{ratio:,.1f}"

    body = [
        f"JAX {jax.__version__} on `{device.device_kind}` ({device.platform}); float32.",
        "",
        "| what | models/s | x simulator (1 process) | x simulator (all cores) |",
        "|---|---:|---:|---:|",
    ]
    body += [f"| {name} | {rate:,.0f} | {times(ratio)} | {times(ratio_all)} |" for name, rate, ratio, ratio_all in rows]
    if np.isnan(sim_rate):
        body += ["", "The simulator was not run here (`--n-simulator 0`); its CPU rate is in the CPU section."]
    write_section(f"Emulator throughput, {device.platform} (bench_emulator.py)", "\n".join(body))


if __name__ == "__main__":
    main()
