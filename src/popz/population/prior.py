"""The population prior p(theta | hyper): ingredient C of the hierarchical model.

Family ``leja20-continuity`` (equations and sources in ``docs/model.md``):

- (redshift, log M*): n(z, M) proportional to phi(M | z) dV_c/dz, with phi the
  Leja et al. (2020) continuity-model double Schechter function whose
  parameters are quadratic in z through anchors at z = 0.2, 1.6, 3.0 (held
  constant outside), and dV_c/dz the comoving volume per unit redshift of the
  model's cosmology. Normalised over the parameter bounds by quadrature on a
  fixed grid, so it is differentiable in the hyperparameters.
- log Z | M, z: normal about a mass-metallicity relation.
- log SFR ratios | M: independent Student-t (Leja et al. 2019), location
  linear in log M.
- A_V | M: normal, mean linear in log M; birth-cloud factor, attenuation slope
  and log U: normal.

Every conditional is truncated to the model's parameter bounds and normalised
there. All densities are over the parameter vector in the model's order.
Functions take one galaxy's theta (n_parameters,) and a hyperparameter vector
(n_hyper,) in the order of :attr:`PopulationPrior.hyper_names`; they are pure
JAX, so jit, vmap and grad (in theta and in hyper) apply.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, gammaln, ndtr

from popz.config import ModelConfig, NormalPrior, StudentTPrior
from popz.errors import ConfigError, ParameterError
from popz.interpolation import interp

__all__ = ["FACTORS", "FAMILIES", "PopulationPrior", "make_population_prior"]

_LN10 = float(np.log(10.0))
_ANCHORS = (0.2, 1.6, 3.0)

FAMILIES = {
    "leja20-continuity": (
        "mf_logphi1_z1", "mf_logphi1_z2", "mf_logphi1_z3",
        "mf_logphi2_z1", "mf_logphi2_z2", "mf_logphi2_z3",
        "mf_logmstar_z1", "mf_logmstar_z2", "mf_logmstar_z3",
        "mf_alpha1", "mf_alpha2",
        "mzr_log_z0", "mzr_mass0", "mzr_gamma", "mzr_redshift_slope", "mzr_scatter",
        "sfh_df", "sfh_loc", "sfh_loc_mass_slope", "sfh_scale",
        "dust_av_loc", "dust_av_mass_slope", "dust_av_scale",
        "dust_eta_loc", "dust_eta_scale",
        "dust_index_loc", "dust_index_scale",
        "log_u_loc", "log_u_scale",
    ),
}  # fmt: skip

# the density's factors and the prefix of the hyperparameters each depends on (the family's naming convention)
FACTORS = (
    ("redshift_mass", "mf_"),
    ("log_metallicity", "mzr_"),
    ("dust_av", "dust_av_"),
    ("dust_eta", "dust_eta_"),
    ("dust_index", "dust_index_"),
    ("log_u", "log_u_"),
    ("sfh", "sfh_"),
)

_REQUIRED_PARAMETERS = ("redshift", "log_stellar_mass", "log_metallicity", "dust_av", "dust_eta", "dust_index", "log_u")


def _quadratic_through_anchors(y1, y2, y3, z):
    """The quadratic in z through (z_k, y_k) at the Leja et al. (2020) anchors, z clipped to [0.2, 3.0]."""
    z1, z2, z3 = _ANCHORS
    z = jnp.clip(z, z1, z3)
    # Lagrange form: exact at the anchors, no cancellation.
    return (
        y1 * (z - z2) * (z - z3) / ((z1 - z2) * (z1 - z3))
        + y2 * (z - z1) * (z - z3) / ((z2 - z1) * (z2 - z3))
        + y3 * (z - z1) * (z - z2) / ((z3 - z1) * (z3 - z2))
    )


def _log_double_schechter(logm, z, h):
    """ln phi(M | z) in Mpc^-3 dex^-1 (Leja et al. 2020, eq. B1-B2)."""
    logphi1 = _quadratic_through_anchors(h["mf_logphi1_z1"], h["mf_logphi1_z2"], h["mf_logphi1_z3"], z)
    logphi2 = _quadratic_through_anchors(h["mf_logphi2_z1"], h["mf_logphi2_z2"], h["mf_logphi2_z3"], z)
    logmstar = _quadratic_through_anchors(h["mf_logmstar_z1"], h["mf_logmstar_z2"], h["mf_logmstar_z3"], z)
    x = logm - logmstar
    one = _LN10 * (logphi1 + x * (h["mf_alpha1"] + 1.0))
    two = _LN10 * (logphi2 + x * (h["mf_alpha2"] + 1.0))
    return jnp.log(_LN10) + jnp.logaddexp(one, two) - 10.0**x


def _normal_log_prob(x, loc, scale, lo, hi):
    """ln of Normal(loc, scale) truncated to [lo, hi], at x."""
    a, b = (lo - loc) / scale, (hi - loc) / scale
    mass = ndtr(b) - ndtr(a)
    return -0.5 * ((x - loc) / scale) ** 2 - jnp.log(scale) - 0.5 * np.log(2 * np.pi) - jnp.log(mass)


def _student_t_cdf(t, df):
    """CDF of the standard Student-t; its derivative in df by central difference (JAX has none for betainc in a)."""
    return _t_cdf_custom(t, df)


@jax.custom_jvp
def _t_cdf_custom(t, df):
    tail = 0.5 * betainc(0.5 * df, 0.5, df / (df + t * t))
    return jnp.where(t > 0, 1.0 - tail, tail)


@_t_cdf_custom.defjvp
def _t_cdf_jvp(primals, tangents):
    t, df = primals
    dt, ddf = tangents
    value = _t_cdf_custom(t, df)
    pdf = jnp.exp(_student_t_log_pdf(t, df))
    step = 1e-3 * jnp.maximum(df, 1.0)
    ddf_value = (_t_cdf_custom(t, df + step) - _t_cdf_custom(t, df - step)) / (2 * step)
    return value, pdf * dt + ddf_value * ddf


def _student_t_log_pdf(t, df):
    return (
        gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * jnp.log(df * np.pi)
        - 0.5 * (df + 1.0) * jnp.log1p(t * t / df)
    )  # fmt: skip


def _student_t_log_mass(df, loc, scale, lo, hi):
    """ln of the probability Student-t(df, loc, scale) gives to [lo, hi]: the truncation's normaliser."""
    return jnp.log(_student_t_cdf((hi - loc) / scale, df) - _student_t_cdf((lo - loc) / scale, df))


def _student_t_log_prob(x, df, loc, scale, lo, hi, log_mass=None):
    """ln of Student-t(df, loc, scale) truncated to [lo, hi], at x; ``log_mass`` from :func:`_student_t_log_mass`
    where the caller has it (two incomplete beta functions, the costliest part to trace and compile)."""
    if log_mass is None:
        log_mass = _student_t_log_mass(df, loc, scale, lo, hi)
    return _student_t_log_pdf((x - loc) / scale, df) - jnp.log(scale) - log_mass


class _Grid(NamedTuple):
    """Midpoint grid over (redshift, log M*) for the normalisation and sampling of n(z, M)."""

    z: jax.Array  # (n_z,) cell centres
    logm: jax.Array  # (n_m,)
    dz: float
    dm: float
    log_dvdz: jax.Array  # (n_z,) ln dV_c/dz [Mpc^3 per unit z per sr] at the centres


class PopulationPrior:
    """p(theta | hyper) of a model with a ``population`` section (see the module docstring).

    Attributes
    ----------
    hyper_names : tuple of str, the order of hyperparameter vectors
    default_hyper : ndarray (n_hyper,), the config's values
    hyper_lower, hyper_upper : ndarray (n_hyper,), the config's bounds
    """

    def __init__(self, config: ModelConfig, *, n_redshift_cells: int = 800, n_mass_cells: int = 440):
        if config.population is None:
            raise ConfigError(f"model {config.name!r} has no population section")
        family = config.population.family
        if family not in FAMILIES:
            raise ConfigError(f"unknown population family {family!r}; popz has {', '.join(FAMILIES)}")
        names = FAMILIES[family]
        given = config.population.hyperparameters
        missing = [n for n in names if n not in given]
        unknown = [n for n in given if n not in names]
        if missing or unknown:
            raise ConfigError(
                f"population family {family!r}: "
                + "; ".join(
                    part
                    for part in (
                        f"missing hyperparameters {', '.join(missing)}" if missing else "",
                        f"unknown hyperparameters {', '.join(unknown)}" if unknown else "",
                    )
                    if part
                )
            )
        absent = [p for p in _REQUIRED_PARAMETERS if p not in config.parameter_names]
        if absent:
            raise ConfigError(f"population family {family!r} needs parameters {', '.join(absent)}")
        self.config = config
        self.family = family
        self.hyper_names = names
        self.default_hyper = np.array([given[n].value for n in names], np.float64)
        self.hyper_lower = np.array([given[n].bounds[0] for n in names])
        self.hyper_upper = np.array([given[n].bounds[1] for n in names])
        self._hyperpriors = [given[n].hyperprior for n in names]
        self.index = {name: config.index(name) for name in config.parameter_names}
        n_ratios = sum(name.startswith("log_sfr_ratio_") for name in config.parameter_names)
        self._ratio_index = np.array([config.index(f"log_sfr_ratio_{k}") for k in range(1, n_ratios + 1)], int)
        self.lower = jnp.asarray(config.lower, jnp.float32)
        self.upper = jnp.asarray(config.upper, jnp.float32)
        self._grid = self._make_grid(n_redshift_cells, n_mass_cells)
        self._sample_jit = jax.jit(self._sample, static_argnums=1)

    # ------------------------------------------------------------------ hyperparameters
    def hyper(self, **values: float) -> jax.Array:
        """A hyperparameter vector (n_hyper,): the defaults with ``values`` replaced by name; checked."""
        unknown = [k for k in values if k not in self.hyper_names]
        if unknown:
            raise ParameterError(f"unknown hyperparameters {', '.join(unknown)} (the family has {', '.join(self.hyper_names)})")
        vector = np.array([values.get(n, d) for n, d in zip(self.hyper_names, self.default_hyper)], np.float64)
        self.check_hyper(vector)
        return jnp.asarray(vector, jnp.float32)

    def hyper_dict(self, hyper) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.hyper_names, np.asarray(hyper))}

    def check_hyper(self, hyper) -> None:
        """ParameterError naming every hyperparameter outside its bounds (or not finite)."""
        hyper = np.asarray(hyper, np.float64)
        if hyper.shape != (len(self.hyper_names),):
            raise ParameterError(f"hyperparameter vector must have shape ({len(self.hyper_names)},), got {hyper.shape}")
        bad = [
            f"{n}={v:g} (bounds [{lo:g}, {hi:g}])"
            for n, v, lo, hi in zip(self.hyper_names, hyper, self.hyper_lower, self.hyper_upper)
            if not (np.isfinite(v) and lo <= v <= hi)
        ]
        if bad:
            raise ParameterError("hyperparameters outside their bounds: " + ", ".join(bad))

    def log_hyperprior(self, hyper) -> jax.Array:
        """ln p(hyper): the sum of the config's hyperpriors, each truncated to its bounds; -inf outside."""
        total = 0.0
        for i, prior in enumerate(self._hyperpriors):
            x, lo, hi = hyper[i], float(self.hyper_lower[i]), float(self.hyper_upper[i])
            if isinstance(prior, NormalPrior):
                total = total + _normal_log_prob(x, prior.loc, prior.scale, lo, hi)
            elif isinstance(prior, StudentTPrior):
                total = total + _student_t_log_prob(x, prior.df, prior.loc, prior.scale, lo, hi)
            else:
                total = total - np.log(hi - lo)
        inside = jnp.all((hyper >= self.hyper_lower) & (hyper <= self.hyper_upper))
        return jnp.where(inside, total, -jnp.inf)

    # ------------------------------------------------------------------ density
    def _named(self, hyper) -> dict:
        return {n: hyper[i] for i, n in enumerate(self.hyper_names)}

    def _make_grid(self, n_z: int, n_m: int) -> _Grid:
        from astropy import units as u

        cosmo = self.config.cosmology.astropy()
        (z_lo, z_hi), (m_lo, m_hi) = self._bounds("redshift"), self._bounds("log_stellar_mass")
        dz, dm = (z_hi - z_lo) / n_z, (m_hi - m_lo) / n_m
        z = z_lo + dz * (np.arange(n_z) + 0.5)
        logm = m_lo + dm * (np.arange(n_m) + 0.5)
        dvdz = cosmo.differential_comoving_volume(z).to_value(u.Mpc**3 / u.sr)
        return _Grid(jnp.asarray(z, jnp.float32), jnp.asarray(logm, jnp.float32), dz, dm, jnp.asarray(np.log(dvdz), jnp.float32))

    def _bounds(self, name: str) -> tuple[float, float]:
        lo, hi = self.config.parameters[self.index[name]].bounds
        return float(lo), float(hi)

    def _log_dvdz(self, z):
        """ln dV_c/dz at z, interpolated in ln(dV/dz / z^2) (smooth down to z = 0)."""
        g = self._grid
        return 2.0 * jnp.log(z) + interp(z, g.z, g.log_dvdz - 2.0 * jnp.log(g.z))

    def _log_number_grid(self, h) -> jax.Array:
        """ln n(z, M) [per sr per unit z per dex] at the grid's cell centres, shape (n_z, n_m)."""
        g = self._grid
        return g.log_dvdz[:, None] + jax.vmap(lambda z: _log_double_schechter(g.logm, z, h))(g.z)

    def log_number_normaliser(self, hyper) -> jax.Array:
        """ln of the number of galaxies per sr inside the (redshift, log M*) bounds (midpoint rule)."""
        g = self._grid
        return jax.nn.logsumexp(self._log_number_grid(self._named(hyper))) + np.log(g.dz * g.dm)

    def log_prob(self, theta, hyper) -> jax.Array:
        """ln p(theta | hyper) for theta (n_parameters,) or (n, n_parameters); -inf outside the bounds."""
        theta = jnp.asarray(theta)
        if theta.ndim == 2:
            norm = self.log_number_normaliser(hyper)
            return jax.vmap(lambda t: self._log_prob_one(t, hyper, norm))(theta)
        return self._log_prob_one(theta, hyper, self.log_number_normaliser(hyper))

    def _log_prob_one(self, theta, hyper, log_norm):
        h = self._named(hyper)
        ix = self.index
        z, logm = theta[ix["redshift"]], theta[ix["log_stellar_mass"]]
        lp = self._log_dvdz(z) + _log_double_schechter(logm, z, h) - log_norm
        lp = lp + self._conditionals_log_prob(theta, h)
        inside = jnp.all((theta >= self.lower) & (theta <= self.upper))
        return jnp.where(inside, lp, -jnp.inf)

    def changed_factors(self, old_hyper, new_hyper) -> tuple[str, ...]:
        """The factors of the density (:data:`FACTORS`) whose hyperparameters differ between two vectors (float32)."""
        old, new = np.asarray(old_hyper, np.float32), np.asarray(new_hyper, np.float32)
        differ = [n for n, a, b in zip(self.hyper_names, old, new) if a != b]
        unclaimed = [n for n in differ if not any(n.startswith(prefix) for _, prefix in FACTORS)]
        if unclaimed:  # a family whose names break the convention: every factor, to be safe
            return tuple(f for f, _ in FACTORS)
        return tuple(f for f, prefix in FACTORS if any(n.startswith(prefix) for n in differ))

    def log_prob_ratio(self, theta, old_hyper, new_hyper, factors: tuple[str, ...]) -> jax.Array:
        """ln p(theta | new) - ln p(theta | old) for one theta (n_parameters,), both normalised; -inf outside the bounds.

        Only the ``factors`` named (from :meth:`changed_factors`) are evaluated:
        the density is a product of factors, each depending on its own
        hyperparameters, so the others cancel exactly. This is what makes
        reweighting cheap when, say, the mass function changes but the SFH
        prior (whose truncated Student-t normalisers cost most) does not.
        """
        theta = jnp.asarray(theta)
        h_old, h_new = self._named(old_hyper), self._named(new_hyper)
        ix = self.index
        total = jnp.zeros((), theta.dtype)
        if "redshift_mass" in factors:
            z, logm = theta[ix["redshift"]], theta[ix["log_stellar_mass"]]
            total = total + _log_double_schechter(logm, z, h_new) - _log_double_schechter(logm, z, h_old)
            total = total - (self.log_number_normaliser(new_hyper) - self.log_number_normaliser(old_hyper))
        others = [f for f in factors if f != "redshift_mass"]
        if others:
            locs_new, locs_old = self._conditional_locs(theta, h_new), self._conditional_locs(theta, h_old)
            for name in others:
                total = total + (self._add_factor(0.0, name, theta, locs_new) - self._add_factor(0.0, name, theta, locs_old))
        inside = jnp.all((theta >= self.lower) & (theta <= self.upper))
        return jnp.where(inside, total, -jnp.inf)

    def log_prob_unnormalised(self, theta, hyper) -> jax.Array:
        """ln p(theta | hyper) up to a constant that depends on hyper only, for one theta (n_parameters,).

        What samplers at fixed hyperparameters need: it skips the (z, M) normaliser's quadrature.
        """
        return self._log_prob_one(jnp.asarray(theta), hyper, 0.0)

    def log_prob_redshift_mass(self, redshift, log_mass, hyper) -> jax.Array:
        """ln p(z, log M* | hyper), the normalised 2-D marginal (scalars or broadcastable arrays; no bounds check)."""
        h = self._named(hyper)
        return self._log_dvdz(redshift) + _log_double_schechter(log_mass, redshift, h) - self.log_number_normaliser(hyper)

    def conditional_log_prob(self, name: str, theta, hyper) -> jax.Array:
        """ln p(theta[name] | redshift, log M*, hyper): one 1-D conditional factor of :meth:`log_prob`."""
        h = self._named(hyper)
        locs = self._conditional_locs(theta, h)
        lo, hi = self._bounds(name)
        x = theta[self.index[name]]
        if name.startswith("log_sfr_ratio_"):
            loc, scale, df = locs["sfh"]
            return _student_t_log_prob(x, df, loc, scale, lo, hi)
        loc, scale = locs[name]
        return _normal_log_prob(x, loc, scale, lo, hi)

    def _conditional_locs(self, theta, h):
        ix = self.index
        z, dm = theta[ix["redshift"]], theta[ix["log_stellar_mass"]] - 10.0
        mzr = (
            h["mzr_log_z0"] - h["mzr_gamma"] * jnp.log10(1.0 + 10.0 ** (h["mzr_mass0"] - theta[ix["log_stellar_mass"]]))
            + h["mzr_redshift_slope"] * z
        )  # fmt: skip
        return {
            "log_metallicity": (mzr, h["mzr_scatter"]),
            "dust_av": (h["dust_av_loc"] + h["dust_av_mass_slope"] * dm, h["dust_av_scale"]),
            "dust_eta": (h["dust_eta_loc"], h["dust_eta_scale"]),
            "dust_index": (h["dust_index_loc"], h["dust_index_scale"]),
            "log_u": (h["log_u_loc"], h["log_u_scale"]),
            "sfh": (h["sfh_loc"] + h["sfh_loc_mass_slope"] * dm, h["sfh_scale"], h["sfh_df"]),
        }

    def _conditionals_log_prob(self, theta, h):
        locs = self._conditional_locs(theta, h)
        lp = 0.0
        for name in ("log_metallicity", "dust_av", "dust_eta", "dust_index", "log_u", "sfh"):
            lp = self._add_factor(lp, name, theta, locs)
        return lp

    def _add_factor(self, total, name: str, theta, locs):
        """``total`` plus ln of one conditional factor (a :data:`FACTORS` name other than redshift_mass) at theta,
        given the factors' locations and scales ``locs`` (from :meth:`_conditional_locs`); the SFH factor adds its
        log_sfr_ratio terms one by one."""
        if name == "sfh":
            loc, scale, df = locs["sfh"]
            log_mass = {}  # the ratios share loc, scale and df, and usually their bounds: one normaliser per bounds
            for i in self._ratio_index:
                lo, hi = self.config.parameters[i].bounds
                if (lo, hi) not in log_mass:
                    log_mass[lo, hi] = _student_t_log_mass(df, loc, scale, lo, hi)
                total = total + _student_t_log_prob(theta[i], df, loc, scale, lo, hi, log_mass[lo, hi])
            return total
        loc, scale = locs[name]
        lo, hi = self._bounds(name)
        return total + _normal_log_prob(theta[self.index[name]], loc, scale, lo, hi)

    # ------------------------------------------------------------------ sampling
    def sample(self, key: jax.Array, n: int, hyper=None) -> jax.Array:
        """n draws, shape (n, n_parameters), float32; ``hyper`` None means the defaults. Checks ``hyper``."""
        hyper = self.default_hyper if hyper is None else hyper
        self.check_hyper(np.asarray(hyper))
        return self._sample_jit(key, int(n), jnp.asarray(hyper, jnp.float32))

    def _sample(self, key, n, hyper):
        h = self._named(hyper)
        k_zm, k_rest = jax.random.split(key)
        z, logm = self._sample_redshift_mass(k_zm, n, h)
        theta = jnp.zeros((n, self.config.n_parameters), jnp.float32)
        theta = theta.at[:, self.index["redshift"]].set(z).at[:, self.index["log_stellar_mass"]].set(logm)
        locs = jax.vmap(lambda t: self._conditional_locs(t, h))(theta)
        keys = jax.random.split(k_rest, 6)
        for k, name in zip(keys[:5], ("log_metallicity", "dust_av", "dust_eta", "dust_index", "log_u")):
            loc, scale = locs[name]
            loc, scale = jnp.broadcast_to(loc, (n,)), jnp.broadcast_to(scale, (n,))
            lo, hi = self._bounds(name)
            x = loc + scale * jax.random.truncated_normal(k, (lo - loc) / scale, (hi - loc) / scale, (n,))
            theta = theta.at[:, self.index[name]].set(jnp.clip(x, lo, hi))
        loc, scale, df = locs["sfh"]
        for j, i in enumerate(self._ratio_index):
            lo, hi = self.config.parameters[i].bounds
            x = _truncated_student_t(jax.random.fold_in(keys[5], j), df, loc, scale, lo, hi, n)
            theta = theta.at[:, i].set(x)
        return theta

    def _sample_redshift_mass(self, key, n, h):
        """Exact draws from n(z, M) inside the bounds: cell by its envelope mass, then rejection within the cell."""
        g = self._grid
        log_grid = self._log_number_grid(h)
        # envelope per cell: the density's maximum over the cell's corners and centre, plus 2%
        zc = jnp.concatenate([g.z - g.dz / 2, g.z[-1:] + g.dz / 2])
        mc = jnp.concatenate([g.logm - g.dm / 2, g.logm[-1:] + g.dm / 2])
        corners = self._log_dvdz(zc)[:, None] + jax.vmap(lambda z: _log_double_schechter(mc, z, h))(zc)
        corner_max = jnp.maximum(
            jnp.maximum(corners[:-1, :-1], corners[1:, :-1]), jnp.maximum(corners[:-1, 1:], corners[1:, 1:])
        )
        log_env = jnp.maximum(log_grid, corner_max) + np.log(1.02)
        n_m = g.logm.shape[0]
        flat = log_env.ravel()
        cdf = jnp.cumsum(jnp.exp(flat - flat.max()))

        def propose(k):
            k_cell, k_z, k_m, k_u = jax.random.split(k, 4)
            cell = jnp.searchsorted(cdf, jax.random.uniform(k_cell, (n,)) * cdf[-1], side="right")
            cell = jnp.clip(cell, 0, flat.shape[0] - 1)
            iz, im = cell // n_m, cell % n_m
            z = g.z[iz] + g.dz * (jax.random.uniform(k_z, (n,)) - 0.5)
            logm = g.logm[im] + g.dm * (jax.random.uniform(k_m, (n,)) - 0.5)
            log_f = self._log_dvdz(z) + _log_double_schechter(logm, z, h)
            accept = jnp.log(jax.random.uniform(k_u, (n,))) < log_f - log_env[iz, im]
            return z, logm, accept

        return _rejection_loop(key, propose, n)


def _rejection_loop(key, propose, n, max_rounds: int = 200):
    """Keep each slot's first accepted proposal; proposals come as (a, b, accept) arrays of length n."""
    a0, b0, acc0 = propose(jax.random.fold_in(key, 0))

    def cond(state):
        i, _, _, done = state
        return (i < max_rounds) & ~jnp.all(done)

    def body(state):
        i, a, b, done = state
        a_new, b_new, acc = propose(jax.random.fold_in(key, i))
        take = acc & ~done
        return i + 1, jnp.where(take, a_new, a), jnp.where(take, b_new, b), done | acc

    _, a, b, _ = jax.lax.while_loop(cond, body, (1, a0, b0, acc0))
    return a, b


def _truncated_student_t(key, df, loc, scale, lo, hi, n, max_rounds: int = 200):
    """n draws of Student-t(df, loc, scale) truncated to [lo, hi] (loc may vary per draw).

    Bailey's (1994) polar method: exact, from uniforms only (``jax.random.t``
    goes through gamma draws, 30x slower on a CPU); the polar and the
    truncation rejections are one accept step.
    """
    loc, scale = jnp.broadcast_to(loc, (n,)), jnp.broadcast_to(scale, (n,))

    def propose(k):
        u, v = jax.random.uniform(k, (2, n), minval=-1.0, maxval=1.0)
        w = u * u + v * v
        w_safe = jnp.clip(w, 1e-30, 1.0)
        t = u * jnp.sqrt(df * (w_safe ** (-2.0 / df) - 1.0) / w_safe)
        x = loc + scale * t
        return x, x, (w < 1.0) & (w > 0.0) & (x >= lo) & (x <= hi)

    x, _ = _rejection_loop(key, propose, n, max_rounds)
    return jnp.clip(x, lo, hi)


def make_population_prior(config: ModelConfig) -> PopulationPrior:
    """The population prior of ``config`` (ConfigError when it has none or it is malformed)."""
    return PopulationPrior(config)
