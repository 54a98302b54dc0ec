"""Simulator throughput: lsst-default photometry, models per second, 1 and 2 worker processes.

Steady state: each worker builds its simulator first (not timed), then the
timed phase runs ``--n`` prior draws split across the workers. The end-to-end
time of ``simulate_training_set`` (process start-up, sampling and file writing
included) is reported beside it.

    python benchmarks/bench_simulator.py --n 400 --workers 1,2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from _results import write_section

_SIM = {}


def _init(model: str) -> None:
    from popz.config import load_model
    from popz.sps.simulator import make_simulator

    _SIM["sim"] = make_simulator(load_model(model))


def _run(theta: np.ndarray) -> int:
    sim = _SIM["sim"]
    for t in theta:
        sim.magnitudes(t)
    return len(theta)


def _ready(_: int) -> bool:
    return "sim" in _SIM


def steady_rate(model: str, theta: np.ndarray, workers: int) -> float:
    # Worker processes in every case (1 included), so the parent's JAX threads never compete.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init, initargs=(model,)) as pool:
        assert all(pool.map(_ready, range(workers)))
        list(pool.map(_run, np.array_split(theta[: 2 * workers], workers)))  # warm up
        start = time.perf_counter()
        done = sum(pool.map(_run, np.array_split(theta, workers * 4)))
        return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lsst-default")
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()

    import jax

    from popz.config import load_model
    from popz.emulate.training_set import simulate_training_set
    from popz.population import TrainingPrior

    config = load_model(args.model)
    theta = TrainingPrior(config).sample(jax.random.key(0), args.n).astype(np.float64)
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        rate = steady_rate(args.model, theta, workers)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            simulate_training_set(config, args.n, Path(tmp) / "s.parquet", seed=0, workers=workers, chunk_size=50)
            end_to_end = args.n / (time.perf_counter() - start)
        rows.append((workers, rate, 1e3 * workers / rate, end_to_end))
        print(f"workers={workers}: {rate:.0f} models/s steady, {end_to_end:.0f} models/s end to end")
    body = [
        f"`{args.model}` photometry ({len(config.bands)} bands), {args.n} training-prior draws.",
        "",
        "| workers | models/s (steady) | ms per model per worker | models/s (`simulate_training_set`, start-up included) |",
        "|---:|---:|---:|---:|",
    ]
    body += [f"| {w} | {r:.0f} | {ms:.2f} | {e:.0f} |" for w, r, ms, e in rows]
    write_section("Simulator throughput (bench_simulator.py)", "\n".join(body))


if __name__ == "__main__":
    main()
