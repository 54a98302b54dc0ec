"""The population prior: normalisation, sampler-density agreement, gradients, bad hyperparameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from popz.errors import ConfigError, ParameterError
from popz.population import make_population_prior


@pytest.fixture(scope="module")
def prior(config):
    return make_population_prior(config)


@pytest.fixture(scope="module")
def hyper(prior):
    # away from the defaults, so the test does not lean on them
    return prior.hyper(mf_alpha2=-1.3, mzr_scatter=0.4, sfh_loc_mass_slope=-0.1, sfh_scale=0.5, sfh_df=3.0, dust_av_loc=0.8)


@pytest.fixture(scope="module")
def draws(prior, hyper):
    return np.asarray(prior.sample(jax.random.key(7), 20000, hyper), np.float64)


def test_the_redshift_mass_marginal_integrates_to_one(prior, hyper):
    # Monte Carlo over the (z, log M) box with points independent of the normalisation's grid
    key_z, key_m = jax.random.split(jax.random.key(1))
    n = 400_000
    z = jax.random.uniform(key_z, (n,), minval=0.001, maxval=4.0)
    m = jax.random.uniform(key_m, (n,), minval=7.0, maxval=12.5)
    density = np.exp(np.asarray(prior.log_prob_redshift_mass(z, m, hyper), np.float64))
    volume = (4.0 - 0.001) * 5.5
    integral = volume * density.mean()
    error = volume * density.std() / np.sqrt(n)
    assert abs(integral - 1.0) < max(4 * error, 0.005), (integral, error)


@pytest.mark.parametrize("name", ["log_metallicity", "log_sfr_ratio_3", "dust_av"])
def test_a_truncated_one_dimensional_conditional_integrates_to_one(prior, hyper, draws, name):
    i = prior.index[name]
    lo, hi = prior.config.parameters[i].bounds
    theta = jnp.asarray(draws[:1], jnp.float32).repeat(200_000, axis=0)
    x = jax.random.uniform(jax.random.key(2), (200_000,), minval=lo, maxval=hi)
    density = np.exp(np.asarray(jax.vmap(lambda t: prior.conditional_log_prob(name, t, hyper))(theta.at[:, i].set(x))))
    integral = (hi - lo) * density.mean()
    error = (hi - lo) * density.std() / np.sqrt(density.size)
    assert abs(integral - 1.0) < max(4 * error, 0.005), (integral, error)


def test_samples_follow_the_redshift_marginal_of_the_density(prior, hyper, draws):
    z_grid = np.linspace(0.001, 4.0, 2001)
    m_grid = np.linspace(7.0, 12.5, 1101)
    zz, mm = np.meshgrid(z_grid, m_grid, indexing="ij")
    dens = np.exp(np.asarray(prior.log_prob_redshift_mass(jnp.asarray(zz), jnp.asarray(mm), hyper), np.float64))
    pz = np.trapezoid(dens, m_grid, axis=1)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pz[1:] + pz[:-1]) * np.diff(z_grid))])
    cdf /= cdf[-1]
    result = stats.kstest(draws[:, 0], lambda z: np.interp(z, z_grid, cdf))
    assert result.pvalue > 1e-3, result


@pytest.mark.parametrize("name", ["log_metallicity", "log_sfr_ratio_1", "log_sfr_ratio_6", "dust_av", "dust_eta", "log_u"])
def test_samples_follow_every_conditional_of_the_density(prior, hyper, draws, name):
    """Probability integral transform: the conditional CDF of each draw is Uniform(0, 1) if sampler and density agree."""
    i = prior.index[name]
    lo, hi = prior.config.parameters[i].bounds
    h = prior.hyper_dict(hyper)
    logm, z = draws[:, 1], draws[:, 0]
    if name.startswith("log_sfr_ratio_"):
        dist = stats.t(h["sfh_df"], h["sfh_loc"] + h["sfh_loc_mass_slope"] * (logm - 10.0), h["sfh_scale"])
    elif name == "log_metallicity":
        mean = h["mzr_log_z0"] - h["mzr_gamma"] * np.log10(1 + 10 ** (h["mzr_mass0"] - logm)) + h["mzr_redshift_slope"] * z
        dist = stats.norm(mean, h["mzr_scatter"])
    elif name == "dust_av":
        dist = stats.norm(h["dust_av_loc"] + h["dust_av_mass_slope"] * (logm - 10.0), h["dust_av_scale"])
    else:
        key = {"dust_eta": "dust_eta", "log_u": "log_u"}[name]
        dist = stats.norm(h[f"{key}_loc"], h[f"{key}_scale"])
    pit = (dist.cdf(draws[:, i]) - dist.cdf(lo)) / (dist.cdf(hi) - dist.cdf(lo))
    result = stats.kstest(pit, "uniform")
    assert result.pvalue > 1e-3, result
    # and the density the prior evaluates is that truncated conditional
    theta = jnp.asarray(draws[:5], jnp.float32)
    ours = np.asarray(jax.vmap(lambda t: prior.conditional_log_prob(name, t, hyper))(theta))
    expected = (dist.logpdf(draws[:, i]) - np.log(dist.cdf(hi) - dist.cdf(lo)))[:5]
    assert np.allclose(ours, expected, atol=2e-3)


def test_log_prob_of_draws_is_finite_and_minus_infinity_outside_bounds(prior, hyper, draws):
    lp = np.asarray(prior.log_prob(jnp.asarray(draws[:500], jnp.float32), hyper))
    assert np.all(np.isfinite(lp))
    outside = jnp.asarray(draws[0], jnp.float32).at[prior.index["dust_av"]].set(-0.1)
    assert prior.log_prob(outside, hyper) == -np.inf


def test_gradients_in_theta_and_hyperparameters_are_finite(prior, hyper, draws):
    theta = jnp.asarray(draws[:64], jnp.float32)
    g_hyper = jax.grad(lambda h: prior.log_prob(theta, h).sum())(hyper)
    g_theta = jax.vmap(jax.grad(prior.log_prob), in_axes=(0, None))(theta, hyper)
    assert np.all(np.isfinite(np.asarray(g_hyper))) and np.any(np.asarray(g_hyper) != 0)
    assert np.all(np.isfinite(np.asarray(g_theta)))
    # the df derivative (through the truncated Student-t normaliser) matches a finite difference
    j = prior.hyper_names.index("sfh_df")
    f = lambda d: float(prior.log_prob(theta, hyper.at[j].set(d)).sum())
    numeric = (f(3.0 + 1e-2) - f(3.0 - 1e-2)) / 2e-2
    assert np.isclose(float(g_hyper[j]), numeric, rtol=2e-2, atol=1e-2)


def test_hyperparameters_outside_bounds_are_a_clear_error(prior):
    with pytest.raises(ParameterError, match=r"sfh_scale=9 \(bounds \[0.05, 2\]\)"):
        prior.hyper(sfh_scale=9.0)
    with pytest.raises(ParameterError, match="unknown hyperparameters nope"):
        prior.hyper(nope=1.0)
    with pytest.raises(ParameterError, match="outside their bounds"):
        prior.sample(jax.random.key(0), 10, np.full(len(prior.hyper_names), 100.0))
    assert np.isfinite(float(prior.log_hyperprior(prior.hyper())))
    assert float(prior.log_hyperprior(jnp.asarray(prior.default_hyper).at[0].set(10.0))) == -np.inf


def test_a_model_without_or_with_a_broken_population_section_is_a_config_error(config):
    with pytest.raises(ConfigError, match="has no population section"):
        make_population_prior(config.model_copy(update={"population": None}))
    broken = config.population.model_copy(update={"hyperparameters": {"mf_alpha1": config.population.hyperparameters["mf_alpha1"]}})
    with pytest.raises(ConfigError, match="missing hyperparameters mf_logphi1_z1"):
        make_population_prior(config.model_copy(update={"population": broken}))


def test_the_population_section_does_not_change_the_model_hash(config):
    assert config.hash == config.model_copy(update={"population": None}).hash
