"""Model choice on data (``popz compare``): two model/prior configurations scored on the same catalog.

Two scores, both computed from the photometry alone:

- **Predictive check.** Each model's population prior (with its data model:
  zero-points, Galactic extinction of a random catalog row, noise, floors and
  emulator error, and the catalog's selection cut) predicts the distribution
  of magnitudes and colours the catalog should show. The catalog's reference
  rows are compared with it, statistic by statistic: the two-sample
  Kolmogorov-Smirnov distance and the Wasserstein-1 distance, in asinh
  magnitudes (finite for faint and negative fluxes). The noise of a predicted
  galaxy is the catalog's: its median error at that flux, per band.
- **Held-out predictive score.** For every held-out galaxy, the log evidence
  ln p(fluxes | model, selected) = ln integral L(fluxes | theta) p(theta | model) dtheta
  - ln P(selected | model), by importance sampling with the posterior flow's
  broadened draws as proposals. Its mean over the held-out galaxies is the
  expected log predictive density per galaxy (nats); the paired difference
  between the two models, with its standard error over galaxies, says which
  the data prefer and how firmly. The held-out rows take no part in the
  predictive check. Hyperparameters calibrated for a model (``--hyper``)
  should come from other data: another catalog, or other rows of this one
  (``compare.json`` lists the held-out object ids).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.errors import PopzError
from popz.infer.likelihood import Observation, corrected_for_zero_points, log_likelihood
from popz.sps.photometry import AB_MAG_OF_ONE_NJY

__all__ = [
    "CompareSettings", "ModelUnderTest", "ModelScore", "ReferenceCatalog", "reference_catalog", "empirical_noise", "asinh_magnitudes", "score_model", "paired_difference",
    "compare_catalog", "write_comparison",
]


class CompareSettings(NamedTuple):
    """How ``popz compare`` runs.

    held_out_fraction : float   rows scored by the predictive score (the rest: the predictive check)
    n_predictive : int          prior draws for the predictive check and the selected fraction
    n_proposals : int           importance-sampling proposals per held-out galaxy
    proposal_scale : float      the flow's base variable drawn with this standard deviation
    min_ess : float             held-out galaxies whose evidence rests on fewer effective proposals are counted
    batch_size : int            galaxies (or 256 x prior draws) per device call
    seed : int
    """

    held_out_fraction: float = 0.5
    n_predictive: int = 1_000_000
    n_proposals: int = 256
    proposal_scale: float = 1.0
    min_ess: float = 5.0
    batch_size: int = 1024
    seed: int = 0


class ModelUnderTest(NamedTuple):
    """One configuration: its name, population prior and hyperparameters, emulator, data model and posterior flow."""

    name: str
    prior: object
    hyper: jax.Array
    emulator: object
    data_model: object
    extinction: object
    flow: object


class ModelScore(NamedTuple):
    """A model's scores on one catalog.

    log_evidence : (N_held,) ln p(fluxes | model, selected) of each held-out galaxy, nats (NaN: no usable proposal)
    ess : (N_held,) effective number of proposals behind each evidence
    log_selected_fraction : ln P(selected | model), from the predictive draws
    n_selected : predictive draws that pass the selection
    statistics : {statistic: {"ks": D, "wasserstein": W (mag)}}, predicted against the reference rows
    predicted : {statistic: (n_selected,) values}, for plots
    observed : {statistic: values of the reference rows}
    """

    name: str
    log_evidence: np.ndarray
    ess: np.ndarray
    log_selected_fraction: float
    n_selected: int
    statistics: dict
    predicted: dict
    observed: dict


def empirical_noise(flux_nJy: np.ndarray, err_nJy: np.ndarray, observed: np.ndarray, n_bins: int = 30):
    """The catalog's error as a function of flux, per band: (knots (B, n_bins) of log10 flux, median error (B, n_bins) nJy).

    Below the faintest knot (and for negative fluxes) the faintest bin's error holds: the sky dominates there.
    """
    b = flux_nJy.shape[1]
    knots, medians = np.zeros((b, n_bins)), np.zeros((b, n_bins))
    for j in range(b):
        f, e = flux_nJy[observed[:, j], j], err_nJy[observed[:, j], j]
        if len(f) < 2 * n_bins:
            raise PopzError(f"band {j}: {len(f)} observed rows are too few to model the catalog's noise ({2 * n_bins} needed)")
        x = np.log10(np.maximum(f, np.quantile(f[f > 0], 0.001)))
        edges = np.quantile(x, np.linspace(0, 1, n_bins + 1))
        which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
        for k in range(n_bins):
            sel = which == k
            knots[j, k] = np.median(x[sel]) if np.any(sel) else edges[k]
            medians[j, k] = np.median(e[sel]) if np.any(sel) else np.nan
        good = np.isfinite(medians[j])
        medians[j] = np.interp(knots[j], knots[j][good], medians[j][good])
    return knots, medians


def _noise_at(flux_nJy, knots, medians):
    """Median catalog error (n, B) at fluxes (n, B)."""
    x = jnp.log10(jnp.maximum(flux_nJy, 1e-3))
    return jax.vmap(jnp.interp, in_axes=(1, 0, 0), out_axes=1)(x, jnp.asarray(knots, jnp.float32), jnp.asarray(medians, jnp.float32))


def asinh_magnitudes(flux_nJy, softening_nJy):
    """Lupton et al. (1999) asinh magnitudes (..., B) of fluxes (..., B) nJy with per-band softening (B,) nJy:
    the AB magnitude for bright fluxes, finite and monotonic through zero."""
    b = np.asarray(softening_nJy)
    return AB_MAG_OF_ONE_NJY - 2.5 / np.log(10) * (np.arcsinh(np.asarray(flux_nJy) / (2 * b)) + np.log(b))


def statistic_names(labels, selection_band: int) -> list[str]:
    return [f"{labels[selection_band]} (mag)"] + [f"{labels[j]}-{labels[j + 1]}" for j in range(len(labels) - 1)]


def _statistics(flux_nJy, observed, softening_nJy, selection_band: int, labels) -> dict:
    """Each statistic's values (finite rows only): the selection band's asinh magnitude and adjacent colours."""
    m = asinh_magnitudes(flux_nJy, softening_nJy)
    names = statistic_names(labels, selection_band)
    out = {names[0]: m[observed[:, selection_band], selection_band]}
    for j in range(len(labels) - 1):
        both = observed[:, j] & observed[:, j + 1]
        out[names[j + 1]] = m[both, j] - m[both, j + 1]
    return out


def _predict_fluxes(key, model: ModelUnderTest, n: int, reference: Observation, knots, medians, batch: int):
    """n noisy predicted catalogs rows (n, B) nJy: prior draws through the emulator and the data model, each given
    the tract and E(B-V) of a random reference row and the catalog's noise at its flux."""
    from popz.data_model.noise import flux_variance, predicted_flux

    @eqx.filter_jit
    def chunk(k_noise, theta, emulator, data_model, extinction, tract, ebv):
        flux = jax.vmap(emulator.flux_nJy)(theta)
        err_mag = jax.vmap(emulator.error_mag)(theta)
        pred = jax.vmap(lambda f, t, e: predicted_flux(f, t, extinction.transmission(e), data_model))(flux, tract, ebv)
        sigma = _noise_at(pred, knots, medians)
        var = jax.vmap(lambda s, p, m: flux_variance(s, p, data_model, m))(sigma, pred, err_mag)
        return pred + jnp.sqrt(var) * jax.random.normal(k_noise, pred.shape)

    n_ref = reference.flux_nJy.shape[0]
    parts = []
    for i, start in enumerate(range(0, n, batch)):
        k_theta, k_rows, k_noise = jax.random.split(jax.random.fold_in(key, i), 3)
        theta = model.prior.sample(k_theta, batch, model.hyper)
        rows = jax.random.randint(k_rows, (batch,), 0, n_ref)
        out = chunk(k_noise, theta, model.emulator, model.data_model, model.extinction, reference.tract_index[rows], reference.ebv[rows])
        parts.append(np.asarray(out)[: min(batch, n - start)])
    return np.concatenate(parts)


def _log_evidence(key, model: ModelUnderTest, observations: Observation, settings: CompareSettings):
    """ln p(fluxes | model) (N,) (without the selection term) and the effective sample sizes (N,)."""
    k, scale = settings.n_proposals, settings.proposal_scale

    @eqx.filter_jit
    def batch(keys, obs, flow, emulator, data_model, extinction, hyper):
        def one(key, obs):
            theta, log_q = flow.sample_and_log_prob(key, corrected_for_zero_points(obs, data_model.zero_point), k, scale)
            log_l = jax.vmap(lambda t: log_likelihood(t, obs, emulator=emulator, hyper=data_model, extinction=extinction))(theta)
            log_p = model.prior.log_prob(theta, hyper)
            log_w = log_l + log_p - log_q
            log_w = jnp.where(jnp.isfinite(log_w), log_w, -jnp.inf)
            log_z = jax.nn.logsumexp(log_w) - np.log(k)
            w = jax.nn.softmax(log_w)
            ess = 1.0 / jnp.sum(w**2)
            return log_z, jnp.where(jnp.isfinite(log_z), ess, 0.0)

        return jax.vmap(one)(keys, obs)

    n = observations.flux_nJy.shape[0]
    keys = jax.random.split(key, n)
    hyper = jnp.asarray(model.hyper, jnp.float32)
    out_z, out_ess = [], []
    for start in range(0, n, settings.batch_size):
        sl = slice(start, start + settings.batch_size)
        obs = jax.tree.map(lambda a: a[sl], observations)
        z, e = batch(keys[sl], obs, model.flow, model.emulator, model.data_model, model.extinction, hyper)
        out_z.append(np.asarray(z, np.float64))
        out_ess.append(np.asarray(e, np.float64))
    log_z = np.concatenate(out_z)
    return np.where(np.isfinite(log_z), log_z, np.nan), np.concatenate(out_ess)


class ReferenceCatalog(NamedTuple):
    """What the predictive checks compare with, computed once from the reference rows and shared by every model.

    observations : Observation of the R reference rows
    noise_knots, noise_medians : the catalog's noise as a function of flux (:func:`empirical_noise`)
    softening_nJy : (B,) the asinh magnitudes' softening per band, nJy (median reported error)
    statistics : {name: values} the data's statistics (:func:`statistic_names`)
    """

    observations: Observation
    noise_knots: np.ndarray
    noise_medians: np.ndarray
    softening_nJy: np.ndarray
    statistics: dict


def reference_catalog(reference: Observation, labels, selection_band: int) -> ReferenceCatalog:
    """The :class:`ReferenceCatalog` of the rows ``reference``."""
    flux, err, observed = (np.asarray(a) for a in (reference.flux_nJy, reference.flux_err_nJy, reference.observed))
    knots, medians = empirical_noise(flux, err, observed)
    softening = np.array([np.median(err[observed[:, j], j]) for j in range(flux.shape[1])])
    return ReferenceCatalog(reference, knots, medians, softening, _statistics(flux, observed, softening, selection_band, labels))


def score_model(
    key, model: ModelUnderTest, *, reference: ReferenceCatalog, held_out: Observation, labels, selection_band: int,
    selection_flux_nJy: float | None, settings: CompareSettings,
) -> ModelScore:  # fmt: skip
    """Both scores of one model: the predictive check against ``reference`` and the evidence of ``held_out``.

    ``selection_band`` indexes ``labels``; ``selection_flux_nJy`` None: no selection (every draw is kept).
    """
    k_pred, k_ev = jax.random.split(key)
    predicted = _predict_fluxes(
        k_pred, model, settings.n_predictive, reference.observations, reference.noise_knots, reference.noise_medians, batch=256 * 1024
    )
    selected = np.all(np.isfinite(predicted), axis=1)
    if selection_flux_nJy is not None:
        selected &= predicted[:, selection_band] > selection_flux_nJy
    n_selected = int(np.sum(selected))
    if n_selected < 100:
        raise PopzError(
            f"model {model.name}: only {n_selected} of {settings.n_predictive} predictive draws pass the selection: "
            "raise --n-predictive, or check --selection against the catalog"
        )
    sim = predicted[selected]
    data_stats = reference.statistics
    sim_stats = _statistics(sim, np.ones_like(sim, bool), reference.softening_nJy, selection_band, labels)
    from scipy.stats import ks_2samp, wasserstein_distance

    statistics = {
        name: {"ks": float(ks_2samp(data_stats[name], sim_stats[name]).statistic), "wasserstein": float(wasserstein_distance(data_stats[name], sim_stats[name]))}
        for name in data_stats
    }  # fmt: skip
    log_selected = float(np.log(n_selected / settings.n_predictive))
    log_z, ess = _log_evidence(k_ev, model, held_out, settings)
    return ModelScore(model.name, log_z - log_selected, ess, log_selected, n_selected, statistics, sim_stats, data_stats)


def paired_difference(a: ModelScore, b: ModelScore, min_ess: float) -> dict:
    """Mean (A - B) of the held-out log evidences over galaxies where both are usable (ESS >= min_ess in both), its
    standard error (the galaxies' scatter and the Monte Carlo error of both selected fractions), how many galaxies
    that left out, each model's mean over the galaxies kept, and the mean over every finite pair (nats)."""
    finite = np.isfinite(a.log_evidence) & np.isfinite(b.log_evidence)
    usable = finite & (a.ess >= min_ess) & (b.ess >= min_ess)
    d = a.log_evidence[usable] - b.log_evidence[usable]
    if len(d) < 2:
        raise PopzError(f"fewer than 2 held-out galaxies have an evidence with an effective sample size >= {min_ess} under both models")
    # ln P(selected) is one Monte Carlo estimate per model, shared by every galaxy: its error does not average out
    selection_var = sum((1.0 - np.exp(s.log_selected_fraction)) / s.n_selected for s in (a, b))
    d_all = a.log_evidence[finite] - b.log_evidence[finite]
    return {
        "mean_nats_per_galaxy": float(np.mean(d)),
        "standard_error": float(np.sqrt(np.var(d, ddof=1) / len(d) + selection_var)),
        "selection_term_error": float(np.sqrt(selection_var)),
        "n_galaxies": int(len(d)), "n_left_out": int(np.sum(~usable)),
        "mean_log_evidence_a": float(np.mean(a.log_evidence[usable])), "mean_log_evidence_b": float(np.mean(b.log_evidence[usable])),
        "mean_nats_per_galaxy_all_finite": float(np.mean(d_all)), "n_galaxies_all_finite": int(len(d_all)),
    }  # fmt: skip


def _model_under_test(job, name: str) -> tuple[ModelUnderTest, tuple, tuple]:
    """A FitJob's model, loaded: (model, band labels, known tracts)."""
    from popz.infer.amortized_files import load_posterior
    from popz.posterior.fit_job import prepare

    prepared = prepare(job)
    flow = load_posterior(job.posterior, config=prepared.config)
    model = ModelUnderTest(name, prepared.prior, prepared.hyper, prepared.emulator, prepared.data_model, prepared.extinction, flow)
    return model, prepared.labels, prepared.known_tracts


def compare_catalog(table, jobs, names, *, selection: tuple[str, float] | None, settings: CompareSettings, progress=print):
    """Score the models of ``jobs`` (FitJobs: model, emulator, posterior flow, --hyper, column options) on ``table``.

    ``selection``: (band label, AB magnitude limit) of the catalog's cut, or None.
    Returns (scores, the paired difference of the first two, the held-out object ids).
    """
    from popz.io.catalog import observations_from_table
    from popz.posterior.fit_job import rubin_table

    if not 0.0 < settings.held_out_fraction < 1.0:
        raise PopzError(f"--held-out must be a fraction between 0 and 1, got {settings.held_out_fraction}")
    loaded = [_model_under_test(job, name) for job, name in zip(jobs, names)]
    labels = loaded[0][1]
    for model, other, _ in loaded[1:]:
        if other != labels:
            raise PopzError(f"the models observe different bands ({list(labels)} and {list(other)}): compare them on one band set")
    band, flux_limit = 0, None
    if selection is not None:
        if selection[0] not in labels:
            raise PopzError(f"--selection band {selection[0]!r} is not one of the models' bands {list(labels)}")
        band, flux_limit = labels.index(selection[0]), 10 ** (-0.4 * (selection[1] - AB_MAG_OF_ONE_NJY))
    else:
        band = len(labels) // 2
    n = len(table)
    order = np.random.default_rng(settings.seed).permutation(n)
    n_held = int(round(settings.held_out_fraction * n))
    if n_held < 2 or n - n_held < 100:
        raise PopzError(f"{n} rows are too few: the held-out part needs 2 and the reference part 100")
    held_rows, ref_rows = np.sort(order[:n_held]), np.sort(order[n_held:])
    datas = [observations_from_table(rubin_table(job, table, labels), labels, tracts) for (_, _, tracts), job in zip(loaded, jobs)]
    if not all(np.array_equal(d.object_id, datas[0].object_id) for d in datas[1:]):
        raise PopzError("the models read different objects from the catalog: give both the same column options")
    # rows that can be scored: two observed bands at least, and (the conditional evidence holds only for them)
    # inside the catalog's cut as the models see it
    usable = np.ones(n, bool)
    for d in datas:
        obs = d.observations
        usable &= np.asarray(obs.observed).sum(axis=1) >= 2
        if flux_limit is not None:
            usable &= np.asarray(obs.observed[:, band]) & (np.asarray(obs.flux_nJy[:, band]) > flux_limit)
    if np.any(~usable):
        progress(f"note: {int(np.sum(~usable))} rows fail the selection or have fewer than 2 observed bands: left out")
    held, ref = held_rows[usable[held_rows]], ref_rows[usable[ref_rows]]
    scores = []
    key = jax.random.key(settings.seed)
    # the data side of the predictive checks, once: both models are checked against the same reference rows
    reference = reference_catalog(jax.tree.map(lambda a: a[ref], datas[0].observations), labels, band)
    for i, ((model, _, _), data) in enumerate(zip(loaded, datas)):
        progress(f"{model.name}: predictive check ({settings.n_predictive} draws) and the evidence of {len(held)} held-out galaxies")
        scores.append(score_model(
            jax.random.fold_in(key, i), model, reference=reference, held_out=jax.tree.map(lambda a: a[held], data.observations),
            labels=labels, selection_band=band, selection_flux_nJy=flux_limit, settings=settings,
        ))  # fmt: skip
    return scores, paired_difference(scores[0], scores[1], settings.min_ess), datas[0].object_id[held]


def write_comparison(out, scores, difference: dict, held_ids, *, settings: CompareSettings, meta: dict) -> dict:
    """OUT/compare.json (every score, the verdict, the held-out ids) and OUT/compare.png (predicted against observed);
    both written atomically. Returns the paths and the summary written to the JSON."""
    import json
    from pathlib import Path

    from popz.io.atomic import atomic_path

    out = Path(out)
    models = {}
    for s in scores:
        usable = np.isfinite(s.log_evidence) & (s.ess >= settings.min_ess)
        ev = s.log_evidence[usable]
        models[s.name] = {
            "mean_log_evidence_nats_own_usable": float(np.mean(ev)) if len(ev) else None,
            "n_held_out": int(len(s.log_evidence)), "n_low_ess": int(np.sum(~usable)),
            "median_ess": float(np.median(s.ess)), "log_selected_fraction": s.log_selected_fraction,
            "n_predictive_selected": s.n_selected, "predictive_check": s.statistics,
            "mean_ks": float(np.mean([v["ks"] for v in s.statistics.values()])),
        }  # fmt: skip
    a, b = scores[0].name, scores[1].name
    d, se = difference["mean_nats_per_galaxy"], difference["standard_error"]
    verdict = (a if d > 0 else b) if abs(d) > 3 * se else "neither (|difference| < 3 standard errors)"
    summary = {
        "models": models, "difference": {"a": a, "b": b, **difference}, "preferred_by_predictive_score": verdict,
        "preferred_by_predictive_check": min(models, key=lambda m: models[m]["mean_ks"]),
        "settings": settings._asdict(), "held_out_ids": [int(i) for i in held_ids], **meta,
    }  # fmt: skip
    json_path, png_path = out / "compare.json", out / "compare.png"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    _plot(png_path, scores)
    return {"json": str(json_path), "png": str(png_path), "summary": summary}


def _plot(path, scores) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from popz.io.atomic import atomic_path

    names, observed = list(scores[0].predicted), scores[0].observed
    cols = 3
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        values = [s.predicted[name] for s in scores] + ([observed[name]] if observed else [])
        lo, hi = np.percentile(np.concatenate(values), [0.5, 99.5])
        bins = np.linspace(lo, hi, 41)
        if observed:
            ax.hist(observed[name], bins, density=True, color="0.7", label="catalog (reference rows)")
        for s in scores:
            ax.hist(s.predicted[name], bins, density=True, histtype="step", lw=1.5, label=f"{s.name} (KS {s.statistics[name]['ks']:.3f})")
        ax.set_xlabel(name)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
