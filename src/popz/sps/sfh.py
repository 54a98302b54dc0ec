"""The non-parametric continuity star-formation history (Leja et al. 2019).

Star formation is constant within each of ``n_bins`` bins of lookback time; the
free parameters are the ``n_bins - 1`` log ratios of the SFR in adjacent bins,
``log_sfr_ratio_k = log10 SFR_k / SFR_{k+1}``, bin 1 being the youngest.
The bin edges follow prospector-alpha: fixed recent edges (0, 30, 100 Myr), a
last bin covering the oldest ``last_bin_fraction`` of the Universe's age at the
galaxy's redshift, and log-spaced edges in between, so that no bin is ever older
than the Universe.
"""

from __future__ import annotations

import numpy as np

__all__ = ["continuity_bin_edges_yr", "continuity_sfr_per_bin", "continuity_log_mass_fractions"]


def continuity_bin_edges_yr(
    age_of_universe_yr: float,
    n_bins: int,
    fixed_edges_yr: tuple[float, ...] = (3e7, 1e8),
    last_bin_fraction: float = 0.15,
) -> np.ndarray:
    """Lookback-time bin edges, shape (n_bins + 1,), in years, from 0 to the age of the Universe.

    Raises ValueError when the fixed edges do not fit below the last bin.
    """
    n_log = n_bins - len(fixed_edges_yr) - 1
    if n_log < 1:
        raise ValueError(f"{n_bins} bins cannot hold {len(fixed_edges_yr)} fixed edges plus a log-spaced and a last bin")
    start_last = (1.0 - last_bin_fraction) * age_of_universe_yr
    if start_last <= fixed_edges_yr[-1]:
        raise ValueError(
            f"the Universe is {age_of_universe_yr / 1e6:.0f} Myr old: too young for a fixed edge at "
            f"{fixed_edges_yr[-1] / 1e6:.0f} Myr"
        )
    log_edges = np.geomspace(fixed_edges_yr[-1], start_last, n_log + 1)
    return np.concatenate([[0.0], fixed_edges_yr[:-1], log_edges, [age_of_universe_yr]])


def continuity_sfr_per_bin(log_sfr_ratios: np.ndarray, bin_edges_yr: np.ndarray, mass_formed: float = 1.0) -> np.ndarray:
    """SFR in each bin, shape (n_bins,), youngest first, in Msun/yr for ``mass_formed`` Msun in total.

    Parameters
    ----------
    log_sfr_ratios : ndarray of shape (n_bins - 1,)
        log10 SFR_k / SFR_{k+1}, youngest first.
    bin_edges_yr : ndarray of shape (n_bins + 1,)
        Lookback-time edges in years, increasing.
    """
    ratios = np.asarray(log_sfr_ratios, dtype=np.float64)
    log_sfr = np.concatenate([[0.0], -np.cumsum(ratios)])
    sfr = 10.0 ** (log_sfr - log_sfr.max())
    widths = np.diff(bin_edges_yr)
    return sfr * mass_formed / np.sum(sfr * widths)


def continuity_log_mass_fractions(
    log_sfr_ratios,
    age_of_universe_yr,
    fixed_edges_yr: tuple[float, ...] = (3e7, 1e8),
    last_bin_fraction: float = 0.15,
):
    """log10 of the fraction of mass formed in each bin, shape (n_bins,), youngest first (JAX, differentiable).

    The same bins as :func:`continuity_bin_edges_yr`; used as emulator inputs,
    since a composite spectrum is close to linear in these fractions.

    Parameters
    ----------
    log_sfr_ratios : array of shape (n_bins - 1,)
    age_of_universe_yr : scalar
    """
    import jax.numpy as jnp

    ratios = jnp.asarray(log_sfr_ratios)
    n_bins = ratios.shape[0] + 1
    n_log = n_bins - len(fixed_edges_yr) - 1
    start_last = (1.0 - last_bin_fraction) * age_of_universe_yr
    log_edges = jnp.exp(jnp.linspace(jnp.log(fixed_edges_yr[-1]), jnp.log(start_last), n_log + 1))
    edges = jnp.concatenate(
        [jnp.zeros(1), jnp.asarray(fixed_edges_yr[:-1]), log_edges, jnp.reshape(age_of_universe_yr, (1,))]
    )
    log_sfr = jnp.concatenate([jnp.zeros(1), -jnp.cumsum(ratios)])
    log_mass = log_sfr + jnp.log10(jnp.diff(edges))
    return log_mass - jnp.log10(jnp.sum(10.0 ** (log_mass - log_mass.max()))) - log_mass.max()
