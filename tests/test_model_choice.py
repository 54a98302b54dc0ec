"""popz compare: on a mock drawn from the default population, the default model must beat a wrong population prior
on both scores, by more than the reported uncertainty; outputs written."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def mock_and_wrong_model(tmp_path_factory, config):
    from popz.data_model.mock import MockSettings, make_mock, write_mock

    folder = tmp_path_factory.mktemp("compare")
    mock = make_mock(config, MockSettings(n=800, seed=7, error_floor=0.02, chunk_size=50000))
    path = folder / "mock.parquet"
    write_mock(mock, path)
    from importlib import resources

    text = (resources.files("popz") / "data/models/lsst-default.yaml").read_text()
    # a population with three times more dust at log M = 10 and ten times more massive galaxies at z = 3
    wrong = text.replace("dust_av_loc: {value: 0.5,", "dust_av_loc: {value: 1.5,").replace(
        "mf_logphi1_z3: {value: -4.14,", "mf_logphi1_z3: {value: -3.14,"
    )
    assert wrong != text and wrong.count("value: 1.5,") == 1
    (folder / "dusty.yaml").write_text(wrong)
    return path, folder / "dusty.yaml"


def test_compare_prefers_the_population_the_mock_was_drawn_from(mock_and_wrong_model, tmp_path):
    from typer.testing import CliRunner

    from popz.cli import app

    mock, wrong = mock_and_wrong_model
    out = tmp_path / "cmp"
    args = ["compare", str(mock), "--models", "lsst-default", str(wrong), "--out", str(out), "--n-predictive", "100000", "--proposals", "128"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "compare.json").read_text())
    assert (out / "compare.png").stat().st_size > 10_000
    d = summary["difference"]
    assert d["a"] == "lsst-default" and d["b"] == "dusty" and summary["selection"] == "i<25.3"
    # the held-out half (400 galaxies) minus those with too few effective proposals under either model
    assert 200 <= d["n_galaxies"] <= 400 and len(summary["held_out_ids"]) == 400
    assert d["mean_nats_per_galaxy"] > 3 * d["standard_error"] > 0
    assert summary["preferred_by_predictive_score"] == "lsst-default"
    right, dusty = summary["models"]["lsst-default"], summary["models"]["dusty"]
    assert summary["preferred_by_predictive_check"] == "lsst-default"
    # the redder population's colours move away from the data's: the mean K-S distance at least doubles
    assert dusty["mean_ks"] > 2 * right["mean_ks"]
    # the predicted selected fraction: more dust dims galaxies below the cut
    assert dusty["log_selected_fraction"] < right["log_selected_fraction"]
    assert np.isfinite(right["median_ess"]) and right["median_ess"] > 5
