"""The photometric emulator: parameters -> AB magnitudes in a fixed band set.

What the network learns is the smooth part only. For every band,

    mag = y(theta_without_mass) - 2.5 log10(M* / Msun) + DM(z)

where DM(z) = 5 log10(d_L / 10 pc) is computed exactly from the model's
cosmology and the stellar mass enters exactly (the SED is linear in mass). y is
one MLP with an output per band on standardised inputs and outputs.

The emulator also carries its training domain (the model's bounds, and the
0.1 and 99.9 percentiles of each parameter in its training set) and an error
model (the RMS of held-out residuals per band in redshift bins), which the
likelihood adds to the flux variance.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from popz.emulate.networks import Standardiser, make_mlp

__all__ = ["PhotometryEmulator", "DOMAIN_OUTSIDE_BOUNDS", "DOMAIN_SPARSE_TAIL", "distance_modulus_table"]

DOMAIN_OUTSIDE_BOUNDS = 1  # some parameter is outside the bounds the emulator was trained within
DOMAIN_SPARSE_TAIL = 2  # some parameter is beyond the 0.1/99.9 percentiles of the training set

_TEN_PC_CM = 3.085677581491367e19


def distance_modulus_table(config) -> tuple[np.ndarray, np.ndarray]:
    """Redshift grid and d_L/z (cm) of the model's cosmology, for :func:`_distance_modulus`."""
    from popz.sps.cosmology import make_cosmology_table

    table = make_cosmology_table(config.cosmology)
    return table.redshift.astype(np.float32), table.luminosity_distance_over_z_cm.astype(np.float64)


class PhotometryEmulator(eqx.Module):
    """theta (n_parameters,) -> AB magnitudes (n_bands,), mass-normalised MLP.

    Build with :func:`popz.emulate.train.train_photometry_emulator` or load with
    :func:`popz.emulate.load`. Every method takes one galaxy; vmap for many.
    """

    network: eqx.nn.MLP
    x_standardiser: Standardiser
    y_standardiser: Standardiser
    lower: jax.Array  # (n_parameters,) bounds of the training domain
    upper: jax.Array
    tail_lower: jax.Array  # (n_parameters,) 0.1 and 99.9 percentiles of the training set
    tail_upper: jax.Array
    dl_redshift: jax.Array  # (n_z,) grid for d_L / z
    dl_over_z_log10: jax.Array  # (n_z,) log10(d_L / z / 10 pc)
    error_redshift_edges: jax.Array  # (n_zbins + 1,)
    error_rms_mag: jax.Array  # (n_zbins, n_bands) held-out residual RMS per redshift bin
    age_redshift: jax.Array  # (n_age,) grid for the age of the Universe
    age_yr: jax.Array  # (n_age,)
    redshift_index: int = eqx.field(static=True)
    mass_index: int = eqx.field(static=True)
    band_names: tuple = eqx.field(static=True)
    sfh_ratio_index: tuple = eqx.field(static=True)  # positions of log_sfr_ratio_1..K (empty: none)
    sfh_fixed_edges_yr: tuple = eqx.field(static=True)
    sfh_last_bin_fraction: float = eqx.field(static=True)

    @property
    def n_parameters(self) -> int:
        return int(self.lower.shape[0])

    def raw_features(self, theta: jax.Array) -> jax.Array:
        """Network input before standardisation: theta without the stellar mass, then (for a
        continuity SFH) log10 of the mass fraction formed in each bin, floored at 1e-6."""
        keep = [i for i in range(self.n_parameters) if i != self.mass_index]
        parts = [theta[jnp.array(keep)]]
        if self.sfh_ratio_index:
            from popz.sps.sfh import continuity_log_mass_fractions

            age = jnp.interp(theta[self.redshift_index], self.age_redshift, self.age_yr)
            fractions = continuity_log_mass_fractions(
                theta[jnp.array(self.sfh_ratio_index)], age, self.sfh_fixed_edges_yr, self.sfh_last_bin_fraction
            )
            parts.append(jnp.maximum(fractions, -6.0))
        return jnp.concatenate(parts)

    def features(self, theta: jax.Array) -> jax.Array:
        """Standardised network input."""
        return self.x_standardiser.forward(self.raw_features(jnp.asarray(theta, jnp.float32)))

    def distance_modulus(self, redshift: jax.Array) -> jax.Array:
        """5 log10(d_L / 10 pc) at ``redshift`` (scalar), float32."""
        log_dl_over_z = jnp.interp(redshift, self.dl_redshift, self.dl_over_z_log10)
        return 5.0 * (jnp.log10(redshift) + log_dl_over_z)

    def magnitudes(self, theta: jax.Array) -> jax.Array:
        """Noiseless AB magnitudes, shape (n_bands,), of one parameter vector (n_parameters,)."""
        theta = jnp.asarray(theta, jnp.float32)
        y = self.y_standardiser.inverse(self.network(self.features(theta)))
        return y - 2.5 * theta[self.mass_index] + self.distance_modulus(theta[self.redshift_index])

    def flux_nJy(self, theta: jax.Array) -> jax.Array:
        """Noiseless fluxes in nJy, shape (n_bands,)."""
        return 10.0 ** (-0.4 * (self.magnitudes(theta) - 31.4000656))

    def error_mag(self, theta: jax.Array) -> jax.Array:
        """Emulator error (held-out RMS, mag), shape (n_bands,), at theta's redshift."""
        z = theta[self.redshift_index]
        edges = self.error_redshift_edges
        i = jnp.clip(jnp.searchsorted(edges, z, side="right") - 1, 0, edges.shape[0] - 2)
        return self.error_rms_mag[i]

    def domain_flags(self, theta: jax.Array) -> jax.Array:
        """Bitmask (int32 scalar): DOMAIN_OUTSIDE_BOUNDS | DOMAIN_SPARSE_TAIL, 0 inside the domain."""
        outside = jnp.any((theta < self.lower) | (theta > self.upper))
        tail = jnp.any((theta < self.tail_lower) | (theta > self.tail_upper))
        return jnp.where(outside, DOMAIN_OUTSIDE_BOUNDS, 0) | jnp.where(tail, DOMAIN_SPARSE_TAIL, 0)

    def targets(self, theta: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        """What the network learns, shape (n, n_bands): mag + 2.5 log M - DM(z), for training."""
        theta = jnp.asarray(theta, jnp.float32)
        dm = jax.vmap(self.distance_modulus)(theta[:, self.redshift_index])
        return np.asarray(magnitudes + 2.5 * np.asarray(theta[:, self.mass_index])[:, None] - np.asarray(dm)[:, None])


def new_photometry_emulator(
    key: jax.Array,
    config,
    theta: np.ndarray,
    *,
    hidden: tuple[int, ...],
    activation: str,
    magnitudes: np.ndarray | None = None,
    n_error_bins: int = 1,
) -> PhotometryEmulator:
    """An untrained emulator for ``config`` with standardisers fitted to a training set.

    theta : (n, n_parameters) training parameters; magnitudes : (n, n_bands) their magnitudes.
    With ``magnitudes`` None the output standardiser is the identity (a skeleton for loading).
    ``n_error_bins`` redshift bins (equal width over the bounds) hold the error model.
    """
    from popz.sps.cosmology import make_cosmology_table

    n_par = config.n_parameters
    mass_index, redshift_index = config.index("log_stellar_mass"), config.index("redshift")
    z_grid, dl_over_z = distance_modulus_table(config)
    n_ratios = sum(name.startswith("log_sfr_ratio_") for name in config.parameter_names)
    ratio_index = tuple(config.index(f"log_sfr_ratio_{k}") for k in range(1, n_ratios + 1))
    settings = config.simulator.settings
    ages = make_cosmology_table(config.cosmology, dz=0.01)
    n_bands = len(config.bands)
    n_features = n_par - 1 + (n_ratios + 1 if n_ratios else 0)
    emulator = PhotometryEmulator(
        network=make_mlp(key, n_in=n_features, n_out=n_bands, hidden=hidden, activation=activation),
        x_standardiser=Standardiser(jnp.zeros(n_features), jnp.ones(n_features)),
        y_standardiser=Standardiser(jnp.zeros(n_bands), jnp.ones(n_bands)),
        lower=jnp.asarray(config.lower, jnp.float32),
        upper=jnp.asarray(config.upper, jnp.float32),
        tail_lower=jnp.asarray(np.percentile(theta, 0.1, axis=0), jnp.float32),
        tail_upper=jnp.asarray(np.percentile(theta, 99.9, axis=0), jnp.float32),
        dl_redshift=jnp.asarray(z_grid),
        dl_over_z_log10=jnp.asarray(np.log10(dl_over_z / _TEN_PC_CM), jnp.float32),
        error_redshift_edges=jnp.asarray(
            np.linspace(config.lower[redshift_index], config.upper[redshift_index], n_error_bins + 1), jnp.float32
        ),
        error_rms_mag=jnp.zeros((n_error_bins, n_bands), jnp.float32),
        age_redshift=jnp.asarray(ages.redshift, jnp.float32),
        age_yr=jnp.asarray(ages.age_yr, jnp.float32),
        redshift_index=redshift_index,
        mass_index=mass_index,
        band_names=tuple(config.bands),
        sfh_ratio_index=ratio_index,
        sfh_fixed_edges_yr=tuple(1e6 * e for e in settings.get("sfh_fixed_edges_myr", (30.0, 100.0))),
        sfh_last_bin_fraction=float(settings.get("sfh_last_bin_fraction", 0.15)),
    )
    raw = np.asarray(jax.jit(jax.vmap(emulator.raw_features))(jnp.asarray(theta, jnp.float32)))
    emulator = eqx.tree_at(lambda e: e.x_standardiser, emulator, Standardiser.fit(raw))
    if magnitudes is not None:
        emulator = eqx.tree_at(lambda e: e.y_standardiser, emulator, Standardiser.fit(emulator.targets(theta, magnitudes)))
    return emulator
