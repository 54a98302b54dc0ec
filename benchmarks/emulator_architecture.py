"""Shared trunk or one MLP per band? The photometric emulator's architecture, measured.

Both variants see the same inputs and targets, a subset of the training set,
the same optimiser, schedule and number of epochs, and are scored on the same
held-out draws. Parameter counts are matched roughly (one 4x256 trunk with six
outputs vs six 4x96 networks with one output each).

    python benchmarks/emulator_architecture.py --train sims/train.parquet --test sims/heldout.parquet --n 100000 --epochs 30
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from _results import write_section


class PerBandMLP(eqx.Module):
    """``n_out`` independent MLPs with one output each, evaluated together."""

    networks: eqx.nn.MLP  # stacked: every leaf has a leading axis of length n_out

    def __init__(self, key, *, n_in: int, n_out: int, width: int, depth: int):
        make = lambda k: eqx.nn.MLP(n_in, 1, width, depth, activation=jax.nn.gelu, key=k)  # noqa: E731
        self.networks = eqx.filter_vmap(make)(jax.random.split(key, n_out))

    def __call__(self, x):
        return eqx.filter_vmap(lambda net: net(x)[0])(self.networks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--n", type=int, default=100000)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    from popz.config import load_model
    from popz.emulate.networks import make_mlp
    from popz.emulate.photometry import new_photometry_emulator
    from popz.emulate.train import accuracy_table, read_training_set, residuals
    from popz.emulate.training import TrainingSettings, fit

    config = load_model("lsst-default")
    theta, mags = read_training_set(args.train, config)
    theta, mags = theta[: args.n], mags[: args.n]
    test_theta, test_mags = read_training_set(args.test, config)
    emulator = new_photometry_emulator(jax.random.key(0), config, theta, hidden=(8,), activation="gelu", magnitudes=mags)
    features = jax.jit(jax.vmap(emulator.inputs.features))
    x = np.asarray(features(jnp.asarray(theta)))
    y = np.asarray(emulator.y_standardiser.forward(emulator.targets(theta, mags)), np.float32)
    n_val = len(x) // 20
    n_in, n_out = x.shape[1], y.shape[1]
    variants = {
        "shared trunk 4x256, 6 outputs": make_mlp(jax.random.key(1), n_in=n_in, n_out=n_out, hidden=(256,) * 4, activation="gelu"),
        "per band 6 x (4x96, 1 output)": PerBandMLP(jax.random.key(1), n_in=n_in, n_out=n_out, width=96, depth=4),
    }
    settings = TrainingSettings(epochs=args.epochs, batch_size=512, learning_rate=2e-3, decay_epochs=args.epochs / 4, patience=args.epochs)
    rows = []
    for name, network in variants.items():
        n_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(eqx.filter(network, eqx.is_inexact_array)))
        start = time.perf_counter()
        trained, _ = fit(jax.random.key(2), network, lambda net, v: net(v), x[n_val:], y[n_val:], x[:n_val], y[:n_val], settings, log=lambda s: None)
        seconds = time.perf_counter() - start
        table = accuracy_table(residuals(eqx.tree_at(lambda e: e.network, emulator, trained), test_theta, test_mags), config.bands)
        rows.append((name, n_params, seconds, table))
        print(name, n_params, f"{seconds:.0f}s", {b: round(r["rms"], 4) for b, r in table.items()})
    bands = list(rows[0][3])
    body = [
        f"{args.n} training rows (5% for validation), {args.epochs} epochs each, same schedule; held-out `{args.test}`. RMS [mag]:",
        "",
        "| variant | parameters | training time [s] | " + " | ".join(bands) + " |",
        "|---|---:|---:|" + "---:|" * len(bands),
    ]
    body += [f"| {n} | {p:,} | {s:.0f} | " + " | ".join(f"{t[b]['rms']:.4f}" for b in bands) + " |" for n, p, s, t in rows]
    write_section("Photometric emulator architecture (emulator_architecture.py)", "\n".join(body))


if __name__ == "__main__":
    main()
