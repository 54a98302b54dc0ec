"""The compact posterior product: within 200 floats per object.

Per object:

- the summary row of :mod:`popz.posterior.catalog_fit` (mean, 5/16/50/84/95%
  quantiles of every parameter, ``z_mode``: 6 D + 1 floats, 79 for D = 13);
- p(z) as :data:`PZ_QUANTILE_LEVELS` quantiles (33 floats), stored as a qp
  ``quant`` ensemble (RAIL-readable);
- :data:`N_COMPACT_SAMPLES` posterior draws of every parameter (4 D floats, 52).

169 floats in all for the 13-parameter lsst-default model. What is lost
against the full posterior is measured by ``benchmarks/npe_storage.py``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PZ_QUANTILE_LEVELS", "N_COMPACT_SAMPLES", "redshift_quantiles", "quantile_cdf", "floats_per_object"]

PZ_QUANTILE_LEVELS = np.concatenate([[0.001, 0.005], np.linspace(0.02, 0.98, 29), [0.995, 0.999]])
N_COMPACT_SAMPLES = 4


def redshift_quantiles(z_samples: np.ndarray) -> np.ndarray:
    """p(z) quantiles (G, 33) at PZ_QUANTILE_LEVELS from samples (G, S); strictly increasing along axis 1."""
    q = np.quantile(np.asarray(z_samples, np.float64), PZ_QUANTILE_LEVELS, axis=1).T.astype(np.float32)
    # ties (few distinct samples, as after importance weights collapse) would give qp a zero-width bin, which its
    # interpolators refuse: step each tie up to the next float32, the precision the compact file stores
    for k in range(1, q.shape[1]):
        q[:, k] = np.maximum(q[:, k], np.nextafter(q[:, k - 1], np.float32(np.inf)))
    return q.astype(np.float64)


def quantile_cdf(quantiles: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The CDF at z (n,) implied by one object's quantiles (33,) (linear between them, 0 and 1 beyond)."""
    return np.interp(z, quantiles, PZ_QUANTILE_LEVELS, left=0.0, right=1.0)


def floats_per_object(n_parameters: int) -> int:
    return 6 * n_parameters + 1 + PZ_QUANTILE_LEVELS.size + N_COMPACT_SAMPLES * n_parameters
