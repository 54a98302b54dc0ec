"""Per-galaxy posteriors from the amortized flow (``npe``), optionally corrected by importance sampling (``npe+is``).

``npe``: S draws from q(theta | data) per galaxy, one pass of the flow.

``npe+is``: M proposals from q, weighted by prior x likelihood / q (the
likelihood of the MCMC path, through the photometric emulator), resampled to S
equally weighted draws (systematic resampling). The effective sample size
(sum w)^2 / sum w^2 is reported; galaxies below ``min_ess`` are flagged
FLAG_LOW_ESS (and refitted by MCMC with ``popz fit --fallback mcmc``).

Both paths flag:

- FLAG_OUT_OF_DISTRIBUTION: inputs the flow was not trained for: the input
  log density under the training distribution below the threshold calibrated
  to 1% of held-out in-distribution mocks, or outside the training selection
  (observed flux in the cut band, E(B-V) range);
- FLAG_POOR_FIT: no model fits: the best chi^2 over ``n_check`` draws has a
  p-value below ``min_p_value`` (chi^2 with as many degrees of freedom as
  observed bands);
- FLAG_EMULATOR_DOMAIN as in MCMC: draws leave the emulator's training
  domain (:func:`popz.emulate.inputs.domain_share` above 1%; npe+is only: npe
  does not call the emulator on all draws).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.emulate.inputs import domain_share
from popz.infer.fit import FLAG_EMULATOR_DOMAIN
from popz.infer.likelihood import Observation, corrected_for_zero_points, log_likelihood
from popz.infer.object_keys import object_keys

__all__ = ["NPESettings", "NPEResult", "npe_batch", "with_mcmc_fallback", "FLAG_REFIT_MCMC", "FLAG_OUT_OF_DISTRIBUTION", "FLAG_POOR_FIT", "FLAG_LOW_ESS"]

FLAG_OUT_OF_DISTRIBUTION = 64
FLAG_POOR_FIT = 128
FLAG_LOW_ESS = 256
FLAG_REFIT_MCMC = 512  # informational: the draws come from the MCMC fallback


class NPESettings(NamedTuple):
    """How the amortized posterior is used.

    n_draws : int            draws kept per galaxy (S)
    importance : bool        npe+is: weight proposals by prior x likelihood / q
    n_proposals : int        proposals per galaxy for npe+is (M)
    proposal_scale : float   npe+is: the flow's base variable is drawn with this standard deviation (> 1: heavier tails)
    min_ess : float          npe+is: effective sample size below which a galaxy is flagged
    n_check : int            draws whose chi^2 tests the fit (npe)
    min_p_value : float      FLAG_POOR_FIT below this chi^2 p-value
    seed : int
    """

    n_draws: int = 100
    importance: bool = False
    n_proposals: int = 1000
    proposal_scale: float = 1.25
    min_ess: float = 50.0
    n_check: int = 16
    min_p_value: float = 1e-3
    seed: int = 0


class NPEResult(NamedTuple):
    """Amortized posteriors of G galaxies.

    samples : (G, S, D) draws
    log_posterior : (G, S) ln q (npe) or ln prior + ln L (npe+is)
    ess : (G,) importance-sampling effective sample size (npe+is), S (npe)
    input_log_density : (G,) log density of the inputs under the training distribution
    chi2_best : (G,) best chi^2 over the checked draws
    flags : (G,) int32 bitmask
    """

    samples: np.ndarray
    log_posterior: np.ndarray
    ess: np.ndarray
    input_log_density: np.ndarray
    chi2_best: np.ndarray
    flags: np.ndarray

    def diagnostics(self) -> dict:
        return {"ess": self.ess, "input_log_density": self.input_log_density, "chi2_best": self.chi2_best}


def npe_batch(observations: Observation, *, flow, emulator, prior, hyper, data_model, extinction, settings: NPESettings = NPESettings(), batch_index: int = 0, object_id=None) -> NPEResult:
    """Posterior draws of every galaxy in ``observations`` (fields with a leading axis G).

    ``object_id`` (G,) int64: per-galaxy random streams from the ids and the seed
    (independent of batching); without ids, from ``batch_index``.
    """
    from scipy.stats import chi2

    n = observations.flux_nJy.shape[0]
    if object_id is not None:
        keys = object_keys(settings.seed, object_id)
    else:
        keys = jax.random.split(jax.random.fold_in(jax.random.key(settings.seed), batch_index), n)
    fn = _compiled(settings)
    samples, log_post, ess, chi2_min, density, inside, domain = (
        np.asarray(a) for a in fn(keys, observations, flow, emulator, prior, hyper, data_model, extinction)
    )
    n_observed = np.asarray(observations.observed).sum(axis=1)
    p_value = chi2.sf(chi2_min, np.maximum(n_observed, 1))
    flags = np.zeros(n, np.int32)
    flags |= np.where((density < float(flow.ood_threshold)) | ~inside, FLAG_OUT_OF_DISTRIBUTION, 0).astype(np.int32)
    flags |= np.where(p_value < settings.min_p_value, FLAG_POOR_FIT, 0).astype(np.int32)
    if settings.importance:
        flags |= np.where(ess < settings.min_ess, FLAG_LOW_ESS, 0).astype(np.int32)
        flags |= np.where(domain > 0.01, FLAG_EMULATOR_DOMAIN, 0).astype(np.int32)
    return NPEResult(samples, log_post, ess.astype(np.float32), density, chi2_min, flags)


_COMPILED: dict = {}


def _compiled(settings: NPESettings):
    if settings in _COMPILED:
        return _COMPILED[settings]

    def one(key, obs, flow, emulator, prior, hyper, data_model, extinction):
        k_draw, k_resample = jax.random.split(key)
        m = settings.n_proposals if settings.importance else settings.n_draws
        # the flow was trained on calibrated fluxes: divide by the tract's zero-points (1 unless calibrated)
        calibrated = corrected_for_zero_points(obs, data_model.zero_point)
        theta, log_q = flow.sample_and_log_prob(k_draw, calibrated, m, settings.proposal_scale if settings.importance else 1.0)

        def log_target(t):
            lp = prior.log_prob_unnormalised(t, hyper)
            ll = log_likelihood(t, obs, emulator=emulator, hyper=data_model, extinction=extinction)
            return jnp.where(jnp.isfinite(lp), lp + ll, -jnp.inf), ll

        if settings.importance:
            log_p, log_l = jax.vmap(log_target)(theta)
            log_w = jnp.where(jnp.isfinite(log_p) & jnp.isfinite(log_q), log_p - log_q, -jnp.inf)
            usable = jnp.isfinite(jnp.max(log_w))
            # no proposal with a finite weight: keep q's draws (equal weights) and report ESS 0 (flagged)
            log_w = jnp.where(usable, log_w, 0.0)
            w = jnp.exp(log_w - jnp.max(log_w))
            w = w / jnp.sum(w)
            ess = jnp.where(usable, 1.0 / jnp.sum(w**2), 0.0)
            # systematic resampling to n_draws equally weighted draws
            u = (jax.random.uniform(k_resample) + jnp.arange(settings.n_draws)) / settings.n_draws
            pick = jnp.clip(jnp.searchsorted(jnp.cumsum(w), u), 0, m - 1)
            samples, log_post = theta[pick], log_p[pick]
            best = jnp.argmax(jnp.where(jnp.isfinite(log_l), log_l, -jnp.inf))
            chi2_min = _chi2(theta[best], obs, emulator, data_model, extinction)
            domain = domain_share(emulator.inputs, theta, w)  # the weighted proposals: finer than the resampled draws
        else:
            # flows trained before 2026-11-27 had their parameter bounds trained too, and those drifted outside the
            # prior's (amortized_train._partition): a few percent of their draws fall outside the prior's support,
            # where no galaxy can be. Those are put on the nearest bound. (npe+is needs nothing: they weigh 0 there.)
            samples, log_post, ess = jnp.clip(theta, prior.lower, prior.upper), log_q, jnp.asarray(float(m))
            chi2_min = jnp.min(jax.vmap(lambda t: _chi2(t, obs, emulator, data_model, extinction))(samples[: settings.n_check]))
            domain = jnp.asarray(0.0)
        return samples, log_post, ess, chi2_min, flow.input_log_density(calibrated), flow.in_training_cut(calibrated), domain

    fn = eqx.filter_jit(eqx.filter_vmap(one, in_axes=(0, 0, None, None, None, None, None, None)))
    _COMPILED[settings] = fn
    return fn


def _chi2(theta, obs: Observation, emulator, data_model, extinction):
    """chi^2 of one galaxy's observed bands at theta, with the likelihood's variance (catalog error, floor, emulator error)."""
    from popz.data_model.noise import flux_variance, predicted_flux

    predicted = predicted_flux(emulator.flux_nJy(theta), obs.tract_index, extinction.transmission(obs.ebv), data_model)
    err = jnp.where(obs.observed, obs.flux_err_nJy, 1.0)
    variance = flux_variance(err, predicted, data_model, emulator.error_mag(theta))
    return jnp.sum(jnp.where(obs.observed, (jnp.where(obs.observed, obs.flux_nJy, 0.0) - predicted) ** 2 / variance, 0.0))


def with_mcmc_fallback(result: NPEResult, observations: Observation, refit) -> NPEResult:
    """Replace the draws of FLAG_LOW_ESS galaxies by MCMC draws: ``refit(observations_subset, rows)`` -> FitResult.

    ``rows`` (k,): the refitted galaxies' positions in the batch.

    The MCMC chain is thinned to the same number of draws; its flags are added
    and FLAG_REFIT_MCMC is set.
    """
    bad = np.flatnonzero(result.flags & FLAG_LOW_ESS)
    if bad.size == 0:
        return result
    subset = jax.tree.map(lambda a: a[bad], observations)
    mcmc = refit(subset, bad)
    s = result.samples.shape[1]
    pick = np.linspace(0, mcmc.samples.shape[1] - 1, s).astype(int)
    samples, log_post, flags = result.samples.copy(), result.log_posterior.copy(), result.flags.copy()
    samples[bad] = mcmc.samples[:, pick]
    log_post[bad] = mcmc.log_posterior[:, pick]
    flags[bad] |= mcmc.flags | FLAG_REFIT_MCMC
    return result._replace(samples=samples, log_posterior=log_post, flags=flags)
