"""Calibration proposals from posterior samples, for bands no posterior flow was trained on.

``popz calibrate`` marginalises every galaxy's parameters by importance
sampling (:mod:`popz.infer.hierarchical`). Its proposals come from the
amortized posterior q(theta | fluxes), which exists only for the bands it was
trained on. For other bands (a survey's own filter curves, through the
spectrum emulator) the proposals come from an MCMC fit instead:

- per galaxy, a Gaussian fitted to its MCMC samples in standardised logits u
  (the ``initial_gaussians`` of :func:`popz.infer.hierarchical.calibrate`);
- in place of q, :class:`PopulationProposal`: one Gaussian in u for every
  galaxy, fitted to all galaxies' samples together and broadened. It ignores
  the data; it is the defensive component of the mixture, which keeps every
  proposal density bounded below where a galaxy's Gaussian is too narrow.

Both densities are exact, so the importance weights are too; only their
efficiency depends on how well the samples describe each posterior.
Shapes: N galaxies, S samples, D parameters.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.errors import PopzError
from popz.infer.amortized import from_standardised_logits, to_standardised_logits

__all__ = [
    "PopulationProposal", "population_proposal", "gaussians_from_samples", "mcmc_samples", "seed_proposals_by_mcmc", "save_seed",
    "load_seed",
]  # fmt: skip


class PopulationProposal(eqx.Module):
    """A data-independent Gaussian in standardised logits, with the interface of a posterior flow
    (``to_u``, ``to_theta``, ``sample_and_log_prob``, ``log_prob``) that calibration uses.

    lower, upper : (D,) the prior's bounds; u_loc, u_scale : (D,) logit location and scale
    """

    lower: jax.Array
    upper: jax.Array
    u_loc: jax.Array
    u_scale: jax.Array

    def to_u(self, theta):
        """Standardised logits (..., D) of theta (..., D), and ln |d u / d theta| summed over D."""
        return to_standardised_logits(theta, self.lower, self.upper, self.u_loc, self.u_scale)

    def to_theta(self, u):
        """theta (..., D) from standardised logits, and ln |d theta / d u| summed over D."""
        return from_standardised_logits(u, self.lower, self.upper, self.u_loc, self.u_scale)

    def sample_and_log_prob(self, key, obs, n: int, scale: float = 1.0):
        """n draws theta (n, D) and their ln density (n,) in theta's units; ``obs`` is not used."""
        u = scale * jax.random.normal(key, (n, self.lower.shape[0]))
        theta, log_jac = self.to_theta(u)
        return theta, jnp.sum(jax.scipy.stats.norm.logpdf(u, scale=scale), axis=-1) - log_jac

    def log_prob(self, theta, obs):
        """ln density of theta (..., D) in theta's units (scale 1); ``obs`` is not used."""
        u, log_jac = self.to_u(theta)
        return jnp.sum(jax.scipy.stats.norm.logpdf(u), axis=-1) + log_jac


def population_proposal(samples, lower, upper, inflate: float = 2.0) -> PopulationProposal:
    """:class:`PopulationProposal` from posterior samples (N, S, D) within the bounds ``lower``, ``upper`` (D,):
    the pooled logits' mean, and their standard deviation times ``inflate``."""
    samples = np.asarray(samples, np.float64)
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    if samples.ndim != 3 or samples.shape[-1] != lower.shape[0]:
        raise PopzError(f"samples must be (galaxies, samples, {lower.shape[0]} parameters), got {samples.shape}")
    pooled = samples.reshape(-1, samples.shape[-1])
    pooled = pooled[np.all(np.isfinite(pooled), axis=1)]
    if pooled.shape[0] < 2:
        raise PopzError("no finite posterior samples to build calibration proposals from")
    logit = np.asarray(to_standardised_logits(pooled, lower, upper, 0.0, 1.0)[0], np.float64)
    scale = inflate * np.maximum(logit.std(axis=0), 1e-3)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return PopulationProposal(f32(lower), f32(upper), f32(logit.mean(axis=0)), f32(scale))


def gaussians_from_samples(samples, proposal: PopulationProposal, inflate: float = 1.5):
    """Per-galaxy Gaussians (:class:`popz.infer.hierarchical.GaussianProposal`) in ``proposal``'s u, fitted to
    equally weighted samples (N, S, D) and inflated by ``inflate``."""
    from popz.infer.hierarchical import fit_gaussians

    theta = jnp.asarray(samples, jnp.float32)
    return fit_gaussians(theta, jnp.zeros(theta.shape[:2]), proposal, inflate=inflate)


def mcmc_samples(
    observations, *, emulator, prior, extinction, n_tracts: int, error_floor: float, n_steps: int = 1000, seed: int = 0,
    chunk_size: int = 256, progress=None,
) -> np.ndarray:
    """MCMC-fit every galaxy (zero-points 1, floor ``error_floor``, the prior's own hyperparameters): samples (G, S, D),
    the last 32 of each galaxy the walkers' final positions.

    ``n_steps``: burn-in and kept steps, half each, 32 walkers. The fit is done in chunks of equal size, at most
    ``chunk_size`` galaxies (the last one padded by repeating its last galaxy), so that it is compiled once; each
    galaxy's stream comes from the seed and its row (``batch_index`` by chunk).
    """
    from popz.data_model import default_data_model
    from popz.infer.fit import FitSettings, fit_batch

    n, n_bands = observations.flux_nJy.shape
    data_model = default_data_model(n_tracts, n_bands, error_floor=error_floor)
    half = max(n_steps // 2, 10)
    settings = FitSettings(n_burn=half, n_steps=half - half % 10, seed=seed)
    size = -(-n // -(-n // chunk_size))  # ceil(n / number of chunks)
    parts = []
    for k, start in enumerate(range(0, n, size)):
        rows = np.minimum(np.arange(start, start + size), n - 1)
        obs = jax.tree.map(lambda a: a[rows], observations)
        fit = fit_batch(obs, emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=data_model, extinction=extinction,
                        settings=settings, batch_index=k)  # fmt: skip
        parts.append(np.asarray(fit.samples)[: min(size, n - start)])
        if progress is not None:
            progress(min(start + size, n), n)
    return np.concatenate(parts)


def seed_proposals_by_mcmc(
    observations, *, emulator, prior, extinction, n_tracts: int, error_floor: float, n_steps: int = 1000, seed: int = 0,
    chunk_size: int = 256, progress=None,
):
    """(:class:`PopulationProposal`, per-galaxy Gaussians) for :func:`popz.infer.hierarchical.calibrate`, from an
    MCMC fit of every galaxy (:func:`mcmc_samples`, the same arguments)."""
    samples = mcmc_samples(
        observations, emulator=emulator, prior=prior, extinction=extinction, n_tracts=n_tracts, error_floor=error_floor,
        n_steps=n_steps, seed=seed, chunk_size=chunk_size, progress=progress,
    )  # fmt: skip
    proposal = population_proposal(samples, prior.lower, prior.upper)
    return proposal, gaussians_from_samples(samples, proposal)


def save_seed(path, proposal: PopulationProposal, gaussians, fingerprint: str) -> None:
    """Write what :func:`seed_proposals_by_mcmc` returned to ``path`` (npz, atomically), with the ``fingerprint``
    of the data and settings it was made from (a few hundred floats per galaxy)."""
    from popz.io.atomic import atomic_path

    arrays = {name: np.asarray(getattr(proposal, name)) for name in ("lower", "upper", "u_loc", "u_scale")}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, mean=np.asarray(gaussians.mean), chol=np.asarray(gaussians.chol), fingerprint=np.array(fingerprint), **arrays)


def load_seed(path, fingerprint: str):
    """(:class:`PopulationProposal`, Gaussians) saved by :func:`save_seed` at ``path`` for the same ``fingerprint``;
    None where there is no such file or it was made from other data or settings."""
    from pathlib import Path

    from popz.infer.hierarchical import GaussianProposal

    if not Path(path).exists():
        return None
    with np.load(path) as saved:
        if str(saved["fingerprint"]) != fingerprint:
            return None
        proposal = PopulationProposal(*(jnp.asarray(saved[name]) for name in ("lower", "upper", "u_loc", "u_scale")))
        return proposal, GaussianProposal(jnp.asarray(saved["mean"]), jnp.asarray(saved["chol"]))
