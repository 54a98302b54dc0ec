"""The default (training) prior of a model: independent, bounded, one per parameter.

This is the prior ``popz simulate`` draws training sets from, as written in the
model config (``parameters[*].prior``). Each parameter's prior is truncated to
its bounds. The population prior with hyperparameters is a separate model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from popz.config import ModelConfig, NormalPrior, StudentTPrior, UniformPrior
from popz.errors import ConfigError

__all__ = ["TrainingPrior"]

_MAX_REJECTION_ROUNDS = 1000
# With at least 5% of the mass inside, a value is still outside after 1000 rounds
# with probability 0.95^1000 = 5e-23: the final clip never acts in practice.
_MIN_MASS_INSIDE = 0.05


def _scipy_dist(prior):
    if isinstance(prior, NormalPrior):
        return stats.norm(prior.loc, prior.scale)
    if isinstance(prior, StudentTPrior):
        return stats.t(prior.df, prior.loc, prior.scale)
    return None


def _float32_inside(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float32 bounds nearest to (lower, upper) that lie inside them."""
    lo32, hi32 = lower.astype(np.float32), upper.astype(np.float32)
    lo32 = np.where(lo32 < lower, np.nextafter(lo32, np.float32(np.inf)), lo32)
    hi32 = np.where(hi32 > upper, np.nextafter(hi32, np.float32(-np.inf)), hi32)
    return lo32, hi32


class TrainingPrior:
    """Sampler and density of a model's training prior.

    Parameters
    ----------
    config : ModelConfig
    """

    def __init__(self, config: ModelConfig):
        self.config = config
        # float32 draws must stay inside the float64 bounds the simulator checks
        self._lower32, self._upper32 = _float32_inside(config.lower, config.upper)
        self.lower = jnp.asarray(config.lower)
        self.upper = jnp.asarray(config.upper)
        # log of the prior mass inside the bounds, for the truncated normalisation
        log_mass = []
        for p in config.parameters:
            dist = _scipy_dist(p.prior)
            if dist is None:
                log_mass.append(np.log(p.bounds[1] - p.bounds[0]))
            else:
                mass = dist.cdf(p.bounds[1]) - dist.cdf(p.bounds[0])
                if mass < _MIN_MASS_INSIDE:
                    raise ConfigError(
                        f"parameter {p.name}: its prior puts only {mass:.1e} of its mass inside the bounds "
                        f"(at least {_MIN_MASS_INSIDE} is needed to draw from it by rejection)"
                    )
                log_mass.append(np.log(mass))
        self._log_mass = np.asarray(log_mass)
        self._jitted_sample = jax.jit(self._sample, static_argnums=1)

    def _draw_one(self, key, prior, lo: float, hi: float, n: int) -> jnp.ndarray:
        if isinstance(prior, UniformPrior):
            return jax.random.uniform(key, (n,), minval=lo, maxval=hi)
        if isinstance(prior, NormalPrior):
            a, b = (lo - prior.loc) / prior.scale, (hi - prior.loc) / prior.scale
            return prior.loc + prior.scale * jax.random.truncated_normal(key, a, b, (n,))

        def draw(k):
            return prior.loc + prior.scale * jax.random.t(k, prior.df, (n,))

        # Rejection: redraw only the values outside the bounds.
        def outside(x):
            return (x < lo) | (x > hi)

        def cond(state):
            _, x, i = state
            return jnp.any(outside(x)) & (i < _MAX_REJECTION_ROUNDS)

        def body(state):
            k, x, i = state
            k, sub = jax.random.split(k)
            return k, jnp.where(outside(x), draw(sub), x), i + 1

        key, sub = jax.random.split(key)
        _, x, _ = jax.lax.while_loop(cond, body, (key, draw(sub), 0))
        return x

    def _sample(self, key: jax.Array, n: int) -> jnp.ndarray:
        keys = jax.random.split(key, self.config.n_parameters)
        columns = [
            self._draw_one(k, p.prior, p.bounds[0], p.bounds[1], n) for k, p in zip(keys, self.config.parameters)
        ]
        return jnp.clip(jnp.stack(columns, axis=-1).astype(jnp.float32), self._lower32, self._upper32)

    def sample(self, key: jax.Array, n: int) -> np.ndarray:
        """Draw ``n`` parameter vectors, shape (n, n_parameters), float32, in the model's order."""
        return np.asarray(self._jitted_sample(key, n))

    def log_prob(self, theta: jnp.ndarray) -> jnp.ndarray:
        """Log density of parameter vectors, shape (..., n_parameters) -> (...); -inf outside the bounds."""
        theta = jnp.asarray(theta)
        terms = []
        for i, p in enumerate(self.config.parameters):
            x = theta[..., i]
            if isinstance(p.prior, UniformPrior):
                terms.append(jnp.zeros_like(x))
            elif isinstance(p.prior, NormalPrior):
                terms.append(jax.scipy.stats.norm.logpdf(x, p.prior.loc, p.prior.scale))
            else:
                terms.append(jax.scipy.stats.t.logpdf(x, p.prior.df, p.prior.loc, p.prior.scale))
        inside = jnp.all((theta >= self.lower) & (theta <= self.upper), axis=-1)
        total = jnp.sum(jnp.stack(terms, axis=-1), axis=-1) - float(self._log_mass.sum())
        return jnp.where(inside, total, -jnp.inf)
