"""Training loop shared by the emulators: Adam, decaying learning rate, early stopping, checkpoints.

``fit`` minimises a mean-squared error between ``predict(model, x)`` and ``y``
(both standardised by the caller) on a training split, watches the loss on a
validation split, keeps the best model, stops after ``patience`` epochs without
improvement, and writes a resumable checkpoint every epoch when asked to.
Everything random comes from the key, so a run is reproducible from its seed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from popz.io.atomic import atomic_path

__all__ = ["TrainingSettings", "TrainingHistory", "fit"]


class TrainingSettings(NamedTuple):
    """How to train.

    epochs : int                maximum number of passes over the training split
    batch_size : int
    learning_rate : float       initial Adam learning rate
    decay_rate : float          learning rate multiplied by this every ``decay_epochs``
    decay_epochs : float
    patience : int              epochs without validation improvement before stopping
    max_minutes : float | None  wall-clock budget; training stops (resumably) when spent
    """

    epochs: int = 300
    batch_size: int = 1024
    learning_rate: float = 2e-3
    decay_rate: float = 0.5
    decay_epochs: float = 40.0
    patience: int = 25
    max_minutes: float | None = None


class TrainingHistory(NamedTuple):
    """Per-epoch losses (standardised units) and why training stopped."""

    train_loss: list
    val_loss: list
    best_epoch: int
    stopped: str


def _batches(key, n: int, batch_size: int):
    perm = np.asarray(jax.random.permutation(key, n))
    for start in range(0, n - batch_size + 1, batch_size):
        yield perm[start : start + batch_size]


def fit(
    key: jax.Array,
    model: eqx.Module,
    predict: Callable,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    settings: TrainingSettings = TrainingSettings(),
    checkpoint: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[eqx.Module, TrainingHistory]:
    """Train ``model`` so that ``predict(model, x)`` (one example) matches ``y``; return the best model.

    x_* : arrays of shape (n, n_in), y_* : arrays of shape (n, n_out), float32, standardised.
    With ``checkpoint``, the state is saved after every epoch and a run with the
    same checkpoint path continues where it stopped.
    """
    steps_per_epoch = max(1, x_train.shape[0] // settings.batch_size)
    schedule = optax.exponential_decay(
        settings.learning_rate, transition_steps=int(settings.decay_epochs * steps_per_epoch), decay_rate=settings.decay_rate
    )
    optimiser = optax.adam(schedule)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimiser.init(params)
    batched = jax.vmap(predict, in_axes=(None, 0))

    def loss_fn(p, x, y):
        return jnp.mean((batched(eqx.combine(p, static), x) - y) ** 2)

    @jax.jit
    def step(p, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, state = optimiser.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    @jax.jit
    def evaluate(p, x, y):
        return loss_fn(p, x, y)

    def val_loss(p) -> float:
        chunks = [evaluate(p, x_val[i : i + 8192], y_val[i : i + 8192]) * len(x_val[i : i + 8192]) for i in range(0, len(x_val), 8192)]
        return float(sum(chunks) / len(x_val))

    epoch, best, best_params, history_train, history_val, best_epoch, stale = 0, np.inf, params, [], [], -1, 0
    if checkpoint is not None and Path(checkpoint).with_suffix(".json").exists():
        meta = json.loads(Path(checkpoint).with_suffix(".json").read_text())
        skeleton = (params, best_params, opt_state)
        params, best_params, opt_state = eqx.tree_deserialise_leaves(checkpoint, skeleton)
        epoch, best, best_epoch, stale = meta["epoch"], meta["best"], meta["best_epoch"], meta["stale"]
        history_train, history_val = meta["train_loss"], meta["val_loss"]
        log(f"resumed from {checkpoint} at epoch {epoch} (best validation loss {best:.3e})")

    start = time.monotonic()
    stopped = "epochs"
    x_train = jnp.asarray(x_train)
    y_train = jnp.asarray(y_train)
    while epoch < settings.epochs:
        epoch_key = jax.random.fold_in(key, epoch)
        losses = []
        for idx in _batches(epoch_key, x_train.shape[0], settings.batch_size):
            params, opt_state, loss = step(params, opt_state, x_train[idx], y_train[idx])
            losses.append(loss)
        train = float(jnp.mean(jnp.stack(losses)))
        val = val_loss(params)
        history_train.append(train)
        history_val.append(val)
        if val < best:
            best, best_params, best_epoch, stale = val, params, epoch, 0
        else:
            stale += 1
        epoch += 1
        log(f"epoch {epoch:4d}  train {train:.3e}  validation {val:.3e}  best {best:.3e} (epoch {best_epoch + 1})")
        if checkpoint is not None:
            with atomic_path(checkpoint) as tmp:
                eqx.tree_serialise_leaves(tmp, (params, best_params, opt_state))
            meta = dict(epoch=epoch, best=best, best_epoch=best_epoch, stale=stale, train_loss=history_train, val_loss=history_val)
            with atomic_path(Path(checkpoint).with_suffix(".json")) as tmp:
                tmp.write_text(json.dumps(meta))
        if stale >= settings.patience:
            stopped = "early stopping"
            break
        if settings.max_minutes is not None and time.monotonic() - start > 60 * settings.max_minutes:
            stopped = "time budget"
            break
    return eqx.combine(best_params, static), TrainingHistory(history_train, history_val, best_epoch, stopped)
