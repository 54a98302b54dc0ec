"""popz mock: Rubin columns, injected data model in the metadata, reproducibility; catalog reading flags."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from popz.data_model.mock import MockSettings, make_mock, read_mock_metadata, write_mock
from popz.errors import PopzError
from popz.io.catalog import (
    FLAG_EBV_MISSING,
    FLAG_EBV_NEGATIVE,
    FLAG_NO_BANDS,
    FLAG_UNKNOWN_TRACT,
    observations_from_table,
)
from popz.sps.photometry import AB_MAG_OF_ONE_NJY

SETTINGS = MockSettings(n=400, seed=3, n_tracts=3, zero_point_scatter=0.05, ebv_range=(0.0, 0.2), chunk_size=20000)


@pytest.fixture(scope="module")
def mock(config):
    return make_mock(config, SETTINGS)


def test_mock_has_rubin_columns_truth_and_the_selection(mock):
    t = mock.table
    for col in ["objectId", "coord_ra", "coord_dec", "tract", "ebv", "true_redshift", "true_log_stellar_mass"]:
        assert col in t.columns
    for b in "ugrizy":
        assert f"{b}_cModelFlux" in t.columns and f"{b}_cModelFluxErr" in t.columns
    assert len(t) == 400 and t["objectId"].is_unique
    assert np.all(AB_MAG_OF_ONE_NJY - 2.5 * np.log10(t["i_cModelFlux"]) < 25.3)
    assert set(t["tract"]) <= {0, 1, 2} and t["ebv"].between(0, 0.2).all()
    assert (t[[f"{b}_cModelFluxErr" for b in "ugrizy"]] > 0).all().all()


def test_mock_fluxes_carry_the_injected_zero_points_and_extinction(mock):
    """Bright galaxies: observed flux / (zero-point x extincted true flux) scatters about 1 within the noise."""
    t = mock.table
    zp = mock.metadata["zero_points"]
    from popz.config import load_model
    from popz.data_model.extinction import make_extinction_table
    from popz.sps.filters import load_bands

    ext = make_extinction_table(load_bands(load_model("lsst-default").bands))
    a = np.stack([np.asarray(ext(np.float32(e))) for e in t["ebv"]])
    for j, b in enumerate("ugrizy"):
        factor = np.array([zp[str(k)][b] for k in t["tract"]])
        expected = factor * 10 ** (-0.4 * (t[f"true_mag_{b}"].to_numpy() + a[:, j] - AB_MAG_OF_ONE_NJY))
        pull = (t[f"{b}_cModelFlux"] - expected) / t[f"{b}_cModelFluxErr"]
        assert abs(np.median(pull)) < 0.2 and 0.8 < np.std(pull) < 1.25, b
    assert any(abs(v - 1) > 0.01 for tract in zp.values() for v in tract.values())


def test_mock_is_reproducible_and_written_with_popz_metadata(config, mock, tmp_path):
    again = make_mock(config, SETTINGS)
    pd.testing.assert_frame_equal(mock.table, again.table)
    path = write_mock(mock, tmp_path / "mock.parquet", command="popz mock ...")
    meta = json.loads(pq.read_schema(path).metadata[b"popz"])
    assert meta == read_mock_metadata(path)
    assert set(meta["zero_points"]) == {"0", "1", "2"} and set(meta["zero_points"]["0"]) == set("ugrizy")
    assert meta["seed"] == 3 and meta["error_floors"]["u"] == 0.0 and "mf_alpha2" in meta["hyper"]
    assert len(pd.read_parquet(path)) == 400


def test_bad_mock_settings_are_clear_errors(config):
    with pytest.raises(PopzError, match="--ebv-range"):
        make_mock(config, SETTINGS._replace(ebv_range=(0.3, 0.1)))
    with pytest.raises(PopzError, match="--detection-band 'w'"):
        make_mock(config, SETTINGS._replace(detection_band="w"))
    with pytest.raises(Exception, match="sfh_scale=9"):
        make_mock(config, SETTINGS._replace(hyper={"sfh_scale": 9.0}))


def test_catalog_reading_flags_unknown_tracts_and_bad_ebv_and_masks_bad_bands(mock):
    t = mock.table.iloc[:5].copy()
    t.loc[t.index[0], "tract"] = 99
    t.loc[t.index[1], "ebv"] = np.nan
    t.loc[t.index[2], "ebv"] = -0.01
    t.loc[t.index[3], "u_cModelFlux"] = np.nan
    t.loc[t.index[3], "g_cModelFluxErr"] = 0.0
    for b in "ugrizy":
        t.loc[t.index[4], f"{b}_cModelFlux"] = np.nan
    data = observations_from_table(t, list("ugrizy"), known_tracts=[0, 1, 2])
    flags = data.flags
    assert flags[0] & FLAG_UNKNOWN_TRACT and int(data.observations.tract_index[0]) == 3
    assert flags[1] & FLAG_EBV_MISSING and float(data.observations.ebv[1]) == 0.0
    assert flags[2] & FLAG_EBV_NEGATIVE and float(data.observations.ebv[2]) == 0.0
    assert list(np.asarray(data.observations.observed[3])) == [False, False, True, True, True, True]
    assert flags[4] & FLAG_NO_BANDS
    assert np.all(np.isfinite(np.asarray(data.observations.flux_nJy)))
    with pytest.raises(PopzError, match="lacks column.*ebv"):
        observations_from_table(t.drop(columns="ebv"), list("ugrizy"))


def test_mock_cli_writes_a_catalog(tmp_path):
    from typer.testing import CliRunner

    from popz.cli import app

    out = tmp_path / "m.parquet"
    result = CliRunner().invoke(app, ["mock", "--n", "50", "--out", str(out), "--seed", "1", "--chunk-size", "5000", "--quiet", "--hyper", "dust_av_loc=0.3"])
    assert result.exit_code == 0, result.output
    assert read_mock_metadata(out)["hyper"]["dust_av_loc"] == pytest.approx(0.3)
