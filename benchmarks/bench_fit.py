"""MCMC throughput of popz fit against a bare-JAX ceiling, in the same run on the same machine.

popz: ``fit_batch`` on G mock galaxies, 32 walkers x (n_burn + n_steps) steps,
timed after compilation (galaxies/s). Ceiling: the same emulator evaluated in a
plain loop (``lax.scan`` over the same number of steps) on the same
G x 32 parameter vectors, vmapped, i.e. the emulator calls the sampler makes
with nothing else around them (galaxies/s).

The three are timed in turn, ``--repeats`` times (popz, ceiling, half layout,
popz, ...), and the fraction is taken per round, so that a slow spell of the
machine falls on both sides of a ratio; the table gives the medians and the
range of the per-round fractions.

    python benchmarks/bench_fit.py --galaxies 256 --steps 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np


from _results import write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2000, help="burn-in + kept steps")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (popz, ceiling, half layout) timings")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.data_model.mock import MockSettings, make_mock
    from popz.emulate.files import load
    from popz.infer.fit import FitSettings, fit_batch
    from popz.io.catalog import observations_from_table
    from popz.population import make_population_prior
    from popz.sps.filters import load_bands

    config = load_model("lsst-default")
    emulator, prior = load("lsst-default"), make_population_prior(config)
    mock = make_mock(config, MockSettings(n=args.galaxies, seed=4, chunk_size=50000), emulator=emulator, prior=prior)
    obs = observations_from_table(mock.table, list("ugrizy")).observations
    half = args.steps // 2
    settings = FitSettings(n_burn=half, n_steps=args.steps - half)
    kwargs = dict(emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=default_data_model(0, 6),
                  extinction=make_extinction_table(load_bands(config.bands)), settings=settings)  # fmt: skip
    fit_batch(obs, **kwargs)  # compile

    theta = prior.sample(jax.random.key(1), args.galaxies * settings.n_walkers)
    evaluate = jax.vmap(emulator.flux_nJy)

    @jax.jit
    def ceiling(theta):
        def body(total, k):
            return total + jnp.sum(evaluate(theta + 1e-6 * k)), None

        total, _ = jax.lax.scan(body, 0.0, jnp.arange(args.steps, dtype=jnp.float32))
        return total

    per_galaxy = jax.vmap(jax.vmap(emulator.flux_nJy))  # (G, W/2, D): the sampler's own layout
    walkers = theta.reshape(args.galaxies, settings.n_walkers, -1)
    half_w = settings.n_walkers // 2

    @jax.jit
    def ceiling_halves(walkers):
        # the sampler's layout: each step evaluates one half of every ensemble, then the other
        first, second = walkers[:, :half_w], walkers[:, half_w:]

        def body(total, k):
            total = total + jnp.sum(per_galaxy(first + 1e-6 * k))
            return total + jnp.sum(per_galaxy(second + 1e-6 * k + 0.0 * total)), None

        total, _ = jax.lax.scan(body, 0.0, jnp.arange(args.steps, dtype=jnp.float32))
        return total

    ceiling(theta).block_until_ready()  # compile
    ceiling_halves(walkers).block_until_ready()

    def rate(run) -> float:
        start = time.perf_counter()
        run()
        return args.galaxies / (time.perf_counter() - start)

    rounds = []  # (popz, ceiling, half layout) galaxies/s per round
    for r in range(args.repeats):
        rounds.append((
            rate(lambda: fit_batch(obs, batch_index=1 + r, **kwargs)),
            rate(lambda: ceiling(theta).block_until_ready()),
            rate(lambda: ceiling_halves(walkers).block_until_ready()),
        ))  # fmt: skip
        print("round {}: popz {:.2f}, ceiling {:.2f}, half layout {:.2f} galaxies/s".format(r, *rounds[-1]), flush=True)
    rounds = np.asarray(rounds)
    fractions = rounds[:, 0] / rounds[:, 1]
    fit_rate, ceiling_rate, halves_rate = np.median(rounds, axis=0)
    fraction, halves_fraction = np.median(fractions), np.median(rounds[:, 2] / rounds[:, 1])
    device = jax.devices()[0]
    print(f"fit {fit_rate:.2f} galaxies/s, ceiling {ceiling_rate:.2f} galaxies/s, fraction {fraction:.2f} "
          f"(rounds {', '.join(f'{f:.2f}' for f in fractions)})")  # fmt: skip
    body = [
        f"JAX {jax.__version__} on `{device.device_kind}` ({device.platform}); {args.galaxies} mock galaxies, "
        f"{settings.n_walkers} walkers x {args.steps} steps ({settings.n_burn} burn-in + {settings.n_steps} kept). "
        f"{args.repeats} rounds, each timing popz, the ceiling and the half layout in turn; medians over the rounds.",
        "",
        "| what | galaxies/s | fraction of ceiling |",
        "|---|---:|---:|",
        f"| popz `fit_batch` (MCMC, all included) | {fit_rate:.2f} | {fraction:.2f} |",
        f"| ceiling: the same emulator calls in a bare vmapped `lax.scan` | {ceiling_rate:.2f} | 1.00 |",
        f"| the same calls in the sampler's layout (half of every ensemble, then the other half, per step) | "
        f"{halves_rate:.2f} | {halves_fraction:.2f} |",
        "",
        f"popz's fraction of the ceiling, round by round: {', '.join(f'{f:.2f}' for f in fractions)}.",
        "",
        f"popz reaches {np.median(rounds[:, 0] / rounds[:, 2]):.2f} of the half-ensemble layout's rate. The rest is the sampler's own work "
        "per step: proposals and random numbers, the population prior, the likelihood and the emulator-error model, "
        "acceptance and bookkeeping. On a GPU these are many small kernels per step, which run at launch speed.",
    ]
    write_section(f"MCMC throughput, {device.platform} (bench_fit.py)", "\n".join(body))


if __name__ == "__main__":
    main()
