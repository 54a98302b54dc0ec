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
  ensemble spans them; or
- the mode jump: the other half is split into two clusters (2-means), and a
  walker nearer cluster a moves by the vector between the cluster means,
  Y = X + (m_b - m_a) (or back, from b to a); the proposal is rejected unless Y
  lies nearer the other cluster, which makes the move a deterministic involution
  with unit Jacobian, accepted with min(1, p(Y)/p(X)). A DE hop lands at the
  new mode's centre plus the difference of two random walkers of the old mode,
  so in D dimensions its log density falls by about D and it is almost never
  accepted beyond a few dimensions; the mode jump keeps the walker's own offset
  from its mode's centre, which lands it as typical in the other mode as it was
  in its own, and so equalises the walkers' shares of the modes at the rate
  that their densities set.

Everything is a pure function of (key, state), in the style of blackjax:
:func:`init` builds an :class:`EnsembleState`, :func:`step` advances it one
step, :func:`sample` scans ``n_steps`` steps and returns the chain.
``logdensity_fn(x)`` takes one point (D,) and returns a scalar (``-inf`` outside
the support). To run G galaxies at once, vmap :func:`sample` (or a function
that builds ``logdensity_fn`` from one galaxy's data) over the galaxies, and
give them one ``move_key``, not vmapped: they then make the same move at each
step, and only that move's proposal is computed.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["EnsembleState", "EnsembleInfo", "MoveSettings", "init", "step", "sample"]


class EnsembleState(NamedTuple):
    """position : (W, D) walkers; log_density : (W,) their log densities;
    aux : (W, ...) what ``logdensity_fn`` returned beside each density (``init(..., has_aux=True)``), else None;
    context : (W, ...) pytree, each walker's own argument to ``logdensity_fn`` (``init(..., context=...)``), else None."""

    position: jax.Array
    log_density: jax.Array
    aux: jax.Array | None = None
    context: object = None


def _evaluate(logdensity_fn, position, has_aux: bool, context=None):
    """(log densities (n,), aux (n, ...) or None) of the points ``position`` (n, D), each walker with its ``context``."""
    fn = jax.vmap(logdensity_fn)
    out = fn(position) if context is None else fn(position, context)
    return out if has_aux else (out, None)


def _half(context, part: slice):
    return None if context is None else jax.tree.map(lambda a: a[part], context)


def _select(keep_new, new, old):
    """Per-walker choice between two pytrees of (n, ...) arrays (or Nones) by ``keep_new`` (n,)."""
    if old is None:
        return None
    return jax.tree.map(lambda a, b: jnp.where(keep_new.reshape(keep_new.shape + (1,) * (b.ndim - 1)), a, b), new, old)


class EnsembleInfo(NamedTuple):
    """acceptance : (W,) float, 1 where the walker's proposal was accepted this step."""

    acceptance: jax.Array


class MoveSettings(NamedTuple):
    """Which move each step makes (the defaults: benchmarks/RESULTS.md, the SBC sections on a GPU: against 20% DE
    and no mode jumps, on 1,000 simulator mocks, split R-hat of z 1.53 vs 1.79, outliers 6.8% vs 8.1%).

    stretch_a : float     scale of the stretch move (2 in Goodman & Weare)
    p_de : float          probability that a step is a differential-evolution step
    p_mode_hop : float    probability that a DE step uses gamma = 1 (mode hopping)
    de_noise : float      standard deviation of the DE move's jitter, relative to the walkers' spread
    p_jump : float        probability that a step is a mode jump between the other half's two clusters
    """

    stretch_a: float = 2.0
    p_de: float = 0.5
    p_mode_hop: float = 0.5
    de_noise: float = 1e-4
    p_jump: float = 0.1


def init(position: jax.Array, logdensity_fn: Callable, has_aux: bool = False, context=None) -> EnsembleState:
    """The state of walkers at ``position`` (W, D); W must be even and at least 4.

    ``has_aux``: ``logdensity_fn`` returns (log density, aux) and the state and
    chain carry each walker's aux (something computed with the density that is
    worth keeping, so that it need not be recomputed for the kept draws).
    ``context``: a pytree of (W, ...) arrays; walker w's density is then
    ``logdensity_fn(x, context[w])``, a target of its own. A move updates one
    walker given the others held fixed, so it leaves each walker's own target
    invariant whatever the others' are (the replicas of a Gibbs sampler, each
    with its own hyperparameters: :mod:`popz.infer.gibbs`). Replace the
    state's context with ``state._replace(context=...)`` and its log densities
    must be replaced with them.
    """
    position = jnp.asarray(position)
    n_walkers = position.shape[0]
    if n_walkers % 2 or n_walkers < 4:
        raise ValueError(f"an ensemble needs an even number of walkers, at least 4; got {n_walkers}")
    return EnsembleState(position, *_evaluate(logdensity_fn, position, has_aux, context), context)


N_KMEANS = 3  # Lloyd iterations of the 2-means split (from the far-apart seeds, separated modes split at once)


def _two_clusters(others):
    """Means (2, D) of a 2-means split of ``others`` (H, D), and the per-coordinate scale (D,) its distances use.

    Coordinates are scaled by the walkers' spread; the two seeds are the walker
    farthest from the mean and the walker farthest from that one (deterministic:
    the move must be the same function of the other half whichever walker asks).
    """
    std = jnp.std(others, axis=0)
    # a coordinate on which the walkers agree (to float32 rounding) gets scale 1, not a tiny one that would blow the
    # centres' rounding differences up into distances
    scale = jnp.where(std > 1e-6 * (jnp.abs(jnp.mean(others, axis=0)) + 1.0), std, 1.0)
    x = others / scale
    far_a = jnp.argmax(jnp.sum((x - jnp.mean(x, axis=0)) ** 2, axis=1))
    far_b = jnp.argmax(jnp.sum((x - x[far_a]) ** 2, axis=1))

    c_a, c_b = x[far_a], x[far_b]
    # unrolled (a loop is a kernel launch per trip on a GPU), and masked sums rather than a (2, H) @ (H, D) product:
    # as tiny batched matrix products on a CPU, the split cost 10% of a galaxy fit's step (measured)
    for _ in range(N_KMEANS):
        # nearer c_b than c_a: |x - c_b|^2 < |x - c_a|^2, i.e. x . (c_b - c_a) > (|c_b|^2 - |c_a|^2) / 2
        in_b = (jnp.sum(x * (c_b - c_a), axis=1) > 0.5 * (jnp.sum(c_b**2) - jnp.sum(c_a**2)))[:, None]
        n_b = jnp.sum(in_b)
        n_a = x.shape[0] - n_b
        c_a = jnp.where(n_a > 0, jnp.sum(jnp.where(in_b, 0.0, x), axis=0) / jnp.maximum(n_a, 1), c_a)
        c_b = jnp.where(n_b > 0, jnp.sum(jnp.where(in_b, x, 0.0), axis=0) / jnp.maximum(n_b, 1), c_b)
    return jnp.stack([c_a, c_b]) * scale, scale


def _mode_jump(moving, others):
    """The mode-jump proposals (H, D) for ``moving`` (H, D), and whether each is allowed (H,) (see the module docstring)."""
    centres, scale = _two_clusters(others)

    def nearer_b(p):
        return jnp.sum(((p - centres[1]) / scale) ** 2, axis=-1) < jnp.sum(((p - centres[0]) / scale) ** 2, axis=-1)

    start_b = nearer_b(moving)
    shift = centres[1] - centres[0]
    proposal = moving + jnp.where(start_b[:, None], -shift, shift)
    return proposal, nearer_b(proposal) != start_b


def _half_update(key, moving, moving_lp, moving_aux, others, logdensity_fn, move: jax.Array, gamma_de, settings: MoveSettings, context=None):
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

    # each move returns (proposals (H, D), log of its extra acceptance factor (H,)); move: 0 stretch, 1 DE, 2 jump
    def stretch_move():
        return others[j] + s[:, None] * (moving - others[j]), (d - 1.0) * jnp.log(s)

    def de_move():
        spread = jnp.std(others, axis=0)
        # the DE jitter: uniform on [-sqrt(3), sqrt(3)) x the scale, i.e. the same standard deviation as a normal's
        jitter = jnp.sqrt(3.0) * (2.0 * u[:, 4:] - 1.0)
        return moving + gamma_de * (others[j] - others[i2]) + settings.de_noise * spread * jitter, jnp.zeros(h, moving.dtype)

    def jump_move():
        proposal, allowed = _mode_jump(moving, others)
        return proposal, jnp.where(allowed, 0.0, -jnp.inf).astype(moving.dtype)

    moves = [stretch_move, de_move] + ([jump_move] if settings.p_jump > 0 else [])
    # with a move shared by every target (``move_key``), only the chosen branch runs; vmapped with a move per target,
    # the switch becomes a select over all branches
    proposal, log_ratio_extra = jax.lax.switch(move, moves)
    proposal_lp, proposal_aux = _evaluate(logdensity_fn, proposal, moving_aux is not None, context)
    log_accept = log_ratio_extra + proposal_lp - moving_lp
    accept = jnp.log(u[:, 3]) < jnp.where(jnp.isnan(log_accept), -jnp.inf, log_accept)
    new = jnp.where(accept[:, None], proposal, moving)
    new_lp = jnp.where(accept, proposal_lp, moving_lp)
    return new, new_lp, _select(accept, proposal_aux, moving_aux), accept.astype(jnp.float32)


def step(key: jax.Array, state: EnsembleState, logdensity_fn: Callable, settings: MoveSettings = MoveSettings(), move_key=None):
    """One ensemble step (both halves updated once); returns (state, info).

    ``move_key``: where given, the choice of move (and of the DE hop) comes from
    it instead of from ``key``. Pass one key, not vmapped, to many targets and
    they all make the same move this step: the choice does not depend on any
    state, so each target's chain keeps its stationary distribution, and only
    that move's proposal is computed.
    """
    w, d = state.position.shape
    half = w // 2
    k_step, k0, k1 = jax.random.split(key, 3)  # k_step unused with a move_key: split anyway, so k0 and k1 stay the same
    u_move, u_hop = jax.random.uniform(k_step if move_key is None else move_key, (2,))
    move = jnp.where(u_move < settings.p_de, 1, jnp.where(u_move < settings.p_de + settings.p_jump, 2, 0))
    hop = u_hop < settings.p_mode_hop
    gamma_de = jnp.where(hop, 1.0, 2.38 / jnp.sqrt(2.0 * d))
    first, second = state.position[:half], state.position[half:]
    first_lp, second_lp = state.log_density[:half], state.log_density[half:]
    aux = state.aux
    first_aux, second_aux = _half(aux, slice(None, half)), _half(aux, slice(half, None))
    ctx = state.context
    first, first_lp, first_aux, acc0 = _half_update(k0, first, first_lp, first_aux, second, logdensity_fn, move, gamma_de, settings,
                                                    _half(ctx, slice(None, half)))
    second, second_lp, second_aux, acc1 = _half_update(k1, second, second_lp, second_aux, first, logdensity_fn, move, gamma_de,
                                                       settings, _half(ctx, slice(half, None)))
    aux = None if aux is None else jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first_aux, second_aux)
    state = EnsembleState(jnp.concatenate([first, second]), jnp.concatenate([first_lp, second_lp]), aux, ctx)
    return state, EnsembleInfo(jnp.concatenate([acc0, acc1]))


def sample(
    key: jax.Array,
    state: EnsembleState,
    logdensity_fn: Callable,
    n_steps: int,
    *,
    thin: int = 1,
    settings: MoveSettings = MoveSettings(),
    move_key=None,
):
    """Run ``n_steps`` steps; return (final state, chain (n_steps // thin, W, D), log densities, acceptance rate per walker).

    The chain keeps every ``thin``-th step. The acceptance rate (W,) is over all steps.
    With a state that carries aux, the aux of the kept steps (n_steps // thin, W, ...)
    comes fifth. ``move_key``: the moves' own random stream (see :func:`step`).
    """
    if n_steps % thin:
        raise ValueError(f"n_steps ({n_steps}) must be a multiple of thin ({thin})")

    def one(carry, ks):
        st, acc = carry
        k, mk = ks
        keys = jax.random.split(k, thin)
        move_keys = None if mk is None else jax.random.split(mk, thin)

        def inner(c, kk):
            s, a = c
            s, info = step(kk[0], s, logdensity_fn, settings, kk[1])
            return (s, a + info.acceptance), None

        (st, acc), _ = jax.lax.scan(inner, (st, acc), (keys, move_keys))
        return (st, acc), (st.position, st.log_density, st.aux)

    keys = jax.random.split(key, n_steps // thin)
    move_keys = None if move_key is None else jax.random.split(move_key, n_steps // thin)
    (state, acc), (chain, chain_lp, chain_aux) = jax.lax.scan(one, (state, jnp.zeros(state.position.shape[0])), (keys, move_keys))
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
    moved_lp, moved_aux = _evaluate(logdensity_fn, position, state.aux is not None, state.context)
    log_density = jnp.where(good, lp, moved_lp)
    return EnsembleState(position, log_density, _select(good, state.aux, moved_aux), state.context)
