"""Training loop shared by the emulators: Adam, decaying learning rate, early stopping, checkpoints.

``fit`` minimises a mean-squared error between ``predict(model, x)`` and ``y``
(both standardised by the caller) on a training split, watches the loss on a
validation split, keeps the best model, stops after ``patience`` epochs without
improvement, and writes a resumable checkpoint every epoch when asked to.
Everything random comes from the key (batches of epoch e from fold_in(key, e)),
so a run is reproducible from its seed, and a resumed run ends where an
uninterrupted one would. A checkpoint is one file (JSON header + equinox
leaves) written atomically, with a fingerprint of what was being trained: a
rerun with other data or settings is refused rather than silently continued.
"""

from __future__ import annotations

import io
import json
import struct
import time
from pathlib import Path
from typing import Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from popz.errors import PopzError
from popz.io.atomic import atomic_path

__all__ = ["TrainingSettings", "TrainingHistory", "fit", "write_checkpoint", "read_checkpoint"]


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


def write_checkpoint(path: Path, meta: dict, tree) -> None:
    """One file, written atomically: 8-byte header length, JSON ``meta``, then the equinox leaves of ``tree``."""
    header = json.dumps(meta).encode()
    leaves = io.BytesIO()
    eqx.tree_serialise_leaves(leaves, tree)
    with atomic_path(path) as tmp:
        tmp.write_bytes(struct.pack("<Q", len(header)) + header + leaves.getvalue())


def read_checkpoint(path: Path, skeleton) -> tuple[dict, object]:
    """The ``meta`` dict and the tree (shaped like ``skeleton``) of a checkpoint."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8 : 8 + n])
    return meta, eqx.tree_deserialise_leaves(io.BytesIO(data[8 + n :]), skeleton)


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
    fingerprint: dict | None = None,
) -> tuple[eqx.Module, TrainingHistory]:
    """Train ``model`` so that ``predict(model, x)`` (one example) matches ``y``; return the best model.

    x_* : arrays of shape (n, n_in), y_* : arrays of shape (n, n_out), float32, standardised.
    With ``checkpoint``, the state is saved after every epoch and a run with the
    same checkpoint path continues where it stopped, provided ``fingerprint``
    (what is being trained: data hash, seed, architecture, settings) is the same.
    Raises PopzError when the loss becomes non-finite or the checkpoint belongs to another run.
    """
    fingerprint = {**(fingerprint or {}), "settings": {k: v for k, v in settings._asdict().items() if k != "max_minutes"}}
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
    if checkpoint is not None and Path(checkpoint).exists():
        meta, state = read_checkpoint(checkpoint, (params, best_params, opt_state))
        if json.loads(json.dumps(fingerprint)) != meta.get("fingerprint"):
            raise PopzError(
                f"{checkpoint} belongs to another training run (other data, seed, architecture or settings): "
                "rerun with the same options to resume, or delete it to start again"
            )
        params, best_params, opt_state = state
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
        if not (np.isfinite(train) and np.isfinite(val)):
            raise PopzError(f"training diverged at epoch {epoch + 1} (non-finite loss): lower the learning rate")
        history_train.append(train)
        history_val.append(val)
        if val < best:
            best, best_params, best_epoch, stale = val, params, epoch, 0
        else:
            stale += 1
        epoch += 1
        log(f"epoch {epoch:4d}  train {train:.3e}  validation {val:.3e}  best {best:.3e} (epoch {best_epoch + 1})")
        if checkpoint is not None:
            meta = dict(
                fingerprint=fingerprint, epoch=epoch, best=best, best_epoch=best_epoch, stale=stale,
                train_loss=history_train, val_loss=history_val,
            )
            write_checkpoint(checkpoint, meta, (params, best_params, opt_state))
        if stale >= settings.patience:
            stopped = "early stopping"
            break
        if settings.max_minutes is not None and time.monotonic() - start > 60 * settings.max_minutes:
            stopped = "time budget"
            break
    return eqx.combine(best_params, static), TrainingHistory(history_train, history_val, best_epoch, stopped)
