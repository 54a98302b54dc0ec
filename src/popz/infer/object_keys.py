"""Random keys per object, so that an object's posterior does not depend on how the catalog was split.

A key is derived from the run's seed and the object's id alone (``fold_in`` of
the id's high and low 32 bits), never from its position in a chunk or the
chunk's index: any chunk size, partition or worker count gives every object
the same random stream.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["object_keys"]


def object_keys(seed: int, object_id) -> jax.Array:
    """Keys of shape (G,) for ``object_id`` (G,) int64 ids under ``seed``."""
    ids = np.asarray(object_id, np.int64).astype(np.uint64)
    high = (ids >> np.uint64(32)).astype(np.uint32)
    low = (ids & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    root = jax.random.key(seed)
    return jax.vmap(lambda h, lo: jax.random.fold_in(jax.random.fold_in(root, h), lo))(high, low)
