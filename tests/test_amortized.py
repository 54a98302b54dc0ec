"""The amortized posterior: flow algebra, training and resume, the npe fit path, out-of-distribution flags."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popz.infer.amortized import Architecture, new_posterior_flow
from popz.infer.likelihood import Observation

SMALL = Architecture(flow_layers=2, nn_width=16, nn_depth=1, knots=4, embed_width=16, embed_depth=1, embed_dim=8, ood_layers=1, ood_width=8)


def _observation(flux, err, ebv=0.05):
    flux = jnp.asarray(flux, jnp.float32)
    return Observation(flux, jnp.asarray(err, jnp.float32), jnp.isfinite(flux), jnp.asarray(ebv, jnp.float32), jnp.asarray(0))


@pytest.fixture(scope="module")
def small_flow(config):
    d, b = config.n_parameters, len(config.bands)
    lower = np.array([p.bounds[0] for p in config.parameters])
    upper = np.array([p.bounds[1] for p in config.parameters])
    return new_posterior_flow(
        jax.random.key(3), parameter_names=config.parameter_names, band_names=config.bands, lower=lower, upper=upper,
        u_loc=np.linspace(-0.5, 0.5, d), u_scale=np.linspace(0.5, 2.0, d), feature_loc=np.zeros(3 * b + 1),
        feature_scale=np.ones(3 * b + 1), flux_scale_nJy=np.full(b, 20.0), cut_band=3, cut_flux_nJy=100.0, cut_snr=5.0,
        ebv_max=0.25, architecture=SMALL,
    )  # fmt: skip


def test_parameter_transform_round_trip_and_log_det(small_flow, config):
    key = jax.random.key(0)
    u = jax.random.normal(key, (20, config.n_parameters))
    theta, log_jac = small_flow.to_theta(u)
    assert np.all(theta > small_flow.lower) and np.all(theta < small_flow.upper)
    u_back, log_jac_inv = small_flow.to_u(theta)
    np.testing.assert_allclose(u_back, u, atol=2e-4)
    np.testing.assert_allclose(log_jac, -log_jac_inv, atol=1e-3)
    for i in range(3):
        jac = jax.jacobian(lambda x: small_flow.to_theta(x)[0])(u[i])
        np.testing.assert_allclose(log_jac[i], np.linalg.slogdet(np.asarray(jac, np.float64))[1], atol=1e-3)


def test_flow_bijection_round_trip_and_log_det(small_flow):
    import paramax

    flow = paramax.unwrap(small_flow.flow)
    cond = jnp.linspace(-1, 1, 8)
    x = jax.random.normal(jax.random.key(1), (small_flow.lower.shape[0],))
    y, log_det = flow.bijection.transform_and_log_det(x, cond)
    np.testing.assert_allclose(flow.bijection.inverse(y, cond), x, atol=1e-4)
    jac = jax.jacobian(lambda v: flow.bijection.transform(v, cond))(x)
    np.testing.assert_allclose(log_det, np.linalg.slogdet(np.asarray(jac, np.float64))[1], atol=1e-3)


def _perturbed(flow, key, scale=0.3):
    """A copy of a flow with every weight moved at random, so that its splines are far from the identity."""
    import equinox as eqx

    leaves, tree = jax.tree.flatten(eqx.filter(flow, eqx.is_inexact_array))
    keys = jax.random.split(key, len(leaves))
    moved = [a + scale * jax.random.normal(k, a.shape, a.dtype) for a, k in zip(leaves, keys)]
    return eqx.combine(jax.tree.unflatten(tree, moved), eqx.filter(flow, eqx.is_inexact_array, inverse=True))


def test_fast_sampling_direction_equals_flowjax(small_flow):
    """popz's batched spline evaluation is flowjax's transform: exact in float64, rounding-close in float32.

    The draws go well past the splines' interval (identity there) and over every bin.
    """
    import equinox as eqx
    import paramax

    from popz.infer.amortized import _rqs_coupling_layers, coupling_forward, flowjax_forward

    bijection = paramax.unwrap(_perturbed(small_flow.flow, jax.random.key(5))).bijection
    assert _rqs_coupling_layers(bijection) is not None  # the batched path, not the fallback
    z = 4.0 * jax.random.normal(jax.random.key(6), (400, small_flow.lower.shape[0]))
    cond = jax.random.normal(jax.random.key(7), (8,))
    with jax.enable_x64(True):
        b64 = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, bijection)
        z64, c64 = z.astype(jnp.float64), cond.astype(jnp.float64)
        u, log_det = eqx.filter_jit(coupling_forward)(b64, z64, c64)
        ref_u, ref_log_det = eqx.filter_jit(flowjax_forward)(b64, z64, c64)
        assert u.dtype == jnp.float64
        np.testing.assert_allclose(u, ref_u, rtol=0, atol=1e-9)
        np.testing.assert_allclose(log_det, ref_log_det, rtol=0, atol=1e-9)
        assert float(jnp.std(ref_log_det)) > 0.1  # the splines are not the identity
    u32, log_det32 = eqx.filter_jit(coupling_forward)(bijection, z, cond)
    ref32, ref_log_det32 = eqx.filter_jit(flowjax_forward)(bijection, z, cond)
    np.testing.assert_allclose(u32, ref32, rtol=0, atol=1e-3)
    np.testing.assert_allclose(log_det32, ref_log_det32, rtol=0, atol=1e-2)


def test_fast_sampling_direction_falls_back_for_other_flows():
    from flowjax.distributions import Normal
    from flowjax.flows import masked_autoregressive_flow

    from popz.infer.amortized import _rqs_coupling_layers, coupling_forward, flowjax_forward

    flow = masked_autoregressive_flow(jax.random.key(0), base_dist=Normal(jnp.zeros(3)), cond_dim=2, flow_layers=2)
    assert _rqs_coupling_layers(flow.bijection) is None
    z, cond = jax.random.normal(jax.random.key(1), (10, 3)), jnp.array([0.5, -1.0])
    u, log_det = coupling_forward(flow.bijection, z, cond)
    ref_u, ref_log_det = flowjax_forward(flow.bijection, z, cond)
    np.testing.assert_array_equal(u, ref_u)
    np.testing.assert_array_equal(log_det, ref_log_det)


def test_sampled_log_density_matches_log_prob(small_flow):
    obs = _observation([30.0, 80.0, 150.0, 200.0, 260.0, 300.0], [5.0, 3.0, 3.0, 4.0, 8.0, 20.0])
    theta, log_q = small_flow.sample_and_log_prob(jax.random.key(2), obs, 50)
    assert theta.shape == (50, small_flow.lower.shape[0])
    np.testing.assert_allclose(small_flow.log_prob(theta, obs), log_q, atol=2e-3)


def test_masked_bands_ignore_their_values(small_flow):
    flux = np.array([30.0, 80.0, 150.0, 200.0, 260.0, 300.0])
    err = np.array([5.0, 3.0, 3.0, 4.0, 8.0, 20.0])
    a = _observation(flux, err)._replace(observed=jnp.array([False, True, True, True, True, True]))
    b = a._replace(flux_nJy=a.flux_nJy.at[0].set(1e30), flux_err_nJy=a.flux_err_nJy.at[0].set(jnp.nan))
    np.testing.assert_array_equal(small_flow.condition(a), small_flow.condition(b))


def test_the_bounds_are_not_trained(shipped):
    """-ln q(u) falls as the map theta -> u widens, without a better fit: the bounds stay fixed (the logit moments too
    with fix_logit_moments)."""
    from popz.infer.amortized_train import _partition

    trained, _ = _partition(shipped[0])
    assert trained.lower is None and trained.upper is None and trained.u_scale is not None and trained.embed is not None
    trained, _ = _partition(shipped[0], fix_logit_moments=True)
    assert trained.lower is None and trained.upper is None and trained.u_loc is None and trained.u_scale is None


@pytest.mark.slow
def test_training_learns_and_resumes(tmp_path, config):
    """A few hundred steps lower the held-out loss; a run stopped at its time budget resumes to the same end."""
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.infer.amortized_train import NPETrainSettings, train_posterior_flow
    from popz.population import make_population_prior

    emulator = load("lsst-default", kind="photometry", config=config)
    prior = make_population_prior(config)
    settings = NPETrainSettings(n_steps=300, batch_size=128, pool_size=20_000, heldout_size=4_000, checkpoint_every=100)
    stopped = train_posterior_flow(config, emulator, prior, tmp_path / "a", settings=settings, architecture=SMALL, max_minutes=0.0, log=lambda s: None)
    assert stopped is None and (tmp_path / "a" / "checkpoint.eqx").exists()
    manifest = train_posterior_flow(config, emulator, prior, tmp_path / "a", settings=settings, architecture=SMALL, log=lambda s: None)
    history = manifest["training"]["history"]
    assert [h["step"] for h in history] == [100, 200, 300]
    assert history[-1]["heldout"][0] < history[0]["heldout"][0] - 1.0
    assert np.isfinite(manifest["ood_threshold"])
    assert not (tmp_path / "a" / "checkpoint.eqx").exists()
    flow = load_posterior(tmp_path / "a", config=config)
    assert float(flow.ood_threshold) == pytest.approx(manifest["ood_threshold"])
    # the parameter bounds are not trained: they stay the prior's, so every draw lies inside its support
    np.testing.assert_array_equal(np.asarray(flow.lower), np.asarray(prior.lower, np.float32))
    np.testing.assert_array_equal(np.asarray(flow.upper), np.asarray(prior.upper, np.float32))
    # a starting flow with other bounds (flows trained before they were held fixed) is fine-tuned on the model's
    import equinox as eqx

    drifted = eqx.tree_at(lambda m: m.lower, flow, flow.lower - 1.0)
    short = settings._replace(n_steps=20, checkpoint_every=20)
    train_posterior_flow(config, emulator, prior, tmp_path / "b", settings=short, architecture=SMALL, init=drifted, log=lambda s: None)
    np.testing.assert_array_equal(np.asarray(load_posterior(tmp_path / "b", config=config).lower), np.asarray(prior.lower, np.float32))
    # a corrupted weights file is refused
    weights = tmp_path / "a" / "weights.eqx"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    from popz.emulate.files import EmulatorFileError

    with pytest.raises(EmulatorFileError, match="corrupted"):
        load_posterior(tmp_path / "a")


# --- the shipped flow ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(config):
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.population import make_population_prior

    return load_posterior("lsst-default", config=config), load("lsst-default", kind="photometry", config=config), make_population_prior(config)


@pytest.fixture(scope="module")
def mock_observations(config, shipped):
    """2,000 in-distribution mocks (the training distribution, fresh seed): observations and true parameters."""
    from popz.data_model.extinction import make_extinction_table
    from popz.infer.amortized_train import NPETrainSettings, build_pool, lsst_depths, simulate_batch
    from popz.sps.filters import load_bands

    flow, emulator, prior = shipped
    manifest_settings = json.loads((_shipped_folder() / "manifest.json").read_text())["training"]["settings"]
    settings = NPETrainSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest_settings.items()})
    limit = settings.cut_mag + settings.pre_cut_margin
    pool = build_pool(jax.random.key(777), prior, emulator, 6000, flow.cut_band, limit, chunk=30_000, log=lambda s: None)
    ext = make_extinction_table(load_bands(config.bands))
    theta, obs, selected = simulate_batch(jax.random.key(778), pool, jnp.arange(6000), ext, lsst_depths(list("ugrizy")), settings, flow.cut_band)
    keep = np.flatnonzero(np.asarray(selected))[:2000]
    return jax.tree.map(lambda a: a[keep], obs), np.asarray(theta)[keep]


def _shipped_folder():
    from popz.infer.amortized_files import posterior_folder

    return posterior_folder("lsst-default")


def _ood_rate(flow, obs):
    density = np.asarray(jax.jit(jax.vmap(flow.input_log_density))(obs))
    inside = np.asarray(jax.jit(jax.vmap(flow.in_training_cut))(obs))
    return np.mean((density < float(flow.ood_threshold)) | ~inside)


def test_ood_flag_near_one_percent_in_distribution(shipped, mock_observations):
    rate = _ood_rate(shipped[0], mock_observations[0])
    assert 0.003 <= rate <= 0.025, rate


def test_ood_flag_fires_on_shuffled_bands(shipped, mock_observations):
    obs = mock_observations[0]
    order = jnp.array([5, 3, 0, 4, 1, 2])  # no band where it belongs
    shuffled = obs._replace(flux_nJy=obs.flux_nJy[:, order], flux_err_nJy=obs.flux_err_nJy[:, order], observed=obs.observed[:, order])
    assert _ood_rate(shipped[0], shuffled) > 0.5


def test_ood_flag_fires_on_ten_times_larger_errors(shipped, mock_observations):
    obs = mock_observations[0]
    assert _ood_rate(shipped[0], obs._replace(flux_err_nJy=obs.flux_err_nJy * 10.0)) > 0.5


def test_shipped_flow_redshift_intervals_cover(shipped, mock_observations):
    """On in-distribution mocks the 68% redshift interval covers the truth for 68 +/- 5% (a 400-galaxy check)."""
    flow, _, _ = shipped
    obs, theta = jax.tree.map(lambda a: a[:400], mock_observations[0]), mock_observations[1][:400]
    draws, _ = jax.jit(jax.vmap(lambda k, o: flow.sample_and_log_prob(k, o, 200)))(jax.random.split(jax.random.key(9), 400), obs)
    z = np.asarray(draws[:, :, 0])
    lo, hi = np.percentile(z, [16, 84], axis=1)
    cover = np.mean((theta[:, 0] >= lo) & (theta[:, 0] <= hi))
    assert abs(cover - 0.68) < 0.05, cover


def test_fit_npe_compact_products(tmp_path, config):
    """popz fit --method npe --storage compact: one row per object in order, qp quantiles, 4 draws, <= 200 floats."""
    import h5py
    import pandas as pd
    import qp
    from typer.testing import CliRunner

    from popz.cli import app
    from popz.demo import sample_catalog_path
    from popz.posterior.compact import N_COMPACT_SAMPLES, PZ_QUANTILE_LEVELS, floats_per_object

    out = tmp_path / "npe.parquet"
    args = ["fit", str(sample_catalog_path()), "--out", str(out), "--storage", "compact", "--limit", "50", "--chunk-size", "16", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = pd.read_parquet(out)
    truth = pd.read_parquet(sample_catalog_path()).iloc[:50]
    assert list(summary["objectId"]) == list(truth["objectId"])
    for column in ("z_median", "z_q16", "z_q84", "z_mode", "flags", "ess", "input_log_density", "chi2_best", "dust_av_q95"):
        assert column in summary.columns
    assert np.all((summary["z_q16"] <= summary["z_median"]) & (summary["z_median"] <= summary["z_q84"]))
    ens = qp.read(str(tmp_path / "npe.pz.hdf5"))
    assert ens.npdf == 50
    # qp adds the 0 and 1 quantiles; its median is the 100-draw median up to the quantile interpolation
    assert np.ravel(ens.metadata["quants"]).size == PZ_QUANTILE_LEVELS.size + 2
    np.testing.assert_allclose(ens.ppf(0.5)[:, 0], summary["z_median"], atol=0.02)
    with h5py.File(tmp_path / "npe.samples.hdf5") as f:
        assert f["samples"].shape == (50, N_COMPACT_SAMPLES, 13)
    assert floats_per_object(13) <= 200
    # the photo-z is informative on these i < 25.3 mocks
    dz = (summary["z_median"] - truth["true_redshift"]) / (1 + truth["true_redshift"])
    assert np.median(np.abs(dz)) < 0.05


def test_npe_is_weights_and_mcmc_fallback(config, shipped):
    """npe+is reports an ESS; galaxies below the threshold are refitted by MCMC and marked."""
    import pandas as pd

    from popz.data_model import default_data_model, make_extinction_table
    from popz.demo import sample_catalog_path
    from popz.infer.amortized_fit import FLAG_LOW_ESS, FLAG_REFIT_MCMC, NPESettings, npe_batch, with_mcmc_fallback
    from popz.infer.fit import FitSettings, fit_batch
    from popz.io.catalog import observations_from_table
    from popz.sps.filters import load_bands

    flow, emulator, prior = shipped
    obs = observations_from_table(pd.read_parquet(sample_catalog_path()).iloc[:6], list("ugrizy")).observations
    common = dict(emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=default_data_model(0, 6, error_floor=0.02),
                  extinction=make_extinction_table(load_bands(config.bands)))  # fmt: skip
    result = npe_batch(obs, flow=flow, settings=NPESettings(importance=True, n_proposals=400, min_ess=1e9), **common)
    assert result.samples.shape == (6, 100, 13)
    assert np.all((result.ess >= 1) & (result.ess <= 400))
    assert np.all(result.flags & FLAG_LOW_ESS)
    small = FitSettings(n_walkers=16, n_burn=60, n_steps=60, thin=2, n_pool=512)
    refit = with_mcmc_fallback(result, obs, lambda o, rows: fit_batch(o, settings=small, **common))
    assert np.all(refit.flags & FLAG_REFIT_MCMC)
    assert not np.array_equal(refit.samples, result.samples)
    assert refit.samples.shape == result.samples.shape


def test_compact_quantiles_stay_strictly_increasing_in_float32_for_qp():
    """Importance weights that collapse onto one or two draws give tied quantiles; the stored (float32) quantiles must
    still increase strictly, or qp's interpolators refuse the ensemble (as RAIL's evaluation would)."""
    import qp

    from popz.posterior.compact import PZ_QUANTILE_LEVELS, redshift_quantiles

    samples = np.stack([np.full(100, 1.5), np.r_[np.full(60, 0.7), np.full(40, 2.9)], np.linspace(0.1, 0.2, 100)])
    q = redshift_quantiles(samples).astype(np.float32)
    assert np.all(np.diff(q, axis=1) > 0)
    assert np.allclose(q[0], 1.5, atol=1e-5) and np.allclose(q[2, [0, -1]], [0.1001, 0.1999], atol=1e-3)
    ens = qp.Ensemble(qp.quant, data=dict(quants=PZ_QUANTILE_LEVELS, locs=q.astype(np.float64)))
    # qp builds and evaluates it (its cdf between two far-apart tied groups is its own interpolation, not checked)
    cdf = np.ravel(ens.cdf(np.array([[1.6], [1.0], [0.15]])))
    assert np.all(np.isfinite(cdf)) and cdf[0] > 0.99 and abs(cdf[2] - 0.5) < 0.02
    assert np.all(np.isfinite(ens.ppf(np.full((3, 1), 0.5))))


def test_npe_is_proposal_count_is_an_option(tmp_path):
    """popz fit --is-proposals: the count reaches the importance sampling (the run's fingerprint records it and the
    effective sample size cannot exceed it), and a count below 2 is a one-line error."""
    import json

    import pandas as pd
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from popz.cli import app
    from popz.demo import sample_catalog_path
    from popz.errors import PopzError

    out = tmp_path / "is.parquet"
    base = ["fit", str(sample_catalog_path()), "--out", str(out), "--method", "npe+is", "--limit", "8", "--quiet"]
    result = CliRunner().invoke(app, base + ["--is-proposals", "64"])
    assert result.exit_code == 0, result.output
    meta = json.loads(pq.read_schema(out).metadata[b"popz"])
    assert '"n_proposals": 64' in json.dumps(meta)
    ess = pd.read_parquet(out)["ess"].to_numpy()
    assert np.all(ess <= 64.0 + 1e-6) and np.all(ess > 0)
    bad = CliRunner().invoke(app, base + ["--is-proposals", "1"])
    assert isinstance(bad.exception, PopzError) and "--is-proposals must be at least 2" in str(bad.exception)
