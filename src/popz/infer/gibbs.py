"""Hierarchical calibration by Gibbs sampling: every galaxy's parameters and the data model's hyperparameters in turn.

The importance-sampling calibration (:mod:`popz.infer.hierarchical`) scores the
hyperparameters eta with fixed per-galaxy proposals. Where eta moves the
galaxies' posteriors away from the proposals, the estimate of each galaxy's
marginal likelihood falls faster than the likelihood itself, so the objective is
too sharp around the proposals' eta: zero-points that moved 3-10% between runs
were reported with standard deviations of 0.5% (docs/calibration.md). Here
nothing is estimated: the chain alternates

(a) ensemble MCMC steps of every galaxy's parameters given eta
    (:mod:`popz.infer.ensemble`), and
(b) Metropolis-Hastings steps of eta given every galaxy's parameters, which
    costs no emulator call: each walker keeps its emulated fluxes.

**Replicas.** C independent Gibbs chains run at once, C the number of walkers
per galaxy: walker c of every galaxy belongs to replica c, whose eta is its
own. A walker's ensemble move is a Metropolis-Hastings update given the other
walkers, valid whatever their targets (``ensemble.init(..., context=...)``), so
each replica is an exact Gibbs chain, and the spread of the C replicas' eta
gives the split R-hat across chains.

**Coordinates.** A galaxy's state is y in the MCMC's coordinates
(:mod:`popz.infer.fit`): asinh for heavy-tailed parameters, and the stellar
mass as an offset from its best fit given the other parameters and the
zero-points. Step (b) holds y fixed, so when a zero-point moves, every
galaxy's mass follows its best fit (a shear: unit Jacobian, the joint density
in (y, eta) is the posterior's). A grey zero-point then moves freely instead of
being pinned by the masses.

**Step (b)** is a Newton-Metropolis step: with M the inverse of minus the
Hessian of ln p(eta | y, data), the proposal is N(eta + M grad, M), a Newton
step plus noise of the conditional's own width, accepted with the
Metropolis-Hastings ratio (the reverse move needs the gradient at the proposal).
Where the conditional is Gaussian (zero-points at fixed floors, nearly) nearly
every proposal is accepted. M is each replica's own, recomputed at its current
state every block of iterations during the burn-in and then frozen, so that the
kept chain is a Markov chain with a fixed kernel.

The population hyperparameters stay at the config's values here; the selection
term enters through the zero-point of the cut band, as in
:mod:`popz.infer.hierarchical`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from popz.errors import PopzError
from popz.infer import ensemble
from popz.infer.fit import make_reparametrisation
from popz.infer.hierarchical import (
    REFERENCE_LOG_MASS,
    CalibrationResult,
    CalibrationSettings,
    HyperSpace,
    _best_log_mass,
    _data_model,
    _initial_eta,
    _log_prior_eta,
    _log_selected_fraction,
    _rhat_across_chains,
    data_model_summary,
)
from popz.infer.likelihood import Observation, log_likelihood_of_model_flux

__all__ = ["GibbsSettings", "gibbs_calibrate", "check_settings"]


class GibbsSettings(NamedTuple):
    """How the Gibbs calibration runs.

    n_iterations : int     Gibbs iterations (the first n_burn discarded)
    n_burn : int
    galaxy_steps : int     ensemble steps of every galaxy per iteration
    hyper_steps : int      Newton-Metropolis steps of each replica's eta per iteration
    start_spread_mag : float  replicas start with zero-point offsets drawn with this sd (mag), so that R-hat can see
                           whether they forget their starts
    seed : int
    """

    n_iterations: int = 1000
    n_burn: int = 300
    galaxy_steps: int = 2
    hyper_steps: int = 4
    start_spread_mag: float = 0.02
    seed: int = 0


class _Walkers(NamedTuple):
    """aux kept with each walker: unit_flux (B,) for 10^REFERENCE_LOG_MASS Msun, emulator error (B,) mag."""

    unit_flux: jax.Array
    error_mag: jax.Array


def check_settings(settings: CalibrationSettings, gibbs: GibbsSettings) -> None:
    """Raise PopzError for what the Gibbs calibration cannot do (before any galaxy is fitted)."""
    if settings.free_hyper:
        raise PopzError("the Gibbs calibration samples zero-points and error floors; population hyperparameters stay fixed")
    if not (settings.zero_points or settings.floors):
        raise PopzError("nothing to calibrate: zero-points and floors are both fixed")
    if gibbs.n_iterations <= gibbs.n_burn + 1:
        raise PopzError(f"the Gibbs calibration needs more iterations ({gibbs.n_iterations}) than burn-in ({gibbs.n_burn})")


def gibbs_calibrate(
    observations: Observation,
    start_theta,
    *,
    n_tracts: int,
    emulator,
    prior,
    extinction,
    settings: CalibrationSettings = CalibrationSettings(),
    gibbs: GibbsSettings = GibbsSettings(),
    selection=None,
    progress=None,
) -> CalibrationResult:
    """Zero-points and floors (as ``settings`` frees them) with every galaxy's parameters, by Gibbs sampling.

    observations : fields (G, ...); start_theta : (G, C, D) walkers to start from (e.g. the last walkers of an MCMC
    fit at zero-points 1: :func:`popz.infer.fit.fit_batch`), C even, one replica per walker.
    selection : a :func:`popz.infer.hierarchical.make_selection` for the catalog's cut, or None.
    Returns a :class:`CalibrationResult` whose chains are the replicas' post-burn-in eta (C, n_kept, P).
    """
    say = progress or (lambda message: None)
    check_settings(settings, gibbs)
    n_galaxies, n_replicas, _ = np.shape(start_theta)
    n_bands = observations.flux_nJy.shape[1]
    space = HyperSpace(n_tracts, n_bands, settings.zero_points, settings.floors, (), ())
    hyper0 = prior.hyper()
    reparam = make_reparametrisation(prior.config)
    mass = prior.config.parameter_names.index("log_stellar_mass")
    lower, upper = float(prior.lower[mass]), float(prior.upper[mass])

    def place(y, unit, obs, data_model):
        """theta (D,) and model fluxes (B,) of coordinates y with the zero-points of ``data_model``."""
        theta_other = reparam.to_theta(y)
        log_mass = y[mass] + _best_log_mass(unit, obs, data_model.zero_point, extinction, lower, upper)
        return theta_other.at[mass].set(log_mass), unit * 10.0 ** (log_mass - REFERENCE_LOG_MASS)

    def galaxy_terms(y, walker: _Walkers, obs, data_model):
        theta, flux = place(y, walker.unit_flux, obs, data_model)
        lp = prior.log_prob_unnormalised(theta, hyper0)
        ll = log_likelihood_of_model_flux(flux, walker.error_mag, obs, hyper=data_model, extinction=extinction)
        return jnp.where(jnp.isfinite(lp), lp + ll, -jnp.inf)

    def kept_log_post(y, walker: _Walkers, eta, obs):
        """A walker's ln density at ``eta`` from the fluxes it keeps (no emulator call)."""
        return galaxy_terms(y, walker, obs, _data_model(space, eta, settings)) + reparam.log_jacobian(y)

    def walker_log_post(obs):
        def log_post(y, eta):
            theta_other = reparam.to_theta(y)
            unit = emulator.flux_nJy(theta_other.at[mass].set(REFERENCE_LOG_MASS))
            walker = _Walkers(unit, emulator.error_mag(theta_other))
            return kept_log_post(y, walker, eta, obs), walker

        return log_post

    def replicas_view(states):
        """The galaxies' walkers by replica: y (C, G, D) and their kept fluxes (C, G, ...)."""
        return jnp.swapaxes(states.position, 0, 1), jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), states.aux)

    def eta_log_post(eta, y, walkers: _Walkers):
        """ln p(eta | every galaxy's y) for one replica: y (G, D), walkers (G, ...)."""
        data_model = _data_model(space, eta, settings)
        per_galaxy = jax.vmap(lambda yy, w, obs: galaxy_terms(yy, w, obs, data_model))(y, walkers, observations)
        total = jnp.sum(per_galaxy)
        if selection is not None:
            log_s = _log_selected_fraction(
                selection.pool_flux_nJy, selection.flux_limit_nJy, selection.sigma_nJy,
                data_model.zero_point[:, selection.band], selection.pool_log_weight,
            )  # fmt: skip
            total = total - jnp.sum(selection.n_per_tract * log_s)
        return total + _log_prior_eta(space, settings, prior, hyper0, eta)

    value_and_grad = jax.value_and_grad(eta_log_post)
    p = space.size

    def preconditioner(eta, y, walkers):
        """(L, L^-1) (P, P) with L L^T the inverse of minus the Hessian of ln p(eta | y) at eta, made positive definite."""
        h = jax.hessian(eta_log_post)(eta, y, walkers)
        w, v = jnp.linalg.eigh(-0.5 * (h + h.T))
        w = jnp.maximum(w, 1e-6 * jnp.maximum(jnp.max(w), 1e-12))
        return v / jnp.sqrt(w), (v * jnp.sqrt(w)).T

    def hyper_update(key, eta, lp, g, y, walkers, precond):
        """One Newton-Metropolis step of one replica's eta with a fixed preconditioner: the proposal is
        N(eta + M g(eta), M), M = L L^T, and the reverse move's density needs only the gradient at the proposal."""
        chol, chol_inv = precond
        k_z, k_u = jax.random.split(key)
        proposal = eta + chol @ (chol.T @ g) + chol @ jax.random.normal(k_z, (p,))
        lp_new, g_new = value_and_grad(proposal, y, walkers)
        forward = chol_inv @ (proposal - eta - chol @ (chol.T @ g))
        backward = chol_inv @ (eta - proposal - chol @ (chol.T @ g_new))
        log_ratio = lp_new - lp - 0.5 * jnp.sum(backward**2) + 0.5 * jnp.sum(forward**2)
        ok = jnp.isfinite(log_ratio) & jnp.all(jnp.isfinite(g_new))
        accept = jnp.log(jax.random.uniform(k_u)) < jnp.where(ok, log_ratio, -jnp.inf)
        pick = lambda a, b: jnp.where(accept, a, b)  # noqa: E731
        return pick(proposal, eta), pick(lp_new, lp), pick(g_new, g), accept.astype(jnp.float32)

    def iteration(carry, key, precond):
        states, eta = carry  # states: (G,) ensembles of C walkers; eta (C, P)
        k_gal, k_hyp, k_move = jax.random.split(key, 3)
        gal_keys = jax.random.split(k_gal, n_galaxies)

        def galaxy_steps(k, state, obs):
            log_post = walker_log_post(obs)
            # the densities at the replicas' new eta
            lp = jax.vmap(lambda yy, w, e: kept_log_post(yy, w, e, obs))(state.position, state.aux, eta)
            state = state._replace(log_density=lp, context=eta)
            state, *_ = ensemble.sample(k, state, log_post, gibbs.galaxy_steps, thin=gibbs.galaxy_steps, move_key=k_move)
            return state

        states = jax.vmap(galaxy_steps)(gal_keys, states, observations)
        y, walkers = replicas_view(states)

        def replica(k, e, yy, ww, pc):
            lp, g = value_and_grad(e, yy, ww)  # the galaxies moved

            def one(c, kk):
                e, lp, g, acc = c
                e, lp, g, a = hyper_update(kk, e, lp, g, yy, ww, pc)
                return (e, lp, g, acc + a), None

            (e, lp, g, acc), _ = jax.lax.scan(one, (e, lp, g, 0.0), jax.random.split(k, gibbs.hyper_steps))
            return e, acc / gibbs.hyper_steps

        eta, acc = jax.vmap(replica)(jax.random.split(k_hyp, n_replicas), eta, y, walkers, precond)
        return (states, eta), (eta, acc, jnp.mean(states.log_density))

    key = jax.random.key(gibbs.seed)
    k_start, k_run = jax.random.split(key)
    eta0 = jnp.asarray(_initial_eta(space, prior, hyper0, settings), jnp.float32)
    jitter = jnp.zeros((n_replicas, p))
    if space.zero_points:
        n_zp = n_tracts * n_bands
        jitter = jitter.at[:, :n_zp].set(gibbs.start_spread_mag * jax.random.normal(k_start, (n_replicas, n_zp)))
        if settings.reference_band is not None:
            held = np.zeros((n_tracts, n_bands), bool)
            held[:, settings.reference_band] = True
            jitter = jitter.at[:, :n_zp].set(jnp.where(held.ravel(), 0.0, jitter[:, :n_zp]))
    eta = eta0 + jitter

    @jax.jit
    def start(theta, eta):
        def one(theta_c, obs):
            log_post = walker_log_post(obs)

            def to_y(t, e):
                y = reparam.to_y(t)
                unit = emulator.flux_nJy(reparam.to_theta(y).at[mass].set(REFERENCE_LOG_MASS))
                best = _best_log_mass(unit, obs, _data_model(space, e, settings).zero_point, extinction, lower, upper)
                return y.at[mass].set(t[mass] - best)

            y = jax.vmap(to_y)(theta_c, eta)
            return ensemble.init(y, log_post, has_aux=True, context=eta)

        return jax.vmap(one)(theta, observations)

    say(f"Gibbs: {n_galaxies} galaxies x {n_replicas} replicas, {space.size} hyperparameters, {gibbs.n_iterations} iterations")
    states = start(jnp.asarray(start_theta, jnp.float32), eta)
    preconditioners = jax.jit(lambda eta, states: jax.vmap(preconditioner)(eta, *replicas_view(states)))
    run = jax.jit(lambda carry, keys, precond: jax.lax.scan(lambda c, k: iteration(c, k, precond), carry, keys))
    keys = jax.random.split(k_run, gibbs.n_iterations)
    block = 25  # iterations per compiled call: progress, and a bounded program
    chains, accepts = [], []
    carry = (states, eta)
    precond = None
    for i in range(0, gibbs.n_iterations, block):
        if precond is None or i < gibbs.n_burn:
            # the proposal's shape, from the curvature at each replica's current state: adapted during the burn-in only
            precond = preconditioners(*carry[::-1])
        part = keys[i : i + block]
        if part.shape[0] < block:  # the last block, padded to the compiled length
            pad = jax.random.split(jax.random.fold_in(k_run, 10**6), block - part.shape[0])
            part = jnp.concatenate([part, pad])
        carry, (eta_chain, acc, mean_lp) = run(carry, part, precond)
        n_real = min(block, gibbs.n_iterations - i)
        eta_chain, acc = eta_chain[:n_real], acc[:n_real]  # (the padded iterations come last: only their carry is kept)
        chains.append(np.asarray(eta_chain, np.float64))
        accepts.append(np.asarray(acc, np.float64))
        say(f"Gibbs iteration {i + n_real}/{gibbs.n_iterations}: eta acceptance {float(np.mean(acc)):.2f}, "
            f"mean walker ln p {float(np.mean(mean_lp)):.1f}")  # fmt: skip
    chains = np.swapaxes(np.concatenate(chains), 0, 1)  # (C, n_iterations, P)
    acceptance = np.concatenate(accepts).mean(axis=0)
    kept = chains[:, gibbs.n_burn :]
    flat = kept.reshape(-1, p)
    r_hat = _rhat_across_chains(kept)
    zero_points, zero_points_std, error_floors, error_floors_std = data_model_summary(space, settings, flat)
    return CalibrationResult(
        names=space.names([str(b) for b in range(n_bands)], list(range(n_tracts))), chains=kept, acceptance=acceptance,
        r_hat=r_hat, map_eta=np.median(flat, axis=0), laplace_std=flat.std(axis=0), zero_points=zero_points,
        zero_points_std=zero_points_std, error_floors=error_floors, error_floors_std=error_floors_std,
        hyper=np.asarray(hyper0, np.float64), hyper_std={}, n_used=n_galaxies, history=[],
    )  # fmt: skip
