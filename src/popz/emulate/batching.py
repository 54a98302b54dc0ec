"""Evaluating one-galaxy functions over large batches in cache-sized blocks.

``jax.vmap`` over 10^5 galaxies makes every intermediate array 10^5 rows long,
which spills the CPU caches: an MLP's hidden activations (n, 256) float32 are
100 MB there. Mapping sequentially over blocks of a few thousand rows keeps the
work in cache (1.5x faster on the 2-core benchmark machine, see
``benchmarks/bench_emulator.py``) and the memory flat, with identical results.
"""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["chunked_vmap", "batched_apply", "DEFAULT_CHUNK_SIZE"]

DEFAULT_CHUNK_SIZE = 2048


def chunked_vmap(fn: Callable, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Callable:
    """``vmap(fn)`` over the leading axis of one array argument, evaluated ``chunk_size`` rows at a time.

    fn : function of one row, shape (d,) -> pytree of arrays.
    Returns a function of x, shape (n, d), giving fn's outputs stacked along a
    leading axis of length n (any n, padded internally to whole chunks by
    repeating the last row). Compose with ``jax.jit``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    batched = jax.vmap(fn)

    def apply(x):
        x = jnp.asarray(x)
        n = x.shape[0]
        if n <= chunk_size:
            return batched(x)
        n_chunks = -(-n // chunk_size)
        pad = n_chunks * chunk_size - n
        padded = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
        out = jax.lax.map(batched, padded.reshape((n_chunks, chunk_size) + x.shape[1:]))
        return jax.tree_util.tree_map(lambda a: a.reshape((n_chunks * chunk_size,) + a.shape[2:])[:n], out)

    return apply


@eqx.filter_jit
def batched_apply(fn: Callable, x):
    """``chunked_vmap(fn)(x)``, compiled once per function structure and shape of x.

    ``fn`` may be a bound method of an equinox module (``emulator.magnitudes``):
    its arrays are traced, so a new emulator object of the same architecture
    reuses the compiled code instead of compiling again.
    """
    return chunked_vmap(fn)(x)
