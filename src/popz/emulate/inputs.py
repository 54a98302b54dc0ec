"""What every emulator shares: its input encoding, training domain and distances."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.config import ModelConfig
from popz.emulate.networks import Standardiser
from popz.interpolation import interp

__all__ = [
    "ParameterSpace", "Distances", "new_parameter_space", "new_distances", "domain_share", "DOMAIN_OUTSIDE_BOUNDS",
    "DOMAIN_SPARSE_TAIL",
]  # fmt: skip

DOMAIN_OUTSIDE_BOUNDS = 1  # some parameter is outside the bounds the emulator was trained within
DOMAIN_SPARSE_TAIL = 2  # some parameter is beyond the 0.1/99.9 percentiles of the training set

_TEN_PC_CM = 3.085677581491367e19


class ParameterSpace(eqx.Module):
    """Input encoding and training domain of an emulator (one galaxy per call).

    The network sees theta without the stellar mass (which every emulator adds
    back exactly) and, for a continuity SFH, log10 of the mass fraction formed
    in each bin, floored at 1e-6: a composite spectrum is close to linear in
    those fractions. Everything is standardised with training-set moments.
    """

    x_standardiser: Standardiser
    lower: jax.Array  # (n_parameters,) bounds of the training domain
    upper: jax.Array
    tail_lower: jax.Array  # (n_parameters,) 0.1 and 99.9 percentiles of the training set
    tail_upper: jax.Array
    age_redshift: jax.Array  # (n_age,) grid for the age of the Universe
    age_yr: jax.Array  # (n_age,)
    redshift_index: int = eqx.field(static=True)
    mass_index: int = eqx.field(static=True)
    sfh_ratio_index: tuple = eqx.field(static=True)  # positions of log_sfr_ratio_1..K (empty: none)
    sfh_fixed_edges_yr: tuple = eqx.field(static=True)
    sfh_last_bin_fraction: float = eqx.field(static=True)

    @property
    def n_parameters(self) -> int:
        return int(self.lower.shape[0])

    def raw_features(self, theta: jax.Array) -> jax.Array:
        """Network input before standardisation, shape (n_features,)."""
        keep = [i for i in range(self.n_parameters) if i != self.mass_index]
        parts = [theta[jnp.array(keep)]]
        if self.sfh_ratio_index:
            from popz.sps.sfh import continuity_log_mass_fractions

            age = interp(theta[self.redshift_index], self.age_redshift, self.age_yr)
            fractions = continuity_log_mass_fractions(
                theta[jnp.array(self.sfh_ratio_index)], age, self.sfh_fixed_edges_yr, self.sfh_last_bin_fraction
            )
            parts.append(jnp.maximum(fractions, -6.0))
        return jnp.concatenate(parts)

    def features(self, theta: jax.Array) -> jax.Array:
        """Standardised network input, shape (n_features,)."""
        return self.x_standardiser.forward(self.raw_features(jnp.asarray(theta, jnp.float32)))

    def domain_flags(self, theta: jax.Array) -> jax.Array:
        """Bitmask (int32 scalar): DOMAIN_OUTSIDE_BOUNDS | DOMAIN_SPARSE_TAIL, 0 inside the domain."""
        outside = jnp.any((theta < self.lower) | (theta > self.upper))
        tail = jnp.any((theta < self.tail_lower) | (theta > self.tail_upper))
        return jnp.where(outside, DOMAIN_OUTSIDE_BOUNDS, 0) | jnp.where(tail, DOMAIN_SPARSE_TAIL, 0)


def new_parameter_space(config: ModelConfig, theta: np.ndarray) -> ParameterSpace:
    """The encoding of ``config``'s parameters, standardised on ``theta`` (n, n_parameters)."""
    from popz.sps.cosmology import make_cosmology_table

    n_ratios = sum(name.startswith("log_sfr_ratio_") for name in config.parameter_names)
    settings = config.simulator.settings
    ages = make_cosmology_table(config.cosmology, dz=0.01)
    space = ParameterSpace(
        x_standardiser=Standardiser(jnp.zeros(1), jnp.ones(1)),
        lower=jnp.asarray(config.lower, jnp.float32),
        upper=jnp.asarray(config.upper, jnp.float32),
        tail_lower=jnp.asarray(np.percentile(theta, 0.1, axis=0), jnp.float32),
        tail_upper=jnp.asarray(np.percentile(theta, 99.9, axis=0), jnp.float32),
        age_redshift=jnp.asarray(ages.redshift, jnp.float32),
        age_yr=jnp.asarray(ages.age_yr, jnp.float32),
        redshift_index=config.index("redshift"),
        mass_index=config.index("log_stellar_mass"),
        sfh_ratio_index=tuple(config.index(f"log_sfr_ratio_{k}") for k in range(1, n_ratios + 1)),
        sfh_fixed_edges_yr=tuple(1e6 * e for e in settings.get("sfh_fixed_edges_myr", (30.0, 100.0))),
        sfh_last_bin_fraction=float(settings.get("sfh_last_bin_fraction", 0.15)),
    )
    raw = np.asarray(jax.jit(jax.vmap(space.raw_features))(jnp.asarray(theta, jnp.float32)))
    return eqx.tree_at(lambda s: s.x_standardiser, space, Standardiser.fit(raw))


def domain_share(space: ParameterSpace, samples: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """How far one galaxy's posterior draws ``samples`` (S, n_parameters) leave the emulator's training domain (scalar).

    ``weights`` (S,), summing to 1: importance weights of the draws (default equal).

    The larger of: the share of draws outside the bounds, and the largest share,
    over parameters, of draws beyond that parameter's sparse tail. The training
    set itself has 0.2% of its draws beyond each parameter's tail (0.1/99.9
    percentiles), and so about 2.5% beyond some tail in 13 parameters: a share
    of draws beyond *any* tail would flag every galaxy whose posterior follows
    the prior in a few parameters (the SFH ratios, say). The fits flag a share
    above 1%, five times the training set's own rate in one parameter.
    """
    if weights is None:
        weights = jnp.full(samples.shape[:1], 1.0 / samples.shape[0])
    outside = weights @ jnp.any((samples < space.lower) | (samples > space.upper), axis=1).astype(weights.dtype)
    tail = jnp.max(weights @ ((samples < space.tail_lower) | (samples > space.tail_upper)).astype(weights.dtype))
    return jnp.maximum(outside, tail)


class Distances(eqx.Module):
    """Luminosity distance of the model's cosmology, as log10(d_L / z) on a redshift grid (float32-safe)."""

    redshift: jax.Array  # (n_z,)
    log10_dl_over_z_cm: jax.Array  # (n_z,)

    def log10_luminosity_distance_cm(self, redshift: jax.Array) -> jax.Array:
        return jnp.log10(redshift) + interp(redshift, self.redshift, self.log10_dl_over_z_cm)

    def distance_modulus(self, redshift: jax.Array) -> jax.Array:
        """5 log10(d_L / 10 pc)."""
        return 5.0 * (self.log10_luminosity_distance_cm(redshift) - np.log10(_TEN_PC_CM))


def new_distances(config: ModelConfig) -> Distances:
    from popz.sps.cosmology import make_cosmology_table

    table = make_cosmology_table(config.cosmology)
    return Distances(
        jnp.asarray(table.redshift, jnp.float32), jnp.asarray(np.log10(table.luminosity_distance_over_z_cm), jnp.float32)
    )
