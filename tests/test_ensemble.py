"""The batched ensemble sampler: statistics on known targets, batched over 100 of them (assert on numbers)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popz.infer import ensemble
from popz.infer.diagnostics import integrated_autocorr_time, split_rhat

N_TARGETS = 100


def _correlated_gaussians(key, n, d=10):
    """n random 10-D Gaussians: means (n, d), covariance factors (n, d, d) with strong correlations."""
    k1, k2, k3 = jax.random.split(key, 3)
    means = jax.random.normal(k1, (n, d)) * 3.0
    a = jax.random.normal(k2, (n, d, d))
    q, _ = jnp.linalg.qr(a)
    scales = jnp.exp(jax.random.uniform(k3, (n, d), minval=-1.5, maxval=1.5))  # condition number ~ 20
    chol = q * scales[:, None, :]
    return means, chol


def _gaussian_logdensity(mean, chol):
    cov_inv = jnp.linalg.inv(chol @ chol.T)

    def logdensity(x):
        r = x - mean
        return -0.5 * r @ cov_inv @ r

    return logdensity


def _run_batch(key, means, chols, n_walkers, n_steps, init_fn, jit=True):
    def one(k, mean, chol, x0, move_key):
        logdensity = _gaussian_logdensity(mean, chol)
        state = ensemble.init(x0, logdensity)
        _, chain, _, acc = ensemble.sample(k, state, logdensity, n_steps, move_key=move_key)
        return chain, acc

    keys = jax.random.split(key, means.shape[0])
    x0 = init_fn(jax.random.fold_in(key, 1), means, chols)
    # as popz fit runs it: one stream of move choices shared by every target
    run = jax.vmap(one, in_axes=(0, 0, 0, 0, None))
    return (jax.jit(run) if jit else run)(keys, means, chols, x0, jax.random.fold_in(key, 2))


def _init_near(key, means, chols, n_walkers=32):
    # started in a small ball off the mean: the sampler has to find the scale
    noise = 0.1 * jax.random.normal(key, (means.shape[0], n_walkers, means.shape[1]))
    return means[:, None, :] + 1.0 + noise


def test_ten_dimensional_correlated_gaussians_batched_over_100_targets():
    key = jax.random.key(0)
    means, chols = _correlated_gaussians(key, N_TARGETS)
    chain, acc = _run_batch(jax.random.key(1), means, chols, 32, 6000, _init_near)
    kept = np.asarray(chain)[:, 2000:]  # (G, T, W, D)
    sd_true = np.sqrt(np.einsum("gij,gij->gi", np.asarray(chols), np.asarray(chols)))
    flat = kept.reshape(N_TARGETS, -1, 10)
    tau = np.asarray(jax.vmap(integrated_autocorr_time)(jnp.asarray(kept)))  # (G, D)
    n_eff = kept.shape[1] * kept.shape[2] / tau.max(axis=1)
    # mean error in units of its Monte Carlo error: about N(0, 1); allow 4.5 sigma over 1000 numbers
    z = (flat.mean(axis=1) - np.asarray(means)) / (sd_true / np.sqrt(n_eff[:, None]))
    assert np.max(np.abs(z)) < 4.5 and abs(np.mean(z)) < 0.3 and 0.5 < np.std(z) < 1.6, (np.abs(z).max(), z.std())
    # standard deviations within 10% (Monte Carlo error of an sd with n_eff >= 300 is < 5%)
    assert np.all(n_eff > 300)
    assert np.max(np.abs(flat.std(axis=1) / sd_true - 1)) < 0.15
    assert 0.15 < float(np.mean(acc)) < 0.6
    assert np.all(np.asarray(jax.vmap(split_rhat)(jnp.asarray(kept))) < 1.05)


def _bimodal_logdensity(weight_a, separation):
    """2-D mixture of two unit Gaussians at (0, 0) and (separation, separation), weight_a on the first."""

    def logdensity(x):
        la = jnp.log(weight_a) - 0.5 * jnp.sum(x**2)
        lb = jnp.log1p(-weight_a) - 0.5 * jnp.sum((x - separation) ** 2)
        return jnp.logaddexp(la, lb)

    return logdensity


def test_bimodal_mixture_mode_weights_are_recovered_from_a_wrong_start():
    separation = 8.0  # modes 11 sigma apart: the stretch move alone cannot cross
    weights = jnp.linspace(0.2, 0.8, N_TARGETS)
    n_walkers, n_steps = 32, 8000

    def one(k, w):
        logdensity = _bimodal_logdensity(w, separation)
        k_init, k_run = jax.random.split(k)
        # 3/4 of the walkers start in mode A whatever the true weight
        which = (jnp.arange(n_walkers) % 4 != 0).astype(jnp.float32)
        x0 = (1.0 - which)[:, None] * separation + jax.random.normal(k_init, (n_walkers, 2))
        state = ensemble.init(x0, logdensity)
        _, chain, _, _ = ensemble.sample(k_run, state, logdensity, n_steps, move_key=jax.random.key(4))
        return chain

    chain = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), N_TARGETS), weights))
    kept = chain[:, 1000:]
    in_a = (kept.sum(axis=-1) < separation).mean(axis=(1, 2))
    err = in_a - np.asarray(weights)
    assert np.max(np.abs(err)) < 0.05, np.abs(err).max()
    assert abs(np.mean(err)) < 0.01
    # within a mode, the moments are a unit Gaussian's
    a = kept[kept.sum(axis=-1) < separation]
    assert np.allclose(a.mean(axis=0), 0.0, atol=0.02) and np.allclose(a.std(axis=0), 1.0, atol=0.03)


def test_results_are_identical_with_and_without_jit():
    means, chols = _correlated_gaussians(jax.random.key(5), 4, d=3)
    with_jit = _run_batch(jax.random.key(6), means, chols, 8, 50, lambda k, m, c: _init_near(k, m, c, 8), jit=True)
    without = _run_batch(jax.random.key(6), means, chols, 8, 50, lambda k, m, c: _init_near(k, m, c, 8), jit=False)
    np.testing.assert_allclose(np.asarray(with_jit[0]), np.asarray(without[0]), rtol=1e-5, atol=1e-5)


def test_an_odd_or_tiny_ensemble_is_refused():
    with pytest.raises(ValueError, match="even number of walkers"):
        ensemble.init(jnp.zeros((5, 2)), lambda x: 0.0)


def test_autocorrelation_time_of_an_ar1_process():
    """AR(1) with coefficient phi has tau = (1 + phi) / (1 - phi)."""
    phi, t, w = 0.8, 20000, 16
    eps = np.random.default_rng(0).standard_normal((t, w))
    x = np.zeros((t, w))
    for i in range(1, t):
        x[i] = phi * x[i - 1] + eps[i]
    tau = float(integrated_autocorr_time(jnp.asarray(x[:, :, None]))[0])
    assert abs(tau / 9.0 - 1) < 0.1, tau


def test_rescue_moves_only_stranded_walkers_onto_good_ones():
    logdensity = lambda x: -0.5 * jnp.sum(x**2)  # noqa: E731
    position = jax.random.normal(jax.random.key(0), (16, 3)).at[5].set(jnp.array([30.0, 0.0, 0.0]))
    state = ensemble.init(position, logdensity)
    rescued = ensemble.rescue_stragglers(jax.random.key(1), state, logdensity, threshold=15.0)
    moved = np.any(np.asarray(rescued.position) != np.asarray(state.position), axis=1)
    assert list(np.flatnonzero(moved)) == [5]
    assert float(rescued.log_density[5]) > -20 and np.allclose(rescued.log_density, jax.vmap(logdensity)(rescued.position))


def test_aux_travels_with_its_walker_through_moves_and_rescues():
    """With has_aux, every kept walker's aux is what the density returned at that walker's position."""

    def logdensity(x):
        return -0.5 * jnp.sum(x**2), jnp.sum(x) ** 2  # the aux: any function of the point

    position = jax.random.normal(jax.random.key(0), (16, 3)).at[5].set(jnp.array([30.0, 0.0, 0.0]))
    state = ensemble.init(position, logdensity, has_aux=True)
    state = ensemble.rescue_stragglers(jax.random.key(1), state, logdensity, threshold=15.0)
    np.testing.assert_allclose(state.aux, jnp.sum(state.position, axis=1) ** 2, rtol=1e-6)
    final, chain, chain_lp, acc, chain_aux = ensemble.sample(jax.random.key(2), state, logdensity, 200, thin=5)
    assert chain_aux.shape == chain.shape[:2] and float(acc.mean()) > 0.1
    np.testing.assert_allclose(chain_aux, jnp.sum(chain, axis=2) ** 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chain_lp, -0.5 * jnp.sum(chain**2, axis=2), rtol=1e-5, atol=1e-6)


def test_mode_jump_moves_walkers_between_modes_of_a_ten_dimensional_mixture():
    """In 10-D a DE hop lands about D in log density below its start and is almost never accepted (max weight
    error 0.12 without the jump, measured); the mode jump keeps a walker's offset from its mode's centre."""
    d, separation, width_b = 10, 8.0, 0.6
    weights = jnp.linspace(0.2, 0.8, N_TARGETS)
    n_walkers, n_steps = 32, 6000
    settings = ensemble.MoveSettings(p_jump=0.1)

    def one(k, w):
        def logdensity(x):
            la = jnp.log(w) - 0.5 * jnp.sum(x**2)
            lb = jnp.log1p(-w) - 0.5 * jnp.sum(((x - separation) / width_b) ** 2) - d * jnp.log(width_b)
            return jnp.logaddexp(la, lb)

        k_init, k_run = jax.random.split(k)
        in_a = (jnp.arange(n_walkers) % 4 != 0)[:, None]
        noise = jax.random.normal(k_init, (n_walkers, d))
        x0 = jnp.where(in_a, noise, separation + width_b * noise)
        state = ensemble.init(x0, logdensity)
        # as popz fit runs it: one stream of move choices shared by every target
        _, chain, _, _ = ensemble.sample(k_run, state, logdensity, n_steps, settings=settings, move_key=jax.random.key(9))
        return chain

    chain = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), N_TARGETS), weights))[:, 1000:]
    in_a = chain.mean(axis=-1) < separation / 2
    err = in_a.mean(axis=(1, 2)) - np.asarray(weights)
    assert np.max(np.abs(err)) < 0.05 and abs(np.mean(err)) < 0.01, (np.abs(err).max(), err.mean())
    # each mode keeps its own shape: the jump is exact (a volume-preserving involution), not an approximation
    assert np.allclose(chain[in_a].std(axis=0), 1.0, atol=0.03)
    assert np.allclose(chain[~in_a].std(axis=0), width_b, atol=0.02)


def test_the_two_cluster_split_finds_two_separated_groups():
    x = jnp.concatenate([jnp.zeros((5, 3)), jnp.full((11, 3), 4.0)]) + 0.01 * jax.random.normal(jax.random.key(0), (16, 3))
    centres, _ = ensemble._two_clusters(x)
    centres = np.sort(np.asarray(centres)[:, 0])
    np.testing.assert_allclose(centres, [0.0, 4.0], atol=0.02)
    proposal, allowed = ensemble._mode_jump(jnp.asarray([[0.1, 0.0, 0.0], [4.0, 4.1, 4.0]]), x)
    assert np.all(np.asarray(allowed))
    np.testing.assert_allclose(np.asarray(proposal), [[4.1, 4.0, 4.0], [0.0, 0.1, 0.0]], atol=0.03)


def test_a_shared_move_stream_gives_each_target_what_it_would_get_alone():
    """popz fit passes one move key to every galaxy: a galaxy's chain must not depend on the others in its batch."""
    means, chols = _correlated_gaussians(jax.random.key(7), 4, d=3)
    x0 = _init_near(jax.random.key(8), means, chols, 8)
    keys = jax.random.split(jax.random.key(10), 4)
    settings = ensemble.MoveSettings(p_jump=0.2)

    def one(k, mean, chol, x, move_key):
        logdensity = _gaussian_logdensity(mean, chol)
        return ensemble.sample(k, ensemble.init(x, logdensity), logdensity, 60, settings=settings, move_key=move_key)[1]

    together = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, None)))(keys, means, chols, x0, jax.random.key(11))
    alone = jax.jit(one)(keys[2], means[2], chols[2], x0[2], jax.random.key(11))
    np.testing.assert_allclose(np.asarray(together[2]), np.asarray(alone), rtol=1e-6, atol=1e-6)


def test_each_walker_samples_its_own_target_given_its_context():
    """Walkers with a context each sample their own target (the replicas of popz.infer.gibbs): walker w's density
    is a 3-D Gaussian centred on mu_w, with the centres spread over 2 sd; every walker's draws must have its own mean
    (within 4 Monte Carlo errors) and unit variance."""
    n_walkers, d, n_steps = 32, 3, 6000
    mu = jnp.linspace(-2.0, 2.0, n_walkers)[:, None] * jnp.ones((1, d))

    def logdensity(x, centre):
        return -0.5 * jnp.sum((x - centre) ** 2)

    x0 = mu + jax.random.normal(jax.random.key(1), mu.shape)
    state = ensemble.init(x0, logdensity, context=mu)
    final, chain, _, acc = jax.jit(lambda s: ensemble.sample(jax.random.key(2), s, logdensity, n_steps, move_key=jax.random.key(3)))(state)
    assert np.all(np.asarray(final.context) == np.asarray(mu))
    kept = np.asarray(chain[n_steps // 5 :])  # (S, W, D)
    tau = np.asarray(integrated_autocorr_time(jnp.asarray(kept)))  # (D,) over the ensemble
    n_eff = kept.shape[0] / np.max(tau)
    error = 1.0 / np.sqrt(n_eff)
    np.testing.assert_array_less(np.abs(kept.mean(axis=0) - np.asarray(mu)), 4 * error)
    assert abs(kept.var(axis=0).mean() - 1.0) < 0.1
    assert 0.2 < float(np.mean(acc)) < 0.9
