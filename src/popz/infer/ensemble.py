"""Affine-invariant ensemble MCMC for one target, written to be vmapped over many galaxies at once.

An ensemble of W walkers in D dimensions. Each step updates the two halves of
the ensemble in turn, each walker in one half moving against walkers of the
other half (the parallel scheme of Foreman-Mackey et al. 2013), with either

- the stretch move (Goodman & Weare 2010): Y = X_j + s (X_k - X_j),
  s ~ g(s) proportional to 1/sqrt(s) on [1/a, a], accepted with
  min(1, s^(D-1) p(Y) / p(X_k)); or
- the differential-evolution move (ter Braak 2006; Nelson et al. 2014):
  Y = X_k + gamma (X_i - X_j) + small uniform jitter, accepted with min(1, p(Y)/p(X_k)).
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
    """position : (W, D) walkers; log_density : (W,) their log densities;
    aux : (W, ...) what ``logdensity_fn`` returned beside each density (``init(..., has_aux=True)``), else None."""

    position: jax.Array
    log_density: jax.Array
    aux: jax.Array | None = None


def _evaluate(logdensity_fn, position, has_aux: bool):
    """(log densities (n,), aux (n, ...) or None) of the points ``position`` (n, D)."""
    if has_aux:
        return jax.vmap(logdensity_fn)(position)
    return jax.vmap(logdensity_fn)(position), None


def _select(keep_new, new, old):
    """Per-walker choice between two (n, ...) arrays (or Nones) by ``keep_new`` (n,)."""
    if old is None:
        return None
    return jnp.where(keep_new.reshape(keep_new.shape + (1,) * (old.ndim - 1)), new, old)


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


def init(position: jax.Array, logdensity_fn: Callable, has_aux: bool = False) -> EnsembleState:
    """The state of walkers at ``position`` (W, D); W must be even and at least 4.

    ``has_aux``: ``logdensity_fn`` returns (log density, aux) and the state and
    chain carry each walker's aux (something computed with the density that is
    worth keeping, so that it need not be recomputed for the kept draws).
    """
    position = jnp.asarray(position)
    n_walkers = position.shape[0]
    if n_walkers % 2 or n_walkers < 4:
        raise ValueError(f"an ensemble needs an even number of walkers, at least 4; got {n_walkers}")
    return EnsembleState(position, *_evaluate(logdensity_fn, position, has_aux))


def _half_update(key, moving, moving_lp, moving_aux, others, logdensity_fn, de: jax.Array, gamma_de, settings: MoveSettings):
    """Propose and accept/reject for each walker of ``moving`` (H, D) against ``others`` (H, D)."""
    h, d = moving.shape
    n_others = others.shape[0]
    # one draw of uniforms for everything random in this half-step (fewer PRNG calls: they cost as much as the
    # sampler's arithmetic on a CPU): partner, second DE partner, stretch factor, acceptance, then D for the jitter
    u = jax.random.uniform(key, (h, 4 + d))
    j = jnp.minimum((u[:, 0] * n_others).astype(jnp.int32), n_others - 1)
    # second partner for DE, distinct from the first
    i2 = (j + 1 + jnp.minimum((u[:, 1] * (n_others - 1)).astype(jnp.int32), n_others - 2)) % n_others
    a = settings.stretch_a
    s = ((a - 1.0) * u[:, 2] + 1.0) ** 2 / a
    stretch = others[j] + s[:, None] * (moving - others[j])
    spread = jnp.std(others, axis=0)
    # the DE jitter: uniform on [-sqrt(3), sqrt(3)) x the scale, i.e. the same standard deviation as a normal's
    jitter = jnp.sqrt(3.0) * (2.0 * u[:, 4:] - 1.0)
    de_prop = moving + gamma_de * (others[j] - others[i2]) + settings.de_noise * spread * jitter
    proposal = jnp.where(de, de_prop, stretch)
    log_ratio_extra = jnp.where(de, 0.0, (d - 1.0) * jnp.log(s))
    proposal_lp, proposal_aux = _evaluate(logdensity_fn, proposal, moving_aux is not None)
    log_accept = log_ratio_extra + proposal_lp - moving_lp
    accept = jnp.log(u[:, 3]) < jnp.where(jnp.isnan(log_accept), -jnp.inf, log_accept)
    new = jnp.where(accept[:, None], proposal, moving)
    new_lp = jnp.where(accept, proposal_lp, moving_lp)
    return new, new_lp, _select(accept, proposal_aux, moving_aux), accept.astype(jnp.float32)


def step(key: jax.Array, state: EnsembleState, logdensity_fn: Callable, settings: MoveSettings = MoveSettings()):
    """One ensemble step (both halves updated once); returns (state, info)."""
    w, d = state.position.shape
    half = w // 2
    k_step, k0, k1 = jax.random.split(key, 3)
    u_move, u_hop = jax.random.uniform(k_step, (2,))
    de = u_move < settings.p_de
    hop = u_hop < settings.p_mode_hop
    gamma_de = jnp.where(hop, 1.0, 2.38 / jnp.sqrt(2.0 * d))
    first, second = state.position[:half], state.position[half:]
    first_lp, second_lp = state.log_density[:half], state.log_density[half:]
    aux = state.aux
    first_aux, second_aux = (None, None) if aux is None else (aux[:half], aux[half:])
    first, first_lp, first_aux, acc0 = _half_update(k0, first, first_lp, first_aux, second, logdensity_fn, de, gamma_de, settings)
    second, second_lp, second_aux, acc1 = _half_update(k1, second, second_lp, second_aux, first, logdensity_fn, de, gamma_de, settings)
    aux = None if aux is None else jnp.concatenate([first_aux, second_aux])
    state = EnsembleState(jnp.concatenate([first, second]), jnp.concatenate([first_lp, second_lp]), aux)
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
    With a state that carries aux, the aux of the kept steps (n_steps // thin, W, ...)
    comes fifth.
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
        return (st, acc), (st.position, st.log_density, st.aux)

    keys = jax.random.split(key, n_steps // thin)
    (state, acc), (chain, chain_lp, chain_aux) = jax.lax.scan(one, (state, jnp.zeros(state.position.shape[0])), keys)
    if state.aux is None:
        return state, chain, chain_lp, acc / n_steps
    return state, chain, chain_lp, acc / n_steps, chain_aux


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
    moved_lp, moved_aux = _evaluate(logdensity_fn, position, state.aux is not None)
    log_density = jnp.where(good, lp, moved_lp)
    return EnsembleState(position, log_density, _select(good, state.aux, moved_aux))
