"""Importance-sampling updates of stored posteriors: the weights' algebra, and popz reweight end to end."""

import json

import numpy as np
import pytest

from popz.posterior.reweight import reweight_samples


def test_resampling_moves_draws_to_the_new_target_and_flags_low_ess():
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((200, 400, 1))  # N(0, 1) draws of 200 objects
    shift = np.linspace(0.0, 3.0, 200)[:, None]
    log_w = shift * draws[:, :, 0] - 0.5 * shift**2  # N(shift, 1) / N(0, 1)
    result = reweight_samples(draws, log_w, min_ess=50, seed=1)
    means = result.samples[:, :, 0].mean(axis=1)
    # the importance-sampling mean is close to the new target's mean where the ESS is large
    good = result.ess > 100
    assert good.sum() > 50
    assert np.all(np.abs(means[good] - shift[good, 0]) < 4 / np.sqrt(result.ess[good]) + 0.05)
    # ESS falls as exp(-shift^2) for these weights; the far-shifted objects are flagged
    np.testing.assert_allclose(result.ess[:5] / 400, np.exp(-shift[:5, 0] ** 2), rtol=0.2)
    assert np.all(result.flags[result.ess < 50] == 256) and np.all(result.flags[result.ess >= 50] == 0)


def test_objects_without_finite_weights_keep_their_draws():
    draws = np.arange(12.0).reshape(2, 6, 1)
    log_w = np.array([[-np.inf] * 6, [0.0] * 6])
    result = reweight_samples(draws, log_w)
    np.testing.assert_array_equal(np.sort(result.samples[0, :, 0]), draws[0, :, 0])
    assert result.ess[0] == 0 and result.flags[0] == 256 and result.ess[1] == pytest.approx(6)


@pytest.mark.parametrize(
    "changes",
    [
        {"dust_av_loc": 0.7, "mf_logphi1_z3": -3.84},  # the reweight benchmark's change: the SFH factors cancel
        {"sfh_df": 3.0, "sfh_loc_mass_slope": 0.1, "mzr_scatter": 0.25, "log_u_loc": -2.5, "dust_eta_scale": 0.4},
    ],
)
def test_prior_ratio_from_the_changed_factors_equals_the_full_difference(config, changes):
    """Skipping the factors whose hyperparameters did not change gives ln p(new) - ln p(old) to float32 rounding."""
    import jax

    from popz.population import make_population_prior
    from popz.posterior.reweight import prior_log_ratio

    prior = make_population_prior(config)
    old = prior.hyper()
    new = prior.hyper(**{k: v for k, v in changes.items()})
    factors = prior.changed_factors(old, new)
    assert "redshift_mass" in factors or "sfh" in factors
    assert len(factors) < 7
    draws = np.asarray(prior.sample(jax.random.key(3), 600, old)).reshape(30, 20, -1)
    full = np.asarray(prior.log_prob(draws.reshape(600, -1), new) - prior.log_prob(draws.reshape(600, -1), old)).reshape(30, 20)
    ratio = prior_log_ratio(draws, prior=prior, old_hyper=old, new_hyper=new)
    assert np.all(np.isfinite(ratio)) and np.std(ratio) > 0.01
    np.testing.assert_allclose(ratio, full, atol=2e-4 * (1 + np.abs(full).max()))
    assert prior.changed_factors(old, old) == ()


def test_one_pass_reweighting_equals_ratio_then_resampling(config):
    """reweight_to_prior gives the draws, ESS and flags of prior_log_ratio + extra weights, then reweight_samples,
    across batch boundaries (a padded last batch included)."""
    import jax

    from popz.population import make_population_prior
    from popz.posterior.reweight import prior_log_ratio, reweight_to_prior

    prior = make_population_prior(config)
    old = prior.hyper()
    new = prior.hyper(dust_av_loc=0.9, mf_logphi1_z3=-3.6)
    draws = np.asarray(prior.sample(jax.random.key(5), 70 * 40, old)).reshape(70, 40, -1)
    extra = np.random.default_rng(2).normal(0.0, 0.3, (70, 40)).astype(np.float32)
    extra[3] = -np.inf  # an object with no finite weight keeps its draws
    expected = reweight_samples(draws, prior_log_ratio(draws, prior=prior, old_hyper=old, new_hyper=new, batch=32) + extra, min_ess=30, seed=4, batch=32)
    fused = reweight_to_prior(draws, prior=prior, old_hyper=old, new_hyper=new, extra_log_weights=extra, min_ess=30, seed=4, batch=32)
    np.testing.assert_array_equal(fused.samples, expected.samples)
    np.testing.assert_allclose(fused.ess, expected.ess, rtol=1e-5)
    np.testing.assert_array_equal(fused.flags, expected.flags)
    assert fused.ess[3] == 0 and 0 < np.sum(fused.flags != 0) < 70


def _calibration(folder, prior, zero_point=1.0, **hyper):
    values = {**prior.hyper_dict(prior.hyper()), **hyper}
    folder.mkdir()
    summary = {
        "format_version": 1,
        "zero_points": {"0": {b: {"median": zero_point, "std": 0.0} for b in "ugrizy"}},
        "error_floors": {b: {"median": 0.02, "std": 0.0} for b in "ugrizy"},
        "hyper": {k: {"median": v, "std": 0.0} for k, v in values.items()},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_reweight_command(tmp_path, config):
    import pandas as pd
    from typer.testing import CliRunner

    from popz.cli import app
    from popz.demo import sample_catalog_path
    from popz.errors import PopzError
    from popz.population import make_population_prior

    prior = make_population_prior(config)
    fit = tmp_path / "fit.parquet"
    result = CliRunner().invoke(app, ["fit", str(sample_catalog_path()), "--out", str(fit), "--limit", "24", "--quiet"])
    assert result.exit_code == 0, result.output
    # a prior change only: no catalog needed; unchanged hyperparameters give equal weights
    same = _calibration(tmp_path / "same", prior)
    result = CliRunner().invoke(app, ["reweight", str(fit), "--hyper", str(same), "--out", str(tmp_path / "same.parquet")])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "same.parquet")
    # (npe draws outside the prior's support weigh 0 under any prior: a few percent of them)
    assert np.all(table["reweight_ess"] >= 90)
    assert np.median(np.abs(table["z_median"] - pd.read_parquet(fit)["z_median"])) < 0.01
    dusty = _calibration(tmp_path / "dusty", prior, dust_av_loc=prior.hyper_dict(prior.hyper())["dust_av_loc"] + 0.3)
    result = CliRunner().invoke(app, ["reweight", str(fit), "--hyper", str(dusty), "--out", str(tmp_path / "dusty.parquet")])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "dusty.parquet")
    assert list(table["objectId"]) == list(pd.read_parquet(fit)["objectId"])
    assert table["reweight_ess"].median() < 100 and np.all(table["reweight_ess"] > 0)
    # a more dusty prior raises the posterior dust
    assert table["dust_av_median"].mean() > pd.read_parquet(fit)["dust_av_median"].mean()
    # zero-points changed: the catalog is needed, then the likelihood ratio enters
    brighter = _calibration(tmp_path / "brighter", prior, zero_point=1.05)
    result = CliRunner().invoke(app, ["reweight", str(fit), "--hyper", str(brighter), "--out", str(tmp_path / "b.parquet")])
    assert isinstance(result.exception, PopzError) and "--catalog" in str(result.exception)
    args = ["reweight", str(fit), "--hyper", str(brighter), "--out", str(tmp_path / "b.parquet"), "--catalog", str(sample_catalog_path())]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "b.parquet")["reweight_ess"].median() < 100
