"""Hierarchical calibration of the data model (zero-points, error floors) and of population hyperparameters.

The hyperparameters eta are inferred from the photometry alone, with every
galaxy's parameters marginalised by importance sampling (a collapsed scheme,
which mixes where a Gibbs sampler alternating galaxies and hyperparameters
would crawl: a zero-point is pinned given the galaxies' parameters but only
loosely constrained once they are free):

    ln p(eta | data) = ln p(eta) + sum_i ln p(d_i | eta) - sum_t N_t ln S_t(eta)

    p(d_i | eta) ~= (1/K) sum_k L(d_i | theta_ik, zp, floor) p(theta_ik | hyper) / g(theta_ik)

with K proposals theta_ik per galaxy drawn once per round (round 1: from the
amortized posterior q, broadened; later rounds: the defensive mixture of q,
conditioned on the fluxes corrected by the current zero-points, and a
Gaussian fitted to the last round's weighted proposals), their emulated
fluxes cached, so that each evaluation costs a few array operations per
proposal. S_t(eta) is the fraction of the population that passes the
catalog's cut with tract t's zero-point in the cut band (Monte Carlo over
population draws; left out when the cut is not given).

Each round: new proposals, then the maximum a posteriori eta (L-BFGS on the
exact gradient). After the last, the Laplace approximation (Hessian by
forward-over-reverse products) and independent Metropolis-Hastings chains
with a multivariate-t proposal built from it: chains, acceptance and split
R-hat across chains come from exact evaluations of the importance-sampled
posterior, not from the approximation. Known limitation (docs/calibration.md):
proposals drawn for one flux scale pin a tract's grey zero-point towards it.

Coordinates: zero-point offsets in mag (zp = 10^(-0.4 m), prior N(0, s)),
log error floors (floor uniform on [0, floor_max]), free population
hyperparameters as they are (their config hyperpriors). Shapes: N galaxies,
K proposals, B bands, T tracts, D parameters, P free hyperparameters.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.data_model.noise import DataModelHyper
from popz.emulate.batching import batched_apply
from popz.errors import PopzError
from popz.infer.likelihood import Observation, corrected_for_zero_points, log_likelihood_of_model_flux

__all__ = ["CalibrationSettings", "CalibrationResult", "HyperSpace", "ProposalBank", "calibrate", "draw_proposals"]


class CalibrationSettings(NamedTuple):
    """How ``popz calibrate`` runs.

    n_proposals : int            proposals per galaxy (K)
    proposal_scale : float       the flow's base variable drawn with this standard deviation
    rounds : int                 proposal refreshes (each re-conditions q on the recalibrated fluxes)
    n_chains : int               independent Metropolis-Hastings chains in the last round
    n_steps : int                steps per chain (the first n_burn discarded)
    n_burn : int
    zero_point_prior_mag : float prior standard deviation of each zero-point offset, mag
    reference_band : int or None a band whose offsets are held at 0 (prior sd REFERENCE_PRIOR_MAG) in every tract: the
                                 zero-points become colours relative to it, with no grey term (degenerate with mass)
    floor_max : float            error floors uniform on [0, floor_max]
    min_floor : float            floors below this are treated as this (keeps ln floor finite)
    free_hyper : tuple of str    population hyperparameters to calibrate (the rest stay at the config's values)
    zero_points, floors : bool   calibrate them (else fixed at 1 and at ``fixed_floor``)
    fixed_floor : float
    batch_size : int             galaxies per proposal batch
    gaussian_share : float       share of proposals from the per-galaxy Gaussians, once there are any (the rest from q)
    keep_covariance : bool       later rounds refit only the Gaussians' means to the weighted proposals, keeping the
                                 initial covariances (fitted to many MCMC samples: steadier than a refit to K proposals)
    seed : int
    """

    n_proposals: int = 128
    proposal_scale: float = 1.5
    rounds: int = 2
    n_chains: int = 4
    n_steps: int = 1000
    n_burn: int = 200
    zero_point_prior_mag: float = 0.05
    reference_band: int | None = None
    floor_max: float = 0.3
    min_floor: float = 1e-4
    free_hyper: tuple = ()
    zero_points: bool = True
    floors: bool = True
    fixed_floor: float = 0.02
    batch_size: int = 2048
    gaussian_share: float = 0.5
    keep_covariance: bool = False
    seed: int = 0


class ProposalBank(NamedTuple):
    """Importance-sampling proposals of N galaxies, with what the calibration needs of them.

    The stellar mass of a proposal is stored relative to the best-fitting mass
    given its other parameters and the zero-points it was drawn with
    (``mass_offset``): when the zero-points change, each proposal's mass
    follows its best fit (a shear of unit Jacobian, so the proposal density is
    unchanged), and a tract's common flux scale is free to move.

    theta : (N, K, D) proposals as drawn
    unit_flux_nJy : (N, K, B) emulated fluxes for 10^10 Msun (before zero-points and extinction; 1 Msun
                    would underflow float32 in the gradient of the best-fitting mass)
    emulator_error_mag : (N, K, B) (depends on redshift only, so on no zero-point)
    log_q : (N, K) ln density of the proposals
    mass_offset : (N, K) log M - best-fitting log M at the drawing zero-points, dex
    """

    theta: jax.Array
    unit_flux_nJy: jax.Array
    emulator_error_mag: jax.Array
    log_q: jax.Array
    mass_offset: jax.Array


REFERENCE_LOG_MASS = 10.0
REFERENCE_PRIOR_MAG = 1e-3  # prior sd of a reference band's zero-point offsets: held, without changing eta's layout


def _best_log_mass(unit_flux, obs: Observation, zero_point, extinction, lower: float, upper: float):
    """Best-fitting log M (..., ) of proposals with fluxes for 10^REFERENCE_LOG_MASS Msun ``unit_flux`` (..., B),
    clipped to the bounds."""
    from popz.infer.fit import _best_amplitude

    calibration = zero_point[obs.tract_index] * extinction.transmission(obs.ebv)
    amplitude = _best_amplitude(unit_flux * calibration, obs)
    return jnp.clip(REFERENCE_LOG_MASS + jnp.log10(jnp.maximum(amplitude, 1e-30)), lower, upper)


class HyperSpace(NamedTuple):
    """The unconstrained vector eta and what it stands for.

    n_tracts, n_bands : zero-point table (T, B) without the default row
    zero_points, floors : whether they are free
    free_hyper : names of free population hyperparameters (P)
    hyper_index : (P,) their positions in the prior's hyperparameter vector
    """

    n_tracts: int
    n_bands: int
    zero_points: bool
    floors: bool
    free_hyper: tuple
    hyper_index: tuple

    @property
    def size(self) -> int:
        return self.n_tracts * self.n_bands * self.zero_points + self.n_bands * self.floors + len(self.free_hyper)

    def names(self, band_labels, tract_ids) -> list[str]:
        out = []
        if self.zero_points:
            out += [f"zp_mag[{t}][{b}]" for t in tract_ids for b in band_labels]
        if self.floors:
            out += [f"ln_floor[{b}]" for b in band_labels]
        return out + list(self.free_hyper)

    def split(self, eta):
        """(zero-point offsets (T, B) mag or None, ln floors (B,) or None, free hyper (P,))."""
        i = 0
        zp = fl = None
        if self.zero_points:
            zp = eta[: self.n_tracts * self.n_bands].reshape(self.n_tracts, self.n_bands)
            i = self.n_tracts * self.n_bands
        if self.floors:
            fl = eta[i : i + self.n_bands]
            i += self.n_bands
        return zp, fl, eta[i:]


class CalibrationResult(NamedTuple):
    """What ``calibrate`` found.

    names : list of str (P_eta,) coordinates of eta
    chains : (n_chains, n_kept, P_eta) post-burn-in draws of eta
    acceptance : (n_chains,) acceptance rate of the last round's chains
    r_hat : (P_eta,) split R-hat across chains
    map_eta, laplace_std : (P_eta,) the last round's maximum and Laplace standard deviations
    zero_points : (T, B) median flux factors (1 where not calibrated); zero_points_std (T, B)
    error_floors : (B,) median floors; error_floors_std (B,)
    hyper : (n_hyper,) the prior's full hyperparameter vector with the free ones at their medians
    hyper_std : dict name -> std of the free ones
    n_used : galaxies whose proposals carried weight (the rest were excluded)
    history : list of dict, one per round (MAP, objective)
    """

    names: list
    chains: np.ndarray
    acceptance: np.ndarray
    r_hat: np.ndarray
    map_eta: np.ndarray
    laplace_std: np.ndarray
    zero_points: np.ndarray
    zero_points_std: np.ndarray
    error_floors: np.ndarray
    error_floors_std: np.ndarray
    hyper: np.ndarray
    hyper_std: dict
    n_used: int
    history: list


class GaussianProposal(NamedTuple):
    """Per-galaxy Gaussians in the flow's standardised logit coordinates u: mean (N, D), Cholesky factor (N, D, D)."""

    mean: jax.Array
    chol: jax.Array


def fit_gaussians(theta, log_weights, flow, inflate: float = 1.5, jitter: float = 0.05) -> GaussianProposal:
    """Importance-weighted mean and covariance of each galaxy's proposals theta (N, K, D) in u, the covariance
    inflated by ``inflate``^2 and regularised by ``jitter``^2 on the diagonal (a few effective draws make a
    singular one)."""
    u, _ = flow.to_u(theta)  # (N, K, D)
    w = jax.nn.softmax(jnp.where(jnp.isfinite(log_weights), log_weights, -jnp.inf), axis=1)
    w = jnp.where(jnp.isfinite(w), w, 1.0 / w.shape[1])
    mean = jnp.einsum("nk,nkd->nd", w, u)
    centred = u - mean[:, None, :]
    cov = jnp.einsum("nk,nkd,nke->nde", w, centred, centred)
    d = u.shape[-1]
    cov = inflate**2 * cov + jitter**2 * jnp.eye(d)
    return GaussianProposal(mean, jnp.linalg.cholesky(cov))


def draw_proposals(
    key, observations: Observation, *, flow, emulator, prior, hyper, zero_point, extinction, settings: CalibrationSettings,
    gaussians: GaussianProposal | None = None,
) -> ProposalBank:
    """K proposals per galaxy, in batches, from q conditioned on the zero-point-corrected fluxes (broadened by
    ``proposal_scale``); with ``gaussians``, from the defensive mixture (1 - a) q + a Gaussian (q unbroadened),
    a = ``settings.gaussian_share``."""
    n = observations.flux_nJy.shape[0]
    k, scale = settings.n_proposals, settings.proposal_scale
    if gaussians is None:
        d = prior.config.n_parameters
        gaussians = GaussianProposal(jnp.zeros((n, d)), jnp.zeros((n, d, d)))
        mixture = False
    else:
        mixture = True
    n_gauss = int(round(k * settings.gaussian_share))
    if mixture and not 0 < n_gauss < k:
        raise PopzError(f"gaussian_share {settings.gaussian_share} leaves no proposal to q or none to the Gaussians of {k}")
    keys = jax.random.split(key, n)
    parts = []
    for start in range(0, n, settings.batch_size):
        sl = slice(start, start + settings.batch_size)
        obs = jax.tree.map(lambda a: a[sl], observations)
        parts.append(_proposal_batch(
            keys[sl], obs, flow, emulator, zero_point, hyper, gaussians.mean[sl], gaussians.chol[sl], extinction,
            prior=prior, k=k, n_gauss=n_gauss, mixture=mixture, scale=scale,
        ))  # fmt: skip
    return ProposalBank(*(jnp.concatenate([p[i] for p in parts]) for i in range(5)))


@eqx.filter_jit
def _proposal_batch(keys, obs, flow, emulator, zero_point, hyper, mean, chol, extinction, *, prior, k: int, n_gauss: int, mixture: bool, scale: float):
    """One batch of :func:`draw_proposals` (module level, so that its compiled program is reused from round to round:
    the prior and the counts are static, every array an argument)."""
    share = n_gauss / k

    def one(key, obs, mean, chol):
        obs_c = corrected_for_zero_points(obs, zero_point)
        k_flow, k_gauss = jax.random.split(key)
        if mixture:
            theta_q, _ = flow.sample_and_log_prob(k_flow, obs_c, k - n_gauss, 1.0)
            u_g = mean + jax.random.normal(k_gauss, (n_gauss, mean.shape[0])) @ chol.T
            theta_g, _ = flow.to_theta(u_g)
            theta = jnp.concatenate([theta_q, theta_g])
            log_flow = flow.log_prob(theta, obs_c)
            u, log_jac = flow.to_u(theta)
            z = jax.scipy.linalg.solve_triangular(chol, (u - mean).T, lower=True).T
            log_gauss_u = -0.5 * jnp.sum(z**2, axis=-1) - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * mean.shape[0] * np.log(2 * np.pi)
            log_q = jnp.logaddexp(np.log1p(-share) + log_flow, np.log(share) + log_gauss_u + log_jac)
        else:
            theta, log_q = flow.sample_and_log_prob(k_flow, obs_c, k, scale)
        mass = emulator.inputs.mass_index
        unit = jax.vmap(emulator.flux_nJy)(theta.at[:, mass].set(REFERENCE_LOG_MASS))
        err = jax.vmap(emulator.error_mag)(theta)
        lp = jax.vmap(lambda t: prior.log_prob(t, hyper))(theta)
        best = _best_log_mass(unit, obs, zero_point, extinction, prior.lower[mass], prior.upper[mass])
        # a proposal outside the prior's support gets no weight: marked by a non-finite density. So does one on a
        # bound: the flow's logit saturated in float32 (a broadened draw far in a tail), its density is meaningless
        # (ln q of 200 and more) and its fluxes, at a corner of the emulator's domain, can overflow once scaled
        interior = jnp.all((theta > prior.lower) & (theta < prior.upper), axis=-1)
        return theta, unit, err, jnp.where(jnp.isfinite(lp) & interior, log_q, -jnp.inf), theta[:, mass] - best

    return jax.vmap(one)(keys, obs, mean, chol)


def _sanitised(bank: ProposalBank) -> tuple[ProposalBank, jax.Array, jax.Array]:
    """The bank with unusable proposals replaced by a usable one, their mask (N, K), and the galaxies with any (N,).

    Unusable: outside the prior's support or on its bounds (a saturated logit, see
    :func:`draw_proposals`), or non-finite density or flux. The
    replacement keeps every value (and so every gradient) finite; the mask then
    gives those proposals zero weight. A galaxy without any usable proposal
    keeps all of them, replaced, and is left out of the sum by the second mask.
    """
    valid = (
        jnp.isfinite(bank.log_q) & jnp.isfinite(bank.mass_offset)
        & jnp.all(jnp.isfinite(bank.unit_flux_nJy) & (bank.unit_flux_nJy > 0), axis=-1)
        & jnp.all(jnp.isfinite(bank.emulator_error_mag), axis=-1)
    )  # fmt: skip
    used = jnp.any(valid, axis=1)
    if not bool(jnp.any(valid)):
        raise PopzError("no galaxy has a usable proposal: is the catalog in the model's bands and units?")
    i, k = np.argwhere(np.asarray(valid))[0]
    fill = [a[i, k] for a in bank]
    clean = ProposalBank(*(jnp.where(valid.reshape(valid.shape + (1,) * (a.ndim - 2)), a, f) for a, f in zip(bank, fill)))
    return clean, valid | ~used[:, None], used


def _data_model(space: HyperSpace, eta, settings: CalibrationSettings) -> DataModelHyper:
    zp_mag, ln_floor, _ = space.split(eta)
    t, b = space.n_tracts, space.n_bands
    if zp_mag is None:
        zero_point = jnp.ones((t + 1, b), jnp.float32)
    else:
        zero_point = jnp.concatenate([10.0 ** (-0.4 * zp_mag), jnp.ones((1, b), jnp.float32)])
    floor = jnp.full((b,), settings.fixed_floor, jnp.float32) if ln_floor is None else jnp.exp(ln_floor)
    return DataModelHyper(zero_point, floor, jnp.ones((b,), jnp.float32))


class _Selection(NamedTuple):
    """Monte Carlo selection fraction: population draws (or a histogram of their fluxes) and the cut they must pass.

    pool_theta : (M, D) draws from p(theta | hyper0) (free population hyperparameters only; else (1, D))
    pool_log_prior0 : (M,) their ln p(theta | hyper0)
    pool_flux_nJy : (M,) noiseless flux in the cut band after extinction at the catalog's median E(B-V)
    pool_log_weight : (M,) ln of each element's share of the population (histogram bins, or 1/M per draw)
    band : int; flux_limit_nJy, sigma_nJy : the cut and the flux noise at it
    n_per_tract : (T + 1,) galaxies per tract
    """

    pool_theta: jax.Array
    pool_log_prior0: jax.Array
    pool_flux_nJy: jax.Array
    pool_log_weight: jax.Array
    band: int
    flux_limit_nJy: float
    sigma_nJy: float
    n_per_tract: jax.Array


def make_selection(
    key, *, prior, hyper0, emulator, extinction, observations: Observation, used, n_tracts: int, band: int,
    flux_limit_nJy: float, free_hyper: bool = False, n_pool: int | None = None,
) -> _Selection:
    """The selection term's ingredients for a cut ``flux > flux_limit`` in band ``band``.

    The term enters multiplied by the number of galaxies, so its Monte Carlo
    error must be far smaller than one galaxy's information: with the
    population hyperparameters fixed, 2 million draws are reduced to a fine
    histogram of their fluxes near the limit (cheap to evaluate); with free
    ones, the draws themselves are kept (100,000 by default), to be reweighted.
    The noise at the limit is the catalog's median error there; extinction at
    the catalog's median E(B-V).
    """
    n_pool = n_pool or (100_000 if free_hyper else 2_000_000)
    theta = prior.sample(key, n_pool, hyper0)
    flux = np.asarray(batched_apply(emulator.flux_nJy, theta))[:, band]
    ebv = float(np.median(np.asarray(observations.ebv)))
    flux = flux * float(np.asarray(extinction.transmission(jnp.asarray(ebv)))[band])
    f, e = np.asarray(observations.flux_nJy)[:, band], np.asarray(observations.flux_err_nJy)[:, band]
    near = (f > flux_limit_nJy) & (f < 1.5 * flux_limit_nJy)
    sigma = float(np.median(e[near])) if near.sum() > 10 else flux_limit_nJy / 5.0
    counts = _galaxies_per_tract(observations, used, n_tracts)
    if free_hyper:
        log_prior0 = jax.vmap(lambda t: prior.log_prob(t, hyper0))(theta)
        weight = jnp.full((n_pool,), -np.log(n_pool), jnp.float32)
        return _Selection(theta, log_prior0, jnp.asarray(flux, jnp.float32), weight, band, float(flux_limit_nJy), sigma, counts)
    # fluxes more than 1.5 dex below the limit are never detected; above 1 dex, always: one bin each side holds them
    log_f = np.log10(np.maximum(flux[np.isfinite(flux)], 1e-30))
    log_limit = np.log10(flux_limit_nJy)
    edges = np.linspace(log_limit - 1.5, log_limit + 1.0, 5001)
    hist, _ = np.histogram(np.clip(log_f, edges[0], edges[-1] - 1e-9), bins=edges)
    centres = 10.0 ** (0.5 * (edges[1:] + edges[:-1]))
    with np.errstate(divide="ignore"):
        weight = np.log(hist) - np.log(n_pool)
    d = prior.config.n_parameters
    return _Selection(
        jnp.zeros((1, d), jnp.float32), jnp.zeros((1,), jnp.float32), jnp.asarray(centres, jnp.float32),
        jnp.asarray(weight, jnp.float32), band, float(flux_limit_nJy), sigma, counts,
    )  # fmt: skip


def _galaxies_per_tract(observations: Observation, used, n_tracts: int) -> jax.Array:
    """(T + 1,) how many of the galaxies ``used`` (N,) lie in each tract (the last: unknown tract)."""
    tract = np.asarray(observations.tract_index)[np.asarray(used)]
    return jnp.asarray(np.bincount(tract, minlength=n_tracts + 1).astype(np.float32))


def _log_selected_fraction(pool_flux_nJy, flux_limit_nJy, sigma_nJy, zero_point_band, log_weight):
    """ln S per tract (T + 1,): the fraction of the population passing the cut with that tract's zero-point in the cut band.

    pool_flux_nJy : (M,) the pool's noiseless fluxes in the cut band; zero_point_band : (T + 1,);
    log_weight : (M,) ln of each pool element's share of the population (reweighted to the current hyperparameters).
    """
    from jax.scipy.special import log_ndtr

    flux = zero_point_band[:, None] * pool_flux_nJy[None, :]
    log_p = log_ndtr((flux - flux_limit_nJy) / sigma_nJy)
    return jax.nn.logsumexp(log_p + log_weight[None, :], axis=1)


class _Objective:
    """ln p(eta | data) up to a constant, with its gradient, Hessian-vector products and the per-proposal weights.

    The large arrays (proposals, catalog, selection pool) are arguments of the jitted functions, not constants, and
    the jitted functions are shared by every round of a calibration (:func:`_objective_programs`): a round costs
    no compilation.
    """

    def __init__(self, programs, args):
        self.args = args
        self._value_and_grad, self._batch, self._hvp, self._thetas, self._log_weights = programs

    def value_and_grad(self, eta):
        return self._value_and_grad(jnp.asarray(eta, jnp.float32), self.args)

    def values(self, etas):
        """ln p at several eta (n, P) at once: (n,)."""
        return self._batch(jnp.asarray(etas, jnp.float32), self.args)

    def hvp(self, eta, v):
        return self._hvp(jnp.asarray(eta, jnp.float32), jnp.asarray(v, jnp.float32), self.args)

    def thetas(self, eta):
        """(N, K, D) the proposals at eta (their masses follow the zero-points)."""
        return self._thetas(jnp.asarray(eta, jnp.float32), self.args)

    def log_weights(self, eta):
        """(N, K) ln of each proposal's importance weight at eta."""
        return self._log_weights(jnp.asarray(eta, jnp.float32), self.args)


@functools.lru_cache(maxsize=8)
def _objective_programs(space: HyperSpace, prior, hyper0_bytes: bytes, settings: CalibrationSettings, static_selection):
    """The jitted (value and gradient, batched values, Hessian-vector product, proposals at eta, log weights) of the
    calibration objective, for one hyperparameter space, prior, hyperparameters (float32 bytes) and settings:
    cached, so that later rounds (and later calls with the same set-up) reuse the compiled programs. Everything
    that changes from round to round (proposals, catalog, extinction, selection pool) is in ``args``:
    (bank, valid, used, observations, selection arrays, extinction, a safe theta (D,))."""
    hyper0 = jnp.asarray(np.frombuffer(hyper0_bytes, np.float32))

    def log_prior_eta(eta):
        return _log_prior_eta(space, settings, prior, hyper0, eta)

    mass = prior.config.parameter_names.index("log_stellar_mass")
    lower, upper = float(prior.lower[mass]), float(prior.upper[mass])

    def proposals_at(eta, args):
        """theta (N, K, D) and model fluxes (N, K, B) of the proposals at eta (masses at their best fit plus offset),
        and whether the mass stays inside the bounds (N, K)."""
        bank, _, _, observations, _, extinction, _ = args
        zero_point = _data_model(space, eta, settings).zero_point

        def galaxy(obs, theta, unit, offset):
            log_mass = _best_log_mass(unit, obs, zero_point, extinction, lower, upper) + offset
            inside = (log_mass >= lower) & (log_mass <= upper)
            log_mass = jnp.clip(log_mass, lower, upper)
            return theta.at[:, mass].set(log_mass), unit * (10.0 ** (log_mass - REFERENCE_LOG_MASS))[:, None], inside

        return jax.vmap(galaxy)(observations, bank.theta, bank.unit_flux_nJy, bank.mass_offset)

    def log_weights(eta, args):
        bank, valid, _, observations, _, extinction, safe_theta = args
        data_model = _data_model(space, eta, settings)
        _, _, free = space.split(eta)
        hyper = _full_hyper(space, hyper0, free)
        theta, flux, inside = proposals_at(eta, args)

        def galaxy(obs, valid, theta, flux, err, log_q):
            log_l = jax.vmap(lambda f, e: log_likelihood_of_model_flux(f, e, obs, hyper=data_model, extinction=extinction))(flux, err)
            # the prior is evaluated at a point inside its support where a proposal has no weight, so that
            # no infinite value reaches the gradient (a masked -inf still poisons it with NaN)
            safe = jnp.where(valid[:, None], theta, safe_theta)
            lp = jax.vmap(lambda t: prior.log_prob(t, hyper))(safe)
            ok = valid & jnp.isfinite(lp)
            return jnp.where(ok, log_l + jnp.where(ok, lp, 0.0) - log_q, -jnp.inf)

        return jax.vmap(galaxy)(observations, valid & inside, theta, flux, bank.emulator_error_mag, bank.log_q)

    def core(eta, args):
        bank, _, used, _, sel, _, _ = args
        data_model = _data_model(space, eta, settings)
        _, _, free = space.split(eta)
        per_galaxy = jax.nn.logsumexp(log_weights(eta, args), axis=1) - np.log(bank.log_q.shape[1])
        total = jnp.sum(jnp.where(used, per_galaxy, 0.0))
        if sel is not None:
            # N_t galaxies selected in tract t: each of their likelihoods is divided by S_t(eta)
            pool_theta, pool_lp0, pool_flux, pool_log_weight, n_per_tract = sel
            if space.free_hyper:
                lp = jax.vmap(lambda t: prior.log_prob(t, _full_hyper(space, hyper0, free)))(pool_theta)
                ok = jnp.isfinite(lp) & jnp.isfinite(pool_lp0)
                log_ratio = jnp.where(ok, pool_log_weight + jnp.where(ok, lp - pool_lp0, 0.0), -jnp.inf)
            else:
                log_ratio = pool_log_weight
            band, limit, sigma = static_selection
            log_s = _log_selected_fraction(pool_flux, limit, sigma, data_model.zero_point[:, band], log_ratio)
            total = total - jnp.sum(n_per_tract * log_s)
        return total + log_prior_eta(eta), per_galaxy

    value = lambda e, a: core(e, a)[0]  # noqa: E731
    grad = jax.grad(value)
    programs = (
        jax.jit(jax.value_and_grad(value)),
        jax.jit(jax.vmap(value, in_axes=(0, None))),
        jax.jit(lambda e, v, a: jax.jvp(lambda x: grad(x, a), (e,), (v,))[1]),
        jax.jit(lambda eta, args: proposals_at(eta, args)[0]),
        jax.jit(log_weights),
    )
    return programs


def _log_prior_eta(space: HyperSpace, settings: CalibrationSettings, prior, hyper0, eta):
    """ln p(eta), up to a constant: Gaussian zero-point offsets (a reference band held), floors uniform, the
    population's hyperprior."""
    zp_mag, ln_floor, free = space.split(eta)
    total = jnp.asarray(0.0)
    if zp_mag is not None:
        sd = np.full(space.n_bands, settings.zero_point_prior_mag)
        if settings.reference_band is not None:
            sd[settings.reference_band] = REFERENCE_PRIOR_MAG
        total += -0.5 * jnp.sum((zp_mag / sd) ** 2)
    if ln_floor is not None:
        # floor uniform on [0, floor_max], in ln floor: density proportional to floor
        inside = jnp.all((ln_floor <= np.log(settings.floor_max)) & (ln_floor >= np.log(settings.min_floor)))
        total += jnp.where(inside, jnp.sum(ln_floor), -jnp.inf)
    if space.free_hyper:
        total += prior.log_hyperprior(_full_hyper(space, hyper0, free))
    return total


def _log_posterior_fn(space: HyperSpace, sanitised, observations: Observation, *, prior, hyper0, extinction, settings, selection: _Selection | None) -> _Objective:
    """The objective of the calibration (see :class:`_Objective`), from a round's proposals as :func:`_sanitised`
    returns them (bank, valid, used)."""
    bank, valid, used = sanitised
    # observations' non-finite entries in unobserved bands are masked by the likelihood
    static_selection = None if selection is None else (selection.band, selection.flux_limit_nJy, selection.sigma_nJy)
    sel_arrays = None if selection is None else (
        selection.pool_theta, selection.pool_log_prior0, selection.pool_flux_nJy, selection.pool_log_weight, selection.n_per_tract
    )  # fmt: skip
    i, k = np.argwhere(np.asarray(valid & used[:, None]))[0]
    safe_theta = bank.theta[i, k]  # a proposal inside the prior's support (at the drawing zero-points)
    programs = _objective_programs(space, prior, np.asarray(hyper0, np.float32).tobytes(), settings, static_selection)
    return _Objective(programs, (bank, valid, used, observations, sel_arrays, extinction, safe_theta))


def _full_hyper(space: HyperSpace, hyper0, free):
    return jnp.asarray(hyper0).at[jnp.asarray(space.hyper_index, jnp.int32)].set(free) if space.free_hyper else jnp.asarray(hyper0)


def _initial_eta(space: HyperSpace, prior, hyper0, settings: CalibrationSettings) -> np.ndarray:
    parts = []
    if space.zero_points:
        parts.append(np.zeros(space.n_tracts * space.n_bands))
    if space.floors:
        parts.append(np.full(space.n_bands, np.log(max(settings.fixed_floor, 2 * settings.min_floor))))
    parts.append(np.asarray(hyper0)[list(space.hyper_index)] if space.free_hyper else np.zeros(0))
    return np.concatenate(parts).astype(np.float64)


def _maximise(objective: _Objective, eta0: np.ndarray, max_iter: int = 300) -> tuple[np.ndarray, float]:
    from scipy.optimize import minimize

    def f(x):
        v, g = objective.value_and_grad(x)
        v, g = -float(v), -np.asarray(g, np.float64)
        if not (np.isfinite(v) and np.all(np.isfinite(g))):
            return 1e30, np.zeros_like(x)
        return v, g

    if f(eta0)[0] >= 1e30:
        raise PopzError("the calibration's objective is not finite at its starting point")
    res = minimize(f, eta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return res.x, -float(res.fun)


def _laplace_covariance(objective: _Objective, eta: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Inverse of minus the Hessian at eta (P, P), by forward-over-reverse products, made positive definite.

    A column whose forward-over-reverse product is not finite comes from central
    differences of the exact gradient instead (step ``step`` in eta's units).
    This happened on a 20,000-galaxy mock for two zero-points and two floors,
    with a finite objective and gradient: some galaxy's second derivative is not
    finite there. The covariance only shapes the chains' proposal; the chains
    evaluate the posterior exactly.
    """
    p = eta.shape[0]
    columns = []
    for i in range(p):
        unit = np.eye(p)[i]
        column = np.asarray(objective.hvp(eta, unit), np.float64)
        if not np.all(np.isfinite(column)):
            up, down = (np.asarray(objective.value_and_grad(eta + sign * step * unit)[1], np.float64) for sign in (1.0, -1.0))
            column = (up - down) / (2.0 * step)
        columns.append(column)
    hessian = np.stack(columns)
    if not np.all(np.isfinite(hessian)):
        raise PopzError("the calibration's curvature at its maximum is not finite: try more --proposals, or fewer free hyperparameters")
    hessian = 0.5 * (hessian + hessian.T)
    w, v = np.linalg.eigh(-hessian)
    w = np.maximum(w, 1e-6 * max(w.max(), 1e-12))
    return (v / w) @ v.T


PROBE = 64  # proposals evaluated before the chains give up on a posterior that is nowhere finite


def _independence_chains(key, objective, mean: np.ndarray, cov: np.ndarray, settings: CalibrationSettings, dof: float = 6.0):
    """Independent Metropolis-Hastings with a multivariate-t proposal; returns chains (C, n_steps, P) and acceptance (C,).

    Raises PopzError when no chain accepts a proposal: at once if the first ``PROBE`` proposals are all non-finite.
    """
    p = mean.shape[0]
    chol = np.linalg.cholesky(cov * 1.2**2)
    c, n = settings.n_chains, settings.n_steps
    k_z, k_g, k_u = jax.random.split(key, 3)
    z = np.asarray(jax.random.normal(k_z, (c, n + 1, p)), np.float64)
    g = np.asarray(jax.random.gamma(k_g, dof / 2.0, (c, n + 1)), np.float64) / (dof / 2.0)
    proposals = mean + (z @ chol.T) / np.sqrt(g)[..., None]
    # ln density of the multivariate t up to a constant
    maha = np.einsum("cni,cni->cn", z, z)
    # the proposal's Mahalanobis distance is |z|^2 / g
    log_q = -0.5 * (dof + p) * np.log1p(maha / (g * dof))
    flat = proposals.reshape(-1, p)
    block = 4  # evaluations at once: each holds N x K x B intermediates
    pad = -len(flat) % block
    padded = np.concatenate([flat, np.repeat(flat[-1:], pad, axis=0)])
    values = []
    for i in range(0, len(padded), block):
        values.append(np.asarray(objective.values(padded[i : i + block]), np.float64))
        # the proposals are independent draws around the maximum: if the first PROBE are all non-finite, the rest
        # will be too; stop now, not after every evaluation (40 min for 1,000 galaxies and 10 free hyperparameters)
        if i + block == PROBE and not np.any(np.isfinite(np.concatenate(values))):
            raise PopzError("the calibration's chains accepted no proposal: the posterior is not finite around its maximum")
    log_pi = np.concatenate(values)[: len(flat)].reshape(c, n + 1)
    log_u = np.log(np.asarray(jax.random.uniform(k_u, (c, n)), np.float64))
    chains = np.empty((c, n, p))
    accepted = np.zeros(c)
    for i in range(c):
        cur, cur_w = proposals[i, 0], log_pi[i, 0] - log_q[i, 0]
        for s in range(n):
            new_w = log_pi[i, s + 1] - log_q[i, s + 1]
            if np.isfinite(new_w) and (log_u[i, s] < new_w - cur_w or not np.isfinite(cur_w)):
                cur, cur_w = proposals[i, s + 1], new_w
                accepted[i] += 1
            chains[i, s] = cur
    if not np.any(accepted > 0):
        raise PopzError("the calibration's chains accepted no proposal: the posterior is not finite around its maximum")
    return chains, accepted / n


def data_model_summary(space: HyperSpace, settings: CalibrationSettings, draws: np.ndarray):
    """Medians and standard deviations of the zero-points (T, B) and floors (B,) over draws of eta (n, P): (zero-points,
    their std, floors, their std); 1 and the fixed floor, with std 0, where they were not calibrated."""
    t, b = space.n_tracts, space.n_bands
    if space.zero_points:
        zp_draws = 10.0 ** (-0.4 * draws[:, : t * b].reshape(-1, t, b))
        zero_points, zero_points_std = np.median(zp_draws, axis=0), zp_draws.std(axis=0)
    else:
        zero_points, zero_points_std = np.ones((t, b)), np.zeros((t, b))
    if space.floors:
        i = t * b * space.zero_points
        floor_draws = np.exp(draws[:, i : i + b])
        return zero_points, zero_points_std, np.median(floor_draws, axis=0), floor_draws.std(axis=0)
    return zero_points, zero_points_std, np.full(b, settings.fixed_floor), np.zeros(b)


def _rhat_across_chains(chains: np.ndarray) -> np.ndarray:
    """Split R-hat (P,) over C chains of shape (C, n, P), each split in halves."""
    n = chains.shape[1] // 2
    halves = np.concatenate([chains[:, :n], chains[:, n : 2 * n]], axis=0)
    means = halves.mean(axis=1)
    within = halves.var(axis=1, ddof=1).mean(axis=0)
    between = n * means.var(axis=0, ddof=1)
    var_plus = (n - 1) / n * within + between / n
    return np.sqrt(var_plus / np.where(within > 0, within, np.inf))


def calibrate(
    observations: Observation,
    *,
    n_tracts: int,
    flow,
    emulator,
    prior,
    extinction,
    settings: CalibrationSettings = CalibrationSettings(),
    selection_band: int | None = None,
    selection_flux_nJy: float | None = None,
    initial_gaussians: GaussianProposal | None = None,
    progress=None,
) -> CalibrationResult:
    """Hyperparameters from a catalog's photometry alone (see the module docstring).

    ``observations``: tract_index in 0..n_tracts-1 (row n_tracts: unknown tract, zero-points fixed at 1).
    ``selection_band`` / ``selection_flux_nJy``: the catalog's cut, used for the selection term when
    population hyperparameters are free. ``progress(message)`` is told what each stage does.
    ``initial_gaussians``: per-galaxy Gaussians (in ``flow``'s u) that join the first round's proposals already
    (e.g. fitted to MCMC samples: :mod:`popz.infer.sample_proposals`, where no posterior flow knows the bands).
    """
    say = progress or (lambda message: None)
    hyper0 = prior.hyper()
    unknown = [h for h in settings.free_hyper if h not in prior.hyper_names]
    if unknown:
        raise PopzError(f"unknown population hyperparameter(s) {unknown}; the model has {list(prior.hyper_names)}")
    n_bands = observations.flux_nJy.shape[1]
    space = HyperSpace(
        n_tracts, n_bands, settings.zero_points, settings.floors, tuple(settings.free_hyper),
        tuple(prior.hyper_names.index(h) for h in settings.free_hyper),
    )  # fmt: skip
    if space.size == 0:
        raise PopzError("nothing to calibrate: zero-points, floors and population hyperparameters are all fixed")
    if space.free_hyper and (selection_band is None or selection_flux_nJy is None):
        raise PopzError("free population hyperparameters need the catalog's selection (band and limit)")
    key = jax.random.key(settings.seed)
    eta = _initial_eta(space, prior, hyper0, settings)
    history = []
    gaussians = initial_gaussians
    selection = None
    for r in range(settings.rounds):
        say(f"round {r + 1}/{settings.rounds}: {settings.n_proposals} proposals per galaxy")
        zero_point = _data_model(space, jnp.asarray(eta, jnp.float32), settings).zero_point
        bank = draw_proposals(
            jax.random.fold_in(key, r), observations, flow=flow, emulator=emulator, prior=prior,
            hyper=hyper0, zero_point=zero_point, extinction=extinction, settings=settings, gaussians=gaussians,
        )  # fmt: skip
        sanitised = _sanitised(bank)
        used = sanitised[2]
        if selection_band is not None and selection_flux_nJy is not None:
            if selection is None:
                selection = make_selection(
                    jax.random.fold_in(key, 7_000), prior=prior, hyper0=hyper0, emulator=emulator, extinction=extinction,
                    observations=observations, used=used, n_tracts=n_tracts, band=selection_band,
                    flux_limit_nJy=selection_flux_nJy, free_hyper=bool(space.free_hyper),
                )  # fmt: skip
            else:  # the same population pool every round (millions of emulator calls); only the galaxies used change
                selection = selection._replace(n_per_tract=_galaxies_per_tract(observations, used, n_tracts))
        objective = _log_posterior_fn(
            space, sanitised, observations, prior=prior, hyper0=hyper0, extinction=extinction, settings=settings,
            selection=selection,
        )  # fmt: skip
        say(f"round {r + 1}: maximum a posteriori over {space.size} hyperparameters")
        eta, best = _maximise(objective, eta)
        n_used = int(used.sum())
        # the next round's proposals: q beside a Gaussian fitted to this round's weighted proposals
        refit = fit_gaussians(objective.thetas(eta), objective.log_weights(eta), flow)
        gaussians = refit if gaussians is None or not settings.keep_covariance else refit._replace(chol=gaussians.chol)
        history.append({"round": r + 1, "log_posterior": best, "map": eta.tolist(), "n_used": n_used})
    say("Laplace approximation")
    cov = _laplace_covariance(objective, eta)
    say(f"{settings.n_chains} chains x {settings.n_steps} steps (independence Metropolis-Hastings)")
    try:
        chains, acceptance = _independence_chains(jax.random.fold_in(key, 10_000), objective, eta, cov, settings)
    except PopzError as error:  # what was found is not lost: the maximum and the Laplace widths go with the error
        names = space.names([str(b) for b in range(n_bands)], list(range(n_tracts)))
        found = ", ".join(f"{n} {v:.4g} +/- {s:.2g}" for n, v, s in zip(names, eta, np.sqrt(np.abs(np.diag(cov)))))
        raise PopzError(f"{error}; ln p {best:.1f} at the maximum: {found}") from None
    kept = chains[:, settings.n_burn :]
    flat = kept.reshape(-1, kept.shape[-1])
    r_hat = _rhat_across_chains(kept)
    zero_points, zero_points_std, error_floors, error_floors_std = data_model_summary(space, settings, flat)
    hyper = np.asarray(hyper0, np.float64).copy()
    hyper_std = {}
    if space.free_hyper:
        free_draws = flat[:, -len(space.free_hyper) :]
        hyper[list(space.hyper_index)] = np.median(free_draws, axis=0)
        hyper_std = {name: float(s) for name, s in zip(space.free_hyper, free_draws.std(axis=0))}
    return CalibrationResult(
        names=space.names([str(b) for b in range(n_bands)], list(range(n_tracts))), chains=kept, acceptance=acceptance,
        r_hat=r_hat, map_eta=eta, laplace_std=np.sqrt(np.diag(cov)), zero_points=zero_points,
        zero_points_std=zero_points_std, error_floors=error_floors, error_floors_std=error_floors_std, hyper=hyper,
        hyper_std=hyper_std, n_used=n_used, history=history,
    )  # fmt: skip
