import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from popz.population import TrainingPrior


def test_draws_are_inside_bounds_and_reproducible(config):
    prior = TrainingPrior(config)
    a = prior.sample(jax.random.key(7), 5000)
    b = prior.sample(jax.random.key(7), 5000)
    c = prior.sample(jax.random.key(8), 5000)
    assert a.dtype == np.float32 and a.shape == (5000, config.n_parameters)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    x = a.astype(np.float64)
    assert np.all(x >= config.lower) and np.all(x <= config.upper)


def test_marginals_follow_the_configured_priors(config):
    x = TrainingPrior(config).sample(jax.random.key(0), 20000).astype(np.float64)
    for i, p in enumerate(config.parameters):
        lo, hi = p.bounds
        if p.prior.type == "uniform":
            dist = stats.uniform(lo, hi - lo)
            cdf = dist.cdf
        else:
            dist = stats.t(p.prior.df, p.prior.loc, p.prior.scale)
            mass = dist.cdf(hi) - dist.cdf(lo)
            cdf = lambda v, d=dist, lo=lo, m=mass: (d.cdf(v) - d.cdf(lo)) / m  # noqa: E731
        assert stats.kstest(x[:, i], cdf).pvalue > 1e-3, p.name


def test_log_prob_normalised_and_zero_outside(config):
    prior = TrainingPrior(config)
    x = prior.sample(jax.random.key(1), 10)
    lp = prior.log_prob(x)
    assert jnp.all(jnp.isfinite(lp))
    outside = np.array(x[0], dtype=np.float64)
    outside[0] = config.upper[0] + 1
    assert prior.log_prob(outside) == -jnp.inf
    # Along one Student-t coordinate, others fixed, the density integrates to the
    # product of the other parameters' truncated densities at their values
    # (computed independently with scipy): this checks the normalisation.
    grid = np.linspace(-5, 5, 20001)
    mid = 0.5 * (config.lower + config.upper)
    theta = np.tile(mid, (grid.size, 1))
    theta[:, 3] = grid
    density = np.exp(np.asarray(prior.log_prob(theta), dtype=np.float64))
    others = 1.0
    for i, p in enumerate(config.parameters):
        if i == 3:
            continue
        lo, hi = p.bounds
        if p.prior.type == "uniform":
            others *= 1.0 / (hi - lo)
        else:
            t = stats.t(p.prior.df, p.prior.loc, p.prior.scale)
            others *= t.pdf(mid[i]) / (t.cdf(hi) - t.cdf(lo))
    assert abs(np.trapezoid(density, grid) / others - 1.0) < 1e-3
