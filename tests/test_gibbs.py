"""popz calibrate --sampler gibbs (popz.infer.gibbs): every galaxy's MCMC alternating with the zero-points.

The statistics of the per-walker targets the replicas rest on are tested in tests/test_ensemble.py; whether the
replicas cover the truth on the 300-galaxy mock is a benchmark (benchmarks/calibration_gibbs.py, docs/calibration.md).
"""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bright_g_mock(tmp_path_factory, config):
    """32 mock galaxies in one tract, whose g fluxes are 10% too bright."""
    from popz.data_model.mock import MockSettings, make_mock, write_mock

    mock = make_mock(config, MockSettings(n=32, seed=11, n_tracts=1, chunk_size=20000))
    table = mock.table.copy()
    for column in ("g_cModelFlux", "g_cModelFluxErr"):
        table[column] *= 1.10
    mock.metadata["zero_points"]["0"]["g"] = 1.10
    path = tmp_path_factory.mktemp("gibbs") / "mock.parquet"
    write_mock(mock._replace(table=table), path)
    return path


def test_gibbs_calibration_moves_towards_the_offset_and_holds_the_reference(bright_g_mock, tmp_path):
    from typer.testing import CliRunner

    from popz.cli import app

    out = tmp_path / "hyper"
    result = CliRunner().invoke(app, [
        "calibrate", str(bright_g_mock), "--out", str(out), "--sampler", "gibbs", "--gibbs-iterations", "50",
        "--gibbs-burn", "25", "--mcmc-steps", "40", "--reference-band", "r", "--no-floors",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "MCMC fit of 32 galaxies" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["sampler"] == "gibbs"
    zp = {b: v["median"] for b, v in summary["zero_points"]["0"].items()}
    assert abs(zp["r"] - 1.0) < 0.005
    # the replicas start at 1 +/- 2% (the MCMC at zero-points 1); within 50 iterations they have moved most of the way
    assert zp["g"] > 1.04, zp
    with np.load(out / "chains.npz") as chains:
        assert chains["chains"].shape == (32, 25, 6)
        # the Newton-Metropolis step on a nearly Gaussian conditional: almost every proposal accepted
        assert np.median(chains["acceptance"]) > 0.9, chains["acceptance"]


def test_gibbs_calibration_refuses_population_hyperparameters_before_fitting(bright_g_mock, tmp_path):
    from typer.testing import CliRunner

    from popz.cli import app
    from popz.errors import PopzError

    result = CliRunner().invoke(app, ["calibrate", str(bright_g_mock), "--out", str(tmp_path / "h"), "--sampler", "gibbs",
                                      "--free-hyper", "mf_alpha1"])  # fmt: skip
    assert isinstance(result.exception, PopzError) and "population hyperparameters stay fixed" in str(result.exception)
    assert "MCMC fit" not in result.output
