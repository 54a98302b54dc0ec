"""Small building blocks of the emulators: standardisation and MLPs."""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Standardiser", "make_mlp", "ACTIVATIONS"]

ACTIVATIONS = {"gelu": jax.nn.gelu, "silu": jax.nn.silu, "tanh": jnp.tanh}


class Standardiser(NamedTuple):
    """Affine map to zero mean and unit variance per column.

    shift, scale : arrays of shape (n_columns,), float32
    """

    shift: jax.Array
    scale: jax.Array

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardiser":
        """From data of shape (n, n_columns); constant columns get scale 1."""
        x = np.asarray(x, dtype=np.float64)
        scale = x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        return cls(jnp.asarray(x.mean(axis=0), jnp.float32), jnp.asarray(scale, jnp.float32))

    def forward(self, x):
        return (x - self.shift) / self.scale

    def inverse(self, z):
        return z * self.scale + self.shift


def make_mlp(key: jax.Array, *, n_in: int, n_out: int, hidden: tuple[int, ...], activation: str) -> eqx.nn.MLP:
    """A fully connected network with ``len(hidden)`` hidden layers (all of one width)."""
    if len(set(hidden)) != 1:
        raise ValueError(f"hidden layers must share one width, got {hidden}")
    return eqx.nn.MLP(
        in_size=n_in,
        out_size=n_out,
        width_size=hidden[0],
        depth=len(hidden),
        activation=ACTIVATIONS[activation],
        key=key,
    )
