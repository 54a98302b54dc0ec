"""Updating stored posteriors when the hyperparameters change, by importance sampling (``popz reweight``).

Stored draws theta_is of p(theta | d_i, eta_old) become draws of
p(theta | d_i, eta_new) with weights

    w_is  proportional to  p(theta_is | hyper_new) / p(theta_is | hyper_old)
                           x L(d_i | theta_is, data model new) / L(d_i | theta_is, data model old)

(the second factor only where zero-points or floors change; it needs the
catalog and the emulator). Each object gets its effective sample size
(sum w)^2 / sum w^2; below ``min_ess`` it is flagged FLAG_LOW_ESS (a refit is
the cure). The draws are then resampled (systematic resampling) to as many
equally weighted draws as were stored.

Shapes: N objects, S draws, D parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.infer.amortized_fit import FLAG_LOW_ESS

__all__ = ["ReweightResult", "prior_log_ratio", "likelihood_log_ratio", "reweight_samples"]


class ReweightResult(NamedTuple):
    """samples : (N, S, D) resampled draws; ess : (N,) effective sample size of the weights; flags : (N,) int32."""

    samples: np.ndarray
    ess: np.ndarray
    flags: np.ndarray


@eqx.filter_jit
def _prior_ratio(samples, prior_log_prob, old, new):
    flat = samples.reshape(-1, samples.shape[-1])
    ratio = jax.vmap(lambda t: prior_log_prob(t, new) - prior_log_prob(t, old))(flat)
    return ratio.reshape(samples.shape[:2])


def _padded_batches(n: int, batch: int):
    """(start, stop, pad) of batches of one size (the last padded), so that one compilation serves them all."""
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        yield start, stop, batch - (stop - start)


def _pad(a, pad: int):
    return np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) if pad else a


def prior_log_ratio(samples: np.ndarray, *, prior, old_hyper, new_hyper, batch: int = 8192) -> np.ndarray:
    """ln p(theta | new) - ln p(theta | old) at every draw, (N, S); both priors normalised."""
    samples = np.asarray(samples, np.float32)
    batch = min(batch, len(samples)) or 1
    parts = [
        np.asarray(_prior_ratio(jnp.asarray(_pad(samples[a:b], pad)), prior.log_prob, jnp.asarray(old_hyper), jnp.asarray(new_hyper)))[: b - a]
        for a, b, pad in _padded_batches(len(samples), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros(samples.shape[:2])


@eqx.filter_jit
def _likelihood_ratio(samples, observations, emulator, old, new, extinction):
    from popz.infer.likelihood import log_likelihood

    def one(theta, obs):
        return log_likelihood(theta, obs, emulator=emulator, hyper=new, extinction=extinction) - log_likelihood(
            theta, obs, emulator=emulator, hyper=old, extinction=extinction
        )

    return jax.vmap(lambda draws, obs: jax.vmap(lambda t: one(t, obs))(draws))(samples, observations)


def likelihood_log_ratio(samples, observations, *, emulator, old_data_model, new_data_model, extinction, batch: int = 4096) -> np.ndarray:
    """ln L(d | theta, new data model) - ln L(d | theta, old), (N, S), through the photometric emulator."""
    samples = np.asarray(samples, np.float32)
    batch = min(batch, len(samples)) or 1
    parts = []
    for a, b, pad in _padded_batches(len(samples), batch):
        obs = jax.tree.map(lambda x: jnp.asarray(_pad(np.asarray(x)[a:b], pad)), observations)
        ratio = _likelihood_ratio(jnp.asarray(_pad(samples[a:b], pad)), obs, emulator, old_data_model, new_data_model, extinction)
        parts.append(np.asarray(ratio)[: b - a])
    return np.concatenate(parts)


def reweight_samples(samples: np.ndarray, log_weights: np.ndarray, *, min_ess: float = 20.0, seed: int = 0) -> ReweightResult:
    """Resample every object's draws by its weights; flag objects whose effective sample size is below ``min_ess``.

    An object without a single finite weight keeps its draws, with ESS 0 (flagged).
    """
    samples = np.asarray(samples)
    log_w = np.where(np.isfinite(log_weights), log_weights, -np.inf)
    usable = np.isfinite(log_w).any(axis=1)
    log_w = np.where(usable[:, None], log_w, 0.0)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    ess = np.where(usable, 1.0 / np.sum(w**2, axis=1), 0.0)
    n, s = w.shape
    u = (np.random.default_rng(seed).uniform(size=(n, 1)) + np.arange(s)) / s
    # one searchsorted for all objects: row r's cumulative weights and positions shifted by r keep rows apart
    rows = np.arange(n)[:, None]
    cumulative = (np.cumsum(w, axis=1) + rows).ravel()
    pick = np.clip(np.searchsorted(cumulative, (u + rows).ravel()).reshape(n, s) - rows * s, 0, s - 1)
    resampled = np.take_along_axis(samples, pick[:, :, None], axis=1)
    flags = np.where(ess < min_ess, FLAG_LOW_ESS, 0).astype(np.int32)
    return ReweightResult(resampled, ess.astype(np.float32), flags)
