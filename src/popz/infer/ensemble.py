"""Affine-invariant ensemble MCMC for one target, written to be vmapped over many galaxies at once.

An ensemble of W walkers in D dimensions. Each step updates the two halves of
the ensemble in turn, each walker in one half moving against walkers of the
other half (the parallel scheme of Foreman-Mackey et al. 2013), with either

- the stretch move (Goodman & Weare 2010): Y = X_j + s (X_k - X_j),
  s ~ g(s) proportional to 1/sqrt(s) on [1/a, a], accepted with
  min(1, s^(D-1) p(Y) / p(X_k)); or
- the differential-evolution move (ter Braak 2006; Nelson et al. 2014):
  Y = X_k + gamma (X_i - X_j) + small noise, accepted with min(1, p(Y)/p(X_k)).
  With gamma = 1 (``p_mode_hop`` of DE steps) a walker jumps by exactly the
  vector between two other walkers, which carries it between modes when the
  ensemble spans them.

Everything is a pure function of (key, state), in the style of blackjax:
:func:`init` builds an :class:`EnsembleState`, :func:`step` advances it one
step, :func:`sample` scans ``n_steps`` steps and returns the chain.
``logdensity_fn(x)`` takes one point (D,) and returns a scalar (``-inf`` outside
the support). To run G galaxies at once, vmap :func:`sample` (or a function
that builds ``logdensity_fn`` from one galaxy's data) over the galaxies.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["EnsembleState", "EnsembleInfo", "MoveSettings", "init", "step", "sample"]


class EnsembleState(NamedTuple):
    """position : (W, D) walkers; log_density : (W,) their log densities."""

    position: jax.Array
    log_density: jax.Array


class EnsembleInfo(NamedTuple):
    """acceptance : (W,) float, 1 where the walker's proposal was accepted this step."""

    acceptance: jax.Array


class MoveSettings(NamedTuple):
    """Which move each step makes.

    stretch_a : float     scale of the stretch move (2 in Goodman & Weare)
    p_de : float          probability that a step is a differential-evolution step
    p_mode_hop : float    probability that a DE step uses gamma = 1 (mode hopping)
    de_noise : float      standard deviation of the DE move's jitter, relative to the walkers' spread
    """

    stretch_a: float = 2.0
    p_de: float = 0.2
    p_mode_hop: float = 0.5
    de_noise: float = 1e-4


def init(position: jax.Array, logdensity_fn: Callable) -> EnsembleState:
    """The state of walkers at ``position`` (W, D); W must be even and at least 4."""
    position = jnp.asarray(position)
    n_walkers = position.shape[0]
    if n_walkers % 2 or n_walkers < 4:
        raise ValueError(f"an ensemble needs an even number of walkers, at least 4; got {n_walkers}")
    return EnsembleState(position, jax.vmap(logdensity_fn)(position))


def _half_update(key, moving, moving_lp, others, logdensity_fn, de: jax.Array, gamma_de, settings: MoveSettings):
    """Propose and accept/reject for each walker of ``moving`` (H, D) against ``others`` (H, D)."""
    h, d = moving.shape
    k_pick, k_s, k_pick2, k_noise, k_acc = jax.random.split(key, 5)
    j = jax.random.randint(k_pick, (h,), 0, others.shape[0])
    # second partner for DE, distinct from the first
    i2 = (j + 1 + jax.random.randint(k_pick2, (h,), 0, others.shape[0] - 1)) % others.shape[0]
    a = settings.stretch_a
    s = ((a - 1.0) * jax.random.uniform(k_s, (h,)) + 1.0) ** 2 / a
    stretch = others[j] + s[:, None] * (moving - others[j])
    spread = jnp.std(others, axis=0)
    noise = settings.de_noise * spread * jax.random.normal(k_noise, (h, d))
    de_prop = moving + gamma_de * (others[j] - others[i2]) + noise
    proposal = jnp.where(de, de_prop, stretch)
    log_ratio_extra = jnp.where(de, 0.0, (d - 1.0) * jnp.log(s))
    proposal_lp = jax.vmap(logdensity_fn)(proposal)
    log_accept = log_ratio_extra + proposal_lp - moving_lp
    accept = jnp.log(jax.random.uniform(k_acc, (h,))) < jnp.where(jnp.isnan(log_accept), -jnp.inf, log_accept)
    new = jnp.where(accept[:, None], proposal, moving)
    new_lp = jnp.where(accept, proposal_lp, moving_lp)
    return new, new_lp, accept.astype(jnp.float32)


def step(key: jax.Array, state: EnsembleState, logdensity_fn: Callable, settings: MoveSettings = MoveSettings()):
    """One ensemble step (both halves updated once); returns (state, info)."""
    w, d = state.position.shape
    half = w // 2
    k_move, k_hop, k0, k1 = jax.random.split(key, 4)
    de = jax.random.uniform(k_move) < settings.p_de
    hop = jax.random.uniform(k_hop) < settings.p_mode_hop
    gamma_de = jnp.where(hop, 1.0, 2.38 / jnp.sqrt(2.0 * d))
    first, second = state.position[:half], state.position[half:]
    first_lp, second_lp = state.log_density[:half], state.log_density[half:]
    first, first_lp, acc0 = _half_update(k0, first, first_lp, second, logdensity_fn, de, gamma_de, settings)
    second, second_lp, acc1 = _half_update(k1, second, second_lp, first, logdensity_fn, de, gamma_de, settings)
    state = EnsembleState(jnp.concatenate([first, second]), jnp.concatenate([first_lp, second_lp]))
    return state, EnsembleInfo(jnp.concatenate([acc0, acc1]))


def sample(
    key: jax.Array,
    state: EnsembleState,
    logdensity_fn: Callable,
    n_steps: int,
    *,
    thin: int = 1,
    settings: MoveSettings = MoveSettings(),
):
    """Run ``n_steps`` steps; return (final state, chain (n_steps // thin, W, D), log densities, acceptance rate per walker).

    The chain keeps every ``thin``-th step. The acceptance rate (W,) is over all steps.
    """
    if n_steps % thin:
        raise ValueError(f"n_steps ({n_steps}) must be a multiple of thin ({thin})")

    def one(carry, k):
        st, acc = carry
        keys = jax.random.split(k, thin)

        def inner(c, kk):
            s, a = c
            s, info = step(kk, s, logdensity_fn, settings)
            return (s, a + info.acceptance), None

        (st, acc), _ = jax.lax.scan(inner, (st, acc), keys)
        return (st, acc), (st.position, st.log_density)

    keys = jax.random.split(key, n_steps // thin)
    (state, acc), (chain, chain_lp) = jax.lax.scan(one, (state, jnp.zeros(state.position.shape[0])), keys)
    return state, chain, chain_lp, acc / n_steps


def rescue_stragglers(key: jax.Array, state: EnsembleState, logdensity_fn: Callable, threshold: float) -> EnsembleState:
    """Move walkers whose log density is more than ``threshold`` below the ensemble median onto others (burn-in only).

    A walker stranded alone in a minor local maximum cannot leave it (stretch and
    DE moves need partners nearby). Each straggler restarts at a randomly chosen
    walker above the cut, jittered by 1% of the good walkers' spread. This breaks
    detailed balance, so use it during burn-in, never while keeping samples.
    """
    lp = state.log_density
    good = lp >= jnp.median(lp) - threshold
    k_pick, k_jitter = jax.random.split(key)
    # random good partner for every walker: sample indices with probability proportional to `good`
    partner = jax.random.categorical(k_pick, jnp.where(good, 0.0, -jnp.inf), shape=lp.shape)
    n_good = jnp.sum(good)
    mean = jnp.sum(jnp.where(good[:, None], state.position, 0.0), axis=0) / n_good
    squares = jnp.where(good[:, None], (state.position - mean) ** 2, 0.0)
    spread = jnp.sqrt(jnp.sum(squares, axis=0) / jnp.maximum(n_good - 1, 1))
    moved = state.position[partner] + 0.01 * spread * jax.random.normal(k_jitter, state.position.shape)
    position = jnp.where(good[:, None], state.position, moved)
    moved_lp = jax.vmap(logdensity_fn)(position)
    log_density = jnp.where(good, lp, moved_lp)
    return EnsembleState(position, log_density)
