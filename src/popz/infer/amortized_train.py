"""Training the amortized posterior (:mod:`popz.infer.amortized`) on galaxies simulated on the fly.

The training distribution is the hierarchical model run forwards, with
randomised observing conditions so that the flow learns p(theta | data) for
any depth it may be given:

1. a **pool** of parameter vectors from the population prior (default
   hyperparameters) with their noiseless magnitudes and emulator errors
   (photometric emulator), kept where the noiseless magnitude in the cut band
   is within ``pre_cut_margin`` of the cut (fainter ones pass the observed-flux
   cut below with probability < 3e-5);
2. per training step, for a batch drawn from the pool: E(B-V) uniform in
   [0, ebv_max], a zero-point jitter, a 5-sigma depth per band (photerr's
   LSST 10-year depth plus one offset per galaxy, uniform in
   ``depth_offset_range``, plus per-band scatter), reported errors from
   photerr's noise formula at that depth, noise with the variance of the
   likelihood (reported error, error floor, emulator error), random band
   masks, and the selection: observed flux in the cut band brighter than
   ``cut_mag`` and above ``cut_snr`` sigma. The posterior given the data does
   not depend on a selection made on the data, so galaxies inside the cut get
   exact posteriors; the others are flagged.

Streamed: nothing is written but the pool cache and a checkpoint; a killed
run resumes from its last checkpoint with the same stream of batches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import paramax

from popz.errors import PopzError
from popz.infer.amortized import Architecture, PosteriorFlow, features, new_posterior_flow, ood_features
from popz.infer.likelihood import Observation
from popz.sps.photometry import AB_MAG_OF_ONE_NJY

__all__ = ["NPETrainSettings", "TrainingPool", "build_pool", "simulate_batch", "train_posterior_flow", "lsst_depths"]

POOL_FILE = "pool.npz"
CHECKPOINT = "checkpoint.eqx"
STATE = "checkpoint.json"
_MAG_TO_FRACTION = 0.4 * np.log(10.0)


class NPETrainSettings(NamedTuple):
    """How the amortized posterior is trained.

    n_steps, batch_size, learning_rate : optimisation (Adam, warm-up then cosine decay)
    pool_size : prior draws kept in the pool; heldout_size : held-out simulated galaxies
    depth_offset_range : (mag, mag) per-galaxy offset of every band's 5-sigma depth from LSST 10-year
    depth_band_scatter : mag, per-band scatter of the depth around that
    ebv_max : E(B-V) uniform in [0, ebv_max]
    zero_point_scatter : mag, per-band zero-point jitter
    error_floor : fractional error floor of the likelihood (as ``popz fit --error-floor``)
    mask_probability : probability that a band is missing
    cut_band, cut_mag, cut_snr : training selection on the observed flux
    pre_cut_margin : mag, pool cut on the noiseless magnitude
    checkpoint_every : steps between checkpoints
    fix_logit_moments : hold the logits' location and scale fixed too (the bounds always are; see _partition)
    """

    n_steps: int = 40_000
    batch_size: int = 512
    learning_rate: float = 1e-3
    pool_size: int = 1_000_000
    heldout_size: int = 20_000
    seed: int = 0
    depth_offset_range: tuple[float, float] = (-1.5, 0.3)
    depth_band_scatter: float = 0.2
    ebv_max: float = 0.25
    zero_point_scatter: float = 0.01
    error_floor: float = 0.02
    mask_probability: float = 0.03
    cut_band: str = "i"
    cut_mag: float = 26.0
    cut_snr: float = 5.0
    pre_cut_margin: float = 1.75
    checkpoint_every: int = 1000
    fix_logit_moments: bool = False


class TrainingPool(NamedTuple):
    """theta (N, D) float32; mag (N, B) noiseless AB magnitudes; emulator_error (N, B) mag."""

    theta: jax.Array
    mag: jax.Array
    emulator_error: jax.Array


class NoiseModel(NamedTuple):
    """photerr's LSST noise: single-visit 5-sigma depths m5 (B,), gamma (B,), visits at 10 years (B,), systematic NSR."""

    m5: jax.Array
    gamma: jax.Array
    n_visits: jax.Array
    sigma_sys: float


def lsst_depths(band_labels) -> NoiseModel:
    """photerr LsstErrorModel's noise parameters at 10 years for LSST band labels."""
    from photerr import LsstErrorModel

    model = LsstErrorModel(nYrObs=10.0)
    known = ("u", "g", "r", "i", "z", "y")
    missing = [b for b in band_labels if b not in known]
    if missing:
        raise PopzError(f"photerr's LSST error model has no band(s) {', '.join(missing)}")
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return NoiseModel(
        f32(model._m5_stack(list(band_labels))),
        f32([model.params.gamma[b] for b in band_labels]),
        f32([model.params.nVisYr[b] * 10.0 for b in band_labels]),
        float(model.params.sigmaSys),
    )


def coadd_m5(noise: NoiseModel):
    """The 10-year coadded 5-sigma depths (B,), mag: where photerr's NSR is 0.2."""
    # solve ((0.04 - g) x + g x^2) / N + sys^2 = 0.04 for x = 10^(0.4 (m - m5))
    g, n = noise.gamma, noise.n_visits
    c = (0.04 - noise.sigma_sys**2) * n
    x = (-(0.04 - g) + jnp.sqrt((0.04 - g) ** 2 + 4.0 * g * c)) / (2.0 * g)
    return noise.m5 + 2.5 * jnp.log10(x)


def photerr_variance(flux, f5, noise: NoiseModel):
    """photerr's flux variance (nJy^2) at flux (nJy, its absolute value used) for single-visit 5-sigma fluxes f5.

    sigma_f^2 = ((0.04 - gamma) f5 |f| + gamma f5^2) / N_visits + (sigma_sys f)^2.
    """
    f = jnp.abs(flux)
    return ((0.04 - noise.gamma) * f5 * f + noise.gamma * f5**2) / noise.n_visits + (noise.sigma_sys * f) ** 2


def build_pool(key, prior, emulator, n: int, cut_index: int, mag_limit: float, chunk: int = 200_000, log: Callable = print) -> TrainingPool:
    """n prior draws whose noiseless magnitude in band ``cut_index`` is below ``mag_limit`` (see the module docstring)."""
    from popz.emulate.batching import batched_apply

    thetas, mags, have = [], [], 0
    for k in range(100_000):
        if have >= n:
            break
        theta = prior.sample(jax.random.fold_in(key, k), chunk)
        mag = np.asarray(batched_apply(emulator.magnitudes, theta))
        keep = np.isfinite(mag).all(axis=1) & (mag[:, cut_index] < mag_limit)
        thetas.append(np.asarray(theta)[keep])
        mags.append(mag[keep])
        have += int(keep.sum())
        if k % 10 == 0:
            log(f"pool: {have:,} of {n:,} kept from {(k + 1) * chunk:,} prior draws")
    theta = np.concatenate(thetas)[:n]
    mag = np.concatenate(mags)[:n]
    err = np.asarray(batched_apply(emulator.error_mag, theta))
    return TrainingPool(jnp.asarray(theta, jnp.float32), jnp.asarray(mag, jnp.float32), jnp.asarray(err, jnp.float32))


def simulate_batch(key, pool: TrainingPool, index, extinction, noise: NoiseModel, settings: NPETrainSettings, cut_index: int):
    """Simulated galaxies for pool rows ``index`` (n,): theta (n, D), Observation (leading axis n), selected (n,) bool."""
    n = index.shape[0]
    b = pool.mag.shape[1]
    theta, mag, emu = pool.theta[index], pool.mag[index], pool.emulator_error[index]
    k_ebv, k_zp, k_off, k_band, k_noise, k_mask = jax.random.split(key, 6)
    ebv = jax.random.uniform(k_ebv, (n,), maxval=settings.ebv_max)
    transmission = jax.vmap(extinction.transmission)(ebv)
    zero_point = 10.0 ** (-0.4 * settings.zero_point_scatter * jax.random.normal(k_zp, (n, b)))
    true_flux = zero_point * transmission * 10.0 ** (-0.4 * (mag - AB_MAG_OF_ONE_NJY))
    lo, hi = settings.depth_offset_range
    m5 = noise.m5 + jax.random.uniform(k_off, (n, 1), minval=lo, maxval=hi) + settings.depth_band_scatter * jax.random.normal(k_band, (n, b))
    f5 = 10.0 ** (-0.4 * (m5 - AB_MAG_OF_ONE_NJY))
    total_var = photerr_variance(true_flux, f5, noise) + (settings.error_floor * true_flux) ** 2 + (_MAG_TO_FRACTION * emu * true_flux) ** 2
    flux = true_flux + jnp.sqrt(total_var) * jax.random.normal(k_noise, (n, b))
    # reported errors as photerr reports them: re-estimated from the observed flux (decorrelated), as catalogs do
    reported = jnp.sqrt(photerr_variance(flux, f5, noise))
    observed = jax.random.uniform(k_mask, (n, b)) >= settings.mask_probability
    observed = observed.at[:, cut_index].set(True)
    cut_flux = 10.0 ** (-0.4 * (settings.cut_mag - AB_MAG_OF_ONE_NJY))
    selected = (flux[:, cut_index] > cut_flux) & (flux[:, cut_index] > settings.cut_snr * reported[:, cut_index])
    obs = Observation(
        flux_nJy=jnp.where(observed, flux, 0.0),
        flux_err_nJy=jnp.where(observed, reported, 1.0),
        observed=observed,
        ebv=ebv,
        tract_index=jnp.zeros(n, jnp.int32),
    )
    return theta, obs, selected


def _losses(model: PosteriorFlow, theta, obs: Observation, weight):
    """Weighted mean negative log densities of the posterior flow and of the input-density flow."""
    flow, ood = paramax.unwrap(model.flow), paramax.unwrap(model.ood_flow)
    std = jax.vmap(model.standard_features)(obs)
    cond = jax.vmap(model.embed)(std)
    u, _ = model.to_u(theta)
    log_q = flow.log_prob(u, condition=cond)
    log_p_in = ood.log_prob(jax.vmap(ood_features)(std, obs.observed))
    norm = jnp.maximum(jnp.sum(weight), 1.0)
    return -jnp.sum(weight * log_q) / norm, -jnp.sum(weight * log_p_in) / norm


def _partition(model, fix_logit_moments: bool = False):
    """(trained arrays, the rest). The parameter bounds, which map theta into the flow's variable u, are not trained.

    The loss is -ln q(u) = -ln q(theta) - ln |dtheta/du|: a map that squeezes
    theta into less of u lowers it without a better fit. Trained, the bounds
    drifted far outside the prior's support (flows shipped until 2026-11-27 have
    A_V down to -1.8 and log U down to -12.7 as lower bounds, and put draws
    there), and the logit scales kept growing. ``fix_logit_moments`` holds the
    logits' location and scale fixed as well; that made a short training from
    scratch (tests/test_amortized.py) reach an infinite held-out loss, so it is
    not the default.
    """
    spec = jax.tree.map(eqx.is_inexact_array, model, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))
    names = ("lower", "upper") + (("u_loc", "u_scale") if fix_logit_moments else ())
    spec = eqx.tree_at(lambda m: tuple(getattr(m, name) for name in names), spec, replace=(False,) * len(names))
    return eqx.partition(model, spec, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))


def train_posterior_flow(
    config,
    emulator,
    prior,
    out: str | Path,
    *,
    settings: NPETrainSettings = NPETrainSettings(),
    architecture: Architecture = Architecture(),
    max_minutes: float | None = None,
    command: str = "",
    emulator_id: str = "",
    init: PosteriorFlow | None = None,
    extra_manifest: dict | None = None,
    log: Callable[[str], None] = print,
) -> dict | None:
    """Train (or resume) the posterior flow into folder ``out``; return its manifest, or None when stopped by ``max_minutes``.

    ``out`` holds the pool cache and checkpoint while training; at the end the
    flow and its manifest (:func:`popz.infer.amortized_files.save_posterior`).
    ``init``: a trained flow of the same architecture to start from (fine-tuning);
    its standardisations are kept.
    """
    from popz.data_model.extinction import make_extinction_table
    from popz.emulate.files import sha256_file
    from popz.infer.amortized_files import save_posterior
    from popz.io.atomic import atomic_path
    from popz.sps.filters import band_labels, load_bands

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = band_labels(config.bands)
    if settings.cut_band not in labels:
        raise PopzError(f"cut band {settings.cut_band!r} is not one of the model's bands {', '.join(labels)}")
    cut_index = labels.index(settings.cut_band)
    noise = lsst_depths(labels)
    extinction = make_extinction_table(load_bands(config.bands))
    key = jax.random.key(settings.seed)
    k_pool, k_heldout, k_init, k_steps, k_stats = jax.random.split(key, 5)
    started = time.time()

    pool_path = out / POOL_FILE
    if pool_path.exists():
        with np.load(pool_path) as f:
            pool = TrainingPool(*(jnp.asarray(f[k]) for k in TrainingPool._fields))
            heldout = TrainingPool(*(jnp.asarray(f["heldout_" + k]) for k in TrainingPool._fields))
        log(f"pool: {pool.theta.shape[0]:,} galaxies from {pool_path}")
    else:
        limit = settings.cut_mag + settings.pre_cut_margin
        pool = build_pool(k_pool, prior, emulator, settings.pool_size, cut_index, limit, log=log)
        heldout = build_pool(k_heldout, prior, emulator, settings.heldout_size, cut_index, limit, chunk=50_000, log=log)
        with atomic_path(pool_path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **pool._asdict(), **{"heldout_" + k: v for k, v in heldout._asdict().items()})

    simulate = jax.jit(lambda k, p, i: simulate_batch(k, p, i, extinction, noise, settings, cut_index))
    # standardisations from a large simulated sample
    n_stats = min(100_000, pool.theta.shape[0])
    theta_s, obs_s, sel_s = simulate(k_stats, pool, jnp.arange(n_stats))
    sel_s = np.asarray(sel_s)
    lower = np.array([p.bounds[0] for p in config.parameters], np.float32)
    upper = np.array([p.bounds[1] for p in config.parameters], np.float32)
    p = np.clip((np.asarray(theta_s)[sel_s] - lower) / (upper - lower), 1e-6, 1 - 1e-6)
    logit = np.log(p) - np.log1p(-p)
    s_b = 10.0 ** (-0.4 * (np.asarray(coadd_m5(noise)) - AB_MAG_OF_ONE_NJY)) / 5.0
    feats = np.asarray(jax.vmap(lambda o: features(o, jnp.asarray(s_b, jnp.float32)))(obs_s))[sel_s]
    f_loc, f_scale = feats.mean(axis=0), np.maximum(feats.std(axis=0), 1e-3)
    model = new_posterior_flow(
        k_init, parameter_names=config.parameter_names, band_names=config.bands, lower=lower, upper=upper,
        u_loc=logit.mean(axis=0), u_scale=logit.std(axis=0), feature_loc=f_loc, feature_scale=f_scale,
        flux_scale_nJy=s_b, cut_band=cut_index, cut_flux_nJy=10.0 ** (-0.4 * (settings.cut_mag - AB_MAG_OF_ONE_NJY)),
        cut_snr=settings.cut_snr, ebv_max=settings.ebv_max, architecture=architecture,
    )  # fmt: skip

    if init is not None:
        # the bounds are the model's, whatever the flow started from holds (flows trained before the bounds were held
        # fixed carry drifted ones: see _partition)
        model = eqx.tree_at(lambda m: (m.lower, m.upper), init, (jnp.asarray(lower), jnp.asarray(upper)))
    schedule = optax.warmup_cosine_decay_schedule(0.0, settings.learning_rate, min(500, settings.n_steps // 10), settings.n_steps, settings.learning_rate * 0.02)
    optimizer = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(schedule))
    params, static = _partition(model, settings.fix_logit_moments)
    opt_state = optimizer.init(params)
    step0, history, minutes_before = 0, [], 0.0
    if (out / STATE).exists() and (out / CHECKPOINT).exists():
        state = json.loads((out / STATE).read_text())
        params, opt_state = eqx.tree_deserialise_leaves(out / CHECKPOINT, (params, opt_state))
        step0, history = state["step"], state["history"]
        minutes_before = history[-1]["minutes"] if history else 0.0
        log(f"resuming at step {step0}")

    n_pool = pool.theta.shape[0]

    @eqx.filter_jit
    def train_step(params, opt_state, step, pool):  # the pool is an argument, not a closure constant baked into the code
        k = jax.random.fold_in(k_steps, step)
        k_idx, k_sim = jax.random.split(k)
        index = jax.random.randint(k_idx, (settings.batch_size,), 0, n_pool)
        theta, obs, selected = simulate(k_sim, pool, index)

        def loss(p):
            a, b = _losses(eqx.combine(p, static), theta, obs, selected.astype(jnp.float32))
            return a + b, (a, b)

        (_, parts), grads = eqx.filter_value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, parts

    @eqx.filter_jit
    def heldout_loss(params, k, heldout):
        theta, obs, selected = simulate(k, heldout, jnp.arange(heldout.theta.shape[0]))
        return _losses(eqx.combine(params, static), theta, obs, selected.astype(jnp.float32))

    def checkpoint(step):
        with atomic_path(out / CHECKPOINT) as tmp:
            eqx.tree_serialise_leaves(tmp, (params, opt_state))
        with atomic_path(out / STATE) as tmp:
            tmp.write_text(json.dumps({"step": step, "history": history}))

    running = []
    for step in range(step0, settings.n_steps):
        params, opt_state, parts = train_step(params, opt_state, jnp.asarray(step), pool)
        running.append(parts)
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.n_steps:
            train = np.asarray(running).mean(axis=0)
            running = []
            held = np.asarray(heldout_loss(params, k_heldout, heldout))
            history.append({"step": step + 1, "train": train.tolist(), "heldout": held.tolist(), "minutes": minutes_before + (time.time() - started) / 60})
            log(f"step {step + 1}: train {train[0]:.3f} (inputs {train[1]:.3f}), held-out {held[0]:.3f} (inputs {held[1]:.3f})")
            checkpoint(step + 1)
            if max_minutes is not None and time.time() - started > 60 * max_minutes and step + 1 < settings.n_steps:
                log(f"time budget of {max_minutes} min spent at step {step + 1}: rerun the same command to resume")
                return None

    model = eqx.combine(params, static)
    # input-density threshold: the 1% quantile over held-out in-distribution galaxies
    theta_h, obs_h, sel_h = simulate(jax.random.fold_in(k_heldout, 1), heldout, jnp.arange(heldout.theta.shape[0]))
    sel_h = np.asarray(sel_h)
    density = np.asarray(eqx.filter_jit(lambda m, o: jax.vmap(m.input_log_density)(o))(model, obs_h))[sel_h]
    threshold = float(np.quantile(density, 0.01))
    model = eqx.tree_at(lambda m: m.ood_threshold, model, jnp.asarray(threshold, jnp.float32))
    manifest = {
        "kind": "posterior",
        "model": config.name,
        "model_hash": config.hash,
        "model_config": config.to_dict(),
        "bands": list(config.bands),
        "architecture": architecture._asdict(),
        "training": {
            "command": command,
            "settings": settings._asdict(),
            "emulator": emulator_id,
            "pool_sha256": sha256_file(pool_path),
            "pool_size": int(n_pool),
            "heldout_size": int(sel_h.sum()),
            "steps": settings.n_steps,
            "history": history,
            "lsst_m5_10yr": np.asarray(coadd_m5(noise)).tolist(),
            "minutes": minutes_before + (time.time() - started) / 60,
        },
        "ood_threshold": threshold,
        "ood_false_positive_target": 0.01,
        **(extra_manifest or {}),
    }
    save_posterior(model, out, manifest)
    (out / CHECKPOINT).unlink(missing_ok=True)
    (out / STATE).unlink(missing_ok=True)
    return manifest
