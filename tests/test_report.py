"""Reports with plots (popz.posterior.report): metrics on synthetic draws, a small fit's report, the emulator report."""

import json

import numpy as np
import pytest

from popz.errors import PopzError
from popz.posterior.report import (
    coverage_curve,
    pit_ks,
    pit_values,
    redshift_metrics,
    write_emulator_report,
    write_fit_report,
)

N_MOCK = 200
FIT_IMAGES = ("zphot_ztrue.png", "pit.png", "coverage.png", "nz.png", "flags.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- metrics on synthetic draws


def test_pit_is_the_mid_rank_of_the_truth():
    draws = np.tile(np.arange(10.0), (4, 1))  # draws 0..9
    pit = pit_values(draws, np.array([4.5, -1.0, 20.0, 3.0]))
    # 5 draws below 4.5; none below -1; all below 20; 3 below and one equal to 3
    np.testing.assert_allclose(pit, [5.5 / 11, 0.5 / 11, 10.5 / 11, 4.0 / 11])
    assert np.isnan(pit_values(draws[:1], np.array([np.nan])))[0]
    with pytest.raises(PopzError):
        pit_values(draws, np.zeros(3))


def test_pit_and_coverage_of_calibrated_and_overconfident_posteriors():
    rng = np.random.default_rng(1)
    n, s = 3000, 200
    mu = rng.uniform(0.2, 2.5, n)
    sigma = 0.05 * (1 + mu)
    draws = mu[:, None] + sigma[:, None] * rng.standard_normal((n, s))
    truth = mu + sigma * rng.standard_normal(n)  # one more draw of each posterior
    pit = pit_values(draws, truth)
    assert pit_ks(pit) < 0.04
    levels = np.array([0.1, 0.5, 0.68, 0.9])
    np.testing.assert_allclose(coverage_curve(pit, levels), levels, atol=0.035)
    lo, hi = np.percentile(draws, [16, 84], axis=1)
    metrics = redshift_metrics(mu, truth, pit=pit, z_lo=lo, z_hi=hi)
    assert metrics["n"] == n
    assert abs(metrics["coverage_68"] - 0.68) < 0.035
    assert abs(metrics["bias"]) < 0.01
    assert metrics["sigma_nmad"] == pytest.approx(0.05, rel=0.1)  # dz = sigma (1+mu) N(0,1) / (1+truth)

    few = pit_values(draws[:, :4], truth, rng=np.random.default_rng(0))  # 4 draws, as compact storage keeps
    assert pit_ks(few) < 0.04  # the randomized rank stays uniform however few the draws
    np.testing.assert_allclose(coverage_curve(few, levels), levels, atol=0.035)

    wide = mu + 2 * sigma * rng.standard_normal(n)  # the posteriors are half as wide as they should be
    pit_wide = pit_values(draws, wide)
    assert pit_ks(pit_wide) > 0.1
    assert coverage_curve(pit_wide, [0.68])[0] < 0.45


def test_redshift_metrics_on_known_offsets():
    zt = np.array([0.0, 1.0, 1.0, 1.0, 3.0, np.nan])
    zp = np.array([0.01, 1.0, 1.02, 0.96, 2.0, 1.0])
    m = redshift_metrics(zp, zt)
    dz = np.array([0.01, 0.0, 0.01, -0.02, -0.25])
    assert m["n"] == 5
    assert m["bias"] == pytest.approx(np.median(dz))
    assert m["sigma_nmad"] == pytest.approx(1.4826 * np.median(np.abs(dz - np.median(dz))))
    assert m["outlier_fraction"] == pytest.approx(0.2)
    assert "pit_ks" not in m and "coverage_68" not in m
    assert pit_ks(np.linspace(0.0005, 0.9995, 1000)) < 0.002
    assert pit_ks(np.full(10, 0.5)) == pytest.approx(0.5)


# ----------------------------------------------------------------------------- a small fit


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    """(fit.parquet, the catalog) of the shipped 200-galaxy mock (``popz mock``: true redshifts) fitted with the flow.

    The shipped mock rather than a new ``make_mock``: the same kind of table, without
    compiling the mock's pipeline in the test (about 10 s of the budget).
    """
    import pandas as pd

    from popz.demo import sample_catalog_path
    from popz.posterior.fit_job import FitJob, fit_table

    table = pd.read_parquet(sample_catalog_path())
    assert len(table) == N_MOCK and "true_redshift" in table
    folder = tmp_path_factory.mktemp("report")
    out = fit_table(FitJob(method="npe", n_draws=32, batch_size=64), table, folder / "fit.parquet",
                    command="popz fit mock.parquet --out fit.parquet --method npe")  # fmt: skip
    return out, table


def test_fit_report_with_a_truth_catalog(fit, tmp_path):
    path, table = fit
    catalog = tmp_path / "mock.parquet"
    table.to_parquet(catalog)
    index = write_fit_report(path, tmp_path / "report", catalog=catalog, title="mock <check>")
    assert index == tmp_path / "report" / "index.html"
    for name in FIT_IMAGES:
        assert (index.parent / name).read_bytes()[:8] == PNG_MAGIC, name
    metrics = json.loads((index.parent / "metrics.json").read_text())
    assert metrics["n_objects"] == N_MOCK
    assert metrics["n_objects_with_truth"] == N_MOCK
    assert metrics["truth_column"] == "true_redshift"
    assert metrics["n_stacked"] == N_MOCK
    for key in ("sigma_nmad", "outlier_fraction", "bias", "pit_ks", "coverage_68"):
        assert np.isfinite(metrics[key]), key
    assert 0 < metrics["sigma_nmad"] < 0.2
    assert 0 <= metrics["outlier_fraction"] < 0.3
    assert metrics["pit_ks"] < 0.2 and 0.45 < metrics["coverage_68"] < 0.9  # the posterior is roughly calibrated
    assert sum(metrics["pit_histogram"]) == N_MOCK
    assert metrics["flags"]["no_flags"] <= N_MOCK
    assert len(metrics["coverage"]["nominal"]) == len(metrics["coverage"]["empirical"])
    page = index.read_text()
    assert "mock &lt;check&gt;" in page  # escaped
    assert "popz fit mock.parquet --out fit.parquet --method npe" in page
    assert "sigma_NMAD" in page and f"{metrics['sigma_nmad']:.4f}" in page
    for name in FIT_IMAGES:
        assert f'src="{name}"' in page
    assert not list(index.parent.glob(".*.tmp*"))  # atomic writes leave no temporaries

    # the same truth as an array in the fit's row order, or as a table with an `id` column: the same metrics
    same = write_fit_report(path, tmp_path / "array", truth=table["true_redshift"].to_numpy())
    again = json.loads((same.parent / "metrics.json").read_text())
    assert again["sigma_nmad"] == metrics["sigma_nmad"] and again["pit_ks"] == metrics["pit_ks"]
    half = table[["objectId", "true_redshift"]].rename(columns={"objectId": "id", "true_redshift": "zspec"}).iloc[::2]
    part = write_fit_report(path, tmp_path / "half", catalog=half, truth_column="zspec")
    assert json.loads((part.parent / "metrics.json").read_text())["n_objects_with_truth"] == N_MOCK // 2


def test_fit_report_without_truth_and_bad_inputs(fit, tmp_path):
    path, table = fit
    index = write_fit_report(path, tmp_path / "plain")
    metrics = json.loads((index.parent / "metrics.json").read_text())
    assert metrics["n_objects"] == N_MOCK and "sigma_nmad" not in metrics
    assert (index.parent / "nz.png").is_file() and (index.parent / "flags.png").is_file()
    assert not (index.parent / "pit.png").exists()

    table.to_parquet(tmp_path / "plain.parquet")
    bad = [
        ({"catalog": table, "truth_column": "zspec"}, "has no column 'zspec'"),
        ({"truth_column": "true_redshift"}, "fit.parquet has no column 'true_redshift'"),  # no catalog: the fit table's
        ({"catalog": table[["objectId", "ebv"]]}, "has no column true_redshift or"),
        ({"catalog": table[["ebv", "true_redshift"]]}, "needs an objectId"),
        ({"catalog": table.iloc[[0, 0, 1]]}, "appears more than once"),
        ({"catalog": table[["objectId", "true_redshift"]].assign(objectId=table["objectId"] + 10**15)}, "no objects in common"),
        ({"truth": np.zeros(3)}, "3 values"),
    ]
    for kwargs, message in bad:
        with pytest.raises(PopzError, match=message) as err:
            write_fit_report(path, tmp_path / "x", **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(PopzError, match="not a popz fit output"):
        write_fit_report(tmp_path / "plain.parquet", tmp_path / "x")
    with pytest.raises(PopzError, match="not a popz fit output"):
        write_fit_report(tmp_path / "missing.parquet", tmp_path / "x")


def test_emulator_report():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        index = write_emulator_report("lsst-default", Path(folder) / "emu")
        assert index.name == "index.html"
        for name in ("accuracy.png", "residual_rms_redshift.png"):
            assert (index.parent / name).read_bytes()[:8] == PNG_MAGIC, name
        summary = json.loads((index.parent / "accuracy.json").read_text())
        assert list(summary["accuracy_validation"]) == ["u", "g", "r", "i", "z", "y"]
        assert len(summary["residual_rms_by_redshift"]["rms"][0]) == 6
        page = index.read_text()
        assert "popz train-emulator" in page and 'src="accuracy.png"' in page
    with pytest.raises(PopzError):
        write_emulator_report("no-such-model", "unused")


def test_report_command_and_log_file(fit, tmp_path):
    from typer.testing import CliRunner

    from popz.cli import app

    log = tmp_path / "popz.log"
    from popz.demo import sample_catalog_path

    args = ["--log", str(log), "report", str(fit[0]), "--out", str(tmp_path / "rep"), "--catalog", str(sample_catalog_path()),
            "--truth", "true_redshift"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "index.html").is_file() and (tmp_path / "rep" / "zphot_ztrue.png").is_file()
    assert "report" in log.read_text() and "wrote" in log.read_text()
