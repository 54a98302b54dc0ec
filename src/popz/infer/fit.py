"""Per-galaxy posteriors by batched ensemble MCMC through the photometric emulator (the accurate path).

For a batch of G galaxies at once:

1. **Initialisation that finds the modes.** A shared pool of prior draws
   (``n_pool``) is scored against every galaxy: since model fluxes are linear
   in stellar mass, each pool draw is first rescaled to its best-fitting mass
   (weighted least squares, exact), then scored by its log posterior relative
   to the pool's own prior density. The W best distinct draws by Gumbel top-k
   sampling (sampling without replacement with probability proportional to
   the weights) start the walkers, so walkers start in every mode the pool
   finds, in proportion to its posterior mass.
2. **MCMC** (:mod:`popz.infer.ensemble`): ``n_burn`` steps discarded, then
   ``n_steps`` steps kept every ``thin``.
3. **Diagnostics** per galaxy: integrated autocorrelation time and split R-hat;
   a galaxy whose effective sample size or R-hat misses the thresholds is
   flagged :data:`FLAG_NOT_CONVERGED`.

One-galaxy functions, vmapped once here over the batch.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.data_model.noise import DataModelHyper, predicted_flux
from popz.emulate.batching import batched_apply
from popz.emulate.inputs import domain_share
from popz.infer import ensemble
from popz.infer.diagnostics import integrated_autocorr_time, split_rhat
from popz.infer.likelihood import Observation, log_likelihood_of_model_flux
from popz.infer.object_keys import object_keys

__all__ = ["FitSettings", "FitResult", "fit_batch", "FLAG_NOT_CONVERGED", "FLAG_EMULATOR_DOMAIN"]

FLAG_NOT_CONVERGED = 16  # effective sample size or R-hat below the thresholds at the step cap
FLAG_EMULATOR_DOMAIN = 32  # posterior draws leave the emulator's training domain (popz.emulate.inputs.domain_share > 1%)
N_RESCUES = 4  # rescues of stranded walkers during the first half of the burn-in


class FitSettings(NamedTuple):
    """How to sample.

    n_walkers : int        walkers per galaxy (even)
    n_burn : int           steps discarded
    n_steps : int          steps kept (every ``thin``-th)
    thin : int
    n_pool : int           prior draws scored to start the walkers
    min_ess : float        effective sample size below which a galaxy is flagged not converged
    max_rhat : float       split R-hat above which it is flagged
    seed : int
    moves : ensemble.MoveSettings   stretch / differential-evolution / mode-jump mixture
    """

    n_walkers: int = 32
    n_burn: int = 1000
    n_steps: int = 1000
    thin: int = 10
    n_pool: int = 4096
    min_ess: float = 100.0
    max_rhat: float = 1.1
    seed: int = 0
    moves: ensemble.MoveSettings = ensemble.MoveSettings()


class FitResult(NamedTuple):
    """Posterior samples and diagnostics of G galaxies.

    samples : (G, S, D) thinned samples, S = n_steps / thin x n_walkers
    log_posterior : (G, S)
    tau : (G, D) integrated autocorrelation times, in steps
    rhat : (G, D) split R-hat
    ess : (G,) effective sample size (of the slowest parameter)
    acceptance : (G,) mean acceptance rate
    flags : (G,) int32 bitmask (FLAG_NOT_CONVERGED, FLAG_EMULATOR_DOMAIN)
    """

    samples: np.ndarray
    log_posterior: np.ndarray
    tau: np.ndarray
    rhat: np.ndarray
    ess: np.ndarray
    acceptance: np.ndarray
    flags: np.ndarray

    def diagnostics(self) -> dict:
        """Per-galaxy columns of the output table."""
        return {"ess": self.ess, "rhat_max": self.rhat.max(axis=1), "acceptance": self.acceptance}


class _Reparametrisation(NamedTuple):
    """The sampler's coordinates y: theta = loc + scale sinh(y) for heavy-tailed (Student-t prior) parameters, else y = theta.

    Heavy tails slow affine-invariant ensembles down (walkers far out make huge
    stretch proposals); asinh maps a Student-t's power-law tails to exponential ones.
    """

    heavy: jax.Array  # (D,) bool
    loc: jax.Array  # (D,)
    scale: jax.Array  # (D,)

    def to_theta(self, y):
        return jnp.where(self.heavy, self.loc + self.scale * jnp.sinh(y), y)

    def to_y(self, theta):
        return jnp.where(self.heavy, jnp.arcsinh((theta - self.loc) / self.scale), theta)

    def log_jacobian(self, y):
        """ln |d theta / d y|."""
        return jnp.sum(jnp.where(self.heavy, jnp.log(self.scale) + jnp.logaddexp(y, -y) - jnp.log(2.0), 0.0))


def make_reparametrisation(config) -> _Reparametrisation:
    """asinh coordinates for every parameter whose training prior is a Student-t (the SFH log ratios)."""
    from popz.config import StudentTPrior

    heavy = [isinstance(p.prior, StudentTPrior) for p in config.parameters]
    loc = [p.prior.loc if h else 0.0 for p, h in zip(config.parameters, heavy)]
    scale = [p.prior.scale if h else 1.0 for p, h in zip(config.parameters, heavy)]
    return _Reparametrisation(jnp.asarray(heavy), jnp.asarray(loc, jnp.float32), jnp.asarray(scale, jnp.float32))


def _best_amplitude(model_flux, obs: Observation):
    """Weighted least-squares factor on ``model_flux`` (..., n_bands) that best matches the observed fluxes (...).

    Fluxes are linear in stellar mass, so this is the best-fitting mass ratio;
    weights are the catalog's inverse variances, unobserved bands weigh 0.
    """
    weight = jnp.where(obs.observed, 1.0 / obs.flux_err_nJy**2, 0.0)
    flux = jnp.where(obs.observed, obs.flux_nJy, 0.0)
    return jnp.sum(weight * flux * model_flux, axis=-1) / jnp.maximum(jnp.sum(weight * model_flux**2, axis=-1), 1e-30)


def _initial_walkers(key, obs: Observation, pool_theta, pool_flux, pool_log_prior, emulator, prior, hyper, data_model, extinction, n_walkers):
    """Walker positions (W, D) for one galaxy from the shared pool (see the module docstring)."""
    mass_index = emulator.inputs.mass_index
    model = predicted_flux(pool_flux, obs.tract_index, extinction.transmission(obs.ebv), data_model)  # (P, B)
    amplitude = _best_amplitude(model, obs)
    weight = jnp.where(obs.observed, 1.0 / obs.flux_err_nJy**2, 0.0)
    lo, hi = prior.lower[mass_index], prior.upper[mass_index]
    log_mass = jnp.clip(pool_theta[:, mass_index] + jnp.log10(jnp.maximum(amplitude, 1e-30)), lo, hi)
    scale = 10.0 ** (log_mass - pool_theta[:, mass_index])
    chi2 = jnp.sum(weight * (obs.flux_nJy - scale[:, None] * model) ** 2, axis=1)
    theta = pool_theta.at[:, mass_index].set(log_mass)
    log_prior = jax.vmap(lambda t: prior.log_prob_unnormalised(t, hyper))(theta)
    score = -0.5 * chi2 + log_prior - pool_log_prior
    score = jnp.where(jnp.isfinite(score), score, -jnp.inf)
    k_pick, k_jitter = jax.random.split(key)
    gumbel = jax.random.gumbel(k_pick, score.shape)
    _, best = jax.lax.top_k(score + gumbel, n_walkers)
    start = theta[best]
    # a little spread, inside the bounds, so that no two walkers coincide
    span = prior.upper - prior.lower
    start = start + 1e-3 * span * jax.random.normal(k_jitter, start.shape)
    return jnp.clip(start, prior.lower + 1e-4 * span, prior.upper - 1e-4 * span)


def fit_batch(
    observations: Observation,
    *,
    emulator,
    prior,
    hyper,
    data_model: DataModelHyper,
    extinction,
    settings: FitSettings = FitSettings(),
    batch_index: int = 0,
    object_id=None,
) -> FitResult:
    """Posterior samples of every galaxy in ``observations`` (fields with a leading axis G).

    ``object_id`` (G,) int64: each galaxy's random stream comes from its id and
    the seed (:func:`popz.infer.object_keys.object_keys`), so its result does not
    depend on the batch it is fitted in. Without ids, ``batch_index`` enters the
    key instead (fold_in(key(seed), batch_index)).
    """
    n = observations.flux_nJy.shape[0]
    if object_id is not None:
        pairs = jax.vmap(lambda k: jax.random.split(k, 2))(object_keys(settings.seed, object_id))
        init_keys, run_keys = pairs[:, 0], pairs[:, 1]
    else:
        key = jax.random.fold_in(jax.random.key(settings.seed), batch_index)
        _, k_init, k_run = jax.random.split(key, 3)  # three-way split kept so that seeds give the streams they always gave
        init_keys, run_keys = jax.random.split(k_init, n), jax.random.split(k_run, n)
    pool_key = jax.random.key(settings.seed)  # the pool is the same for every batch
    pool_theta = prior.sample(jax.random.fold_in(pool_key, 2**20), settings.n_pool, hyper)
    pool_flux = batched_apply(emulator.flux_nJy, pool_theta)
    pool_log_prior = jax.vmap(lambda t: prior.log_prob_unnormalised(t, hyper))(pool_theta)
    # one stream of move choices for every galaxy of every batch: each step all galaxies make the same move, so only
    # that move's proposal is computed (ensemble.step; 1.9 of 3.9 ms per step saved for 256 galaxies on 2 CPU cores),
    # and a galaxy's result still does not depend on the batch it is in
    move_key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(pool_key, 2**21), 0), 0)  # 3 levels: no object key
    result = _fit_compiled(prior, settings, hyper)(
        init_keys, run_keys, observations, pool_theta, pool_flux, pool_log_prior,
        emulator, data_model, extinction, move_key,
    )  # fmt: skip
    samples, log_post, tau, rhat, acceptance, domain = (np.asarray(a) for a in result)
    n_kept = settings.n_steps // settings.thin
    ess = n_kept * settings.n_walkers / np.maximum(tau.max(axis=1), 1.0)
    flags = np.zeros(n, np.int32)
    flags |= np.where((ess < settings.min_ess) | (rhat.max(axis=1) > settings.max_rhat), FLAG_NOT_CONVERGED, 0).astype(np.int32)
    flags |= np.where(domain > 0.01, FLAG_EMULATOR_DOMAIN, 0).astype(np.int32)
    return FitResult(samples, log_post, tau * settings.thin, rhat, ess, acceptance, flags)


_COMPILED: dict = {}


_MAX_COMPILED = 16


def _fit_compiled(prior, settings: FitSettings, hyper):
    """The jitted batch fit for one prior object, settings and hyperparameters (cached: compiled once per batch shape).

    Keyed on the prior object itself, not its id: the cache keeps it alive, so
    an id can never be reused by another prior while its entry exists. The
    hyperparameters are constants of the program, not arguments: fixed for a
    whole fit, they let XLA fold the prior's terms that depend on them alone;
    recomputed at every step, those cost 12% of the step (measured on 2 CPU
    cores, benchmarks/bench_fit.py).
    """
    hyper = np.asarray(hyper, np.float32)
    cache_key = (prior, settings, hyper.tobytes())
    if cache_key in _COMPILED:
        return _COMPILED[cache_key]
    if len(_COMPILED) >= _MAX_COMPILED:
        _COMPILED.pop(next(iter(_COMPILED)))
    hyper = jnp.asarray(hyper)

    reparam = make_reparametrisation(prior.config)

    def one(k_init, k_run, obs, pool_theta, pool_flux, pool_log_prior, emulator, data_model, extinction, k_moves):
        mass = emulator.inputs.mass_index
        calibration = predicted_flux(1.0, obs.tract_index, extinction.transmission(obs.ebv), data_model)  # (B,)
        lo, hi = prior.lower[mass], prior.upper[mass]

        def split(y):
            """theta, and the model fluxes at theta, from the sampler's coordinates y.

            The mass coordinate of y is log M minus the best-fitting log M given the
            other parameters (weighted least squares in flux, closed form), so the
            thin curved ridge along which mass trades off against age, dust and
            redshift becomes a straight axis; the shear has unit Jacobian.
            """
            theta_other = reparam.to_theta(y)
            unit = emulator.flux_nJy(theta_other.at[mass].set(0.0))  # fluxes for 1 Msun
            amplitude = _best_amplitude(unit * calibration, obs)
            best = jnp.clip(jnp.log10(jnp.maximum(amplitude, 1e-30)), lo, hi)
            log_mass = y[mass] + best
            return theta_other.at[mass].set(log_mass), unit * 10.0**log_mass, best

        def log_post(y):
            """ln posterior at y, and the best-fitting log mass (kept with each walker: theta = f(y, best) without
            evaluating the emulator again for the kept draws)."""
            theta, flux, best = split(y)
            lp = prior.log_prob_unnormalised(theta, hyper)
            ll = log_likelihood_of_model_flux(flux, emulator.error_mag(theta), obs, hyper=data_model, extinction=extinction)
            return jnp.where(jnp.isfinite(lp), lp + ll + reparam.log_jacobian(y), -jnp.inf), best

        def to_y(theta):
            y = reparam.to_y(theta)
            _, _, best = split(y)
            return y.at[mass].set(theta[mass] - best)

        def to_theta(y, best):
            return reparam.to_theta(y).at[mass].set(y[mass] + best)

        x0 = _initial_walkers(
            k_init, obs, pool_theta, pool_flux, pool_log_prior, emulator, prior, hyper, data_model, extinction, settings.n_walkers
        )
        state = ensemble.init(jax.vmap(to_y)(x0), log_post, has_aux=True)
        k_burn, k_keep = jax.random.split(k_run)
        # first half of the burn-in in segments, each followed by a rescue of stranded walkers
        segment = max(settings.n_burn // (2 * N_RESCUES), 1)
        threshold = max(15.0, float(prior.config.n_parameters))
        def rescued_segment(r, state):
            k_seg, k_rescue = jax.random.split(jax.random.fold_in(k_burn, r))
            state, *_ = ensemble.sample(k_seg, state, log_post, segment, thin=segment, settings=settings.moves,
                                        move_key=jax.random.fold_in(k_moves, r))
            return ensemble.rescue_stragglers(k_rescue, state, log_post, threshold)

        # a loop, not unrolled: one copy of the sampler in the program (compiles in half the time)
        state = jax.lax.fori_loop(0, N_RESCUES, rescued_segment, state)
        rest = settings.n_burn - N_RESCUES * segment
        state, *_ = ensemble.sample(jax.random.fold_in(k_burn, N_RESCUES), state, log_post, rest, thin=rest, settings=settings.moves,
                                    move_key=jax.random.fold_in(k_moves, N_RESCUES))
        _, chain, chain_lp, acc, chain_best = ensemble.sample(k_keep, state, log_post, settings.n_steps, thin=settings.thin,
                                                             settings=settings.moves, move_key=jax.random.fold_in(k_moves, N_RESCUES + 1))
        tau = integrated_autocorr_time(chain)
        rhat = split_rhat(chain)
        flat = jax.vmap(to_theta)(chain.reshape(-1, chain.shape[-1]), chain_best.reshape(-1))
        chain_lp = chain_lp - jax.vmap(jax.vmap(reparam.log_jacobian))(chain)
        domain = domain_share(emulator.inputs, flat)
        return flat, chain_lp.reshape(-1), tau, rhat, jnp.mean(acc), domain

    batched = eqx.filter_vmap(one, in_axes=(0, 0, 0, None, None, None, None, None, None, None))
    fn = eqx.filter_jit(batched)
    _COMPILED[cache_key] = fn
    return fn
