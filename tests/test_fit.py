"""popz fit: batched MCMC on mock galaxies, posterior products, catalog formats, resume."""

import h5py
import numpy as np
import pandas as pd
import pytest

from popz.data_model import default_data_model, make_extinction_table
from popz.data_model.mock import MockSettings, make_mock
from popz.emulate import load
from popz.errors import PopzError
from popz.infer.fit import FitSettings, fit_batch
from popz.io.catalog import observations_from_table, read_table, to_rubin_columns
from popz.population import make_population_prior
from popz.posterior.summaries import DEFAULT_Z_GRID, redshift_pdf, summarize

SMALL = FitSettings(n_walkers=16, n_burn=200, n_steps=200, thin=10, n_pool=1024)


@pytest.fixture(scope="module")
def objects(config):
    return dict(emulator=load("lsst-default"), prior=make_population_prior(config))


@pytest.fixture(scope="module")
def mock(config, objects):
    return make_mock(config, MockSettings(n=24, seed=5, chunk_size=20000), **objects)


def test_fit_batch_recovers_bright_mock_redshifts_and_is_reproducible(config, simulator, objects, mock):
    data = observations_from_table(mock.table, list("ugrizy"))
    kwargs = dict(
        hyper=objects["prior"].hyper(), data_model=default_data_model(0, 6, error_floor=0.01),
        extinction=make_extinction_table(simulator.bands), settings=SMALL, **objects,
    )  # fmt: skip
    result = fit_batch(data.observations, **kwargs)
    assert result.samples.shape == (24, 16 * 20, 13)
    z_true = mock.table["true_redshift"].to_numpy()
    z_med = np.median(result.samples[:, :, 0], axis=1)
    # the brightest half: photo-z within 0.15 (1+z) for most
    bright = np.argsort(mock.table["true_mag_i"].to_numpy())[:12]
    assert np.mean(np.abs(z_med[bright] - z_true[bright]) / (1 + z_true[bright]) < 0.15) >= 0.75
    assert np.all(np.isfinite(result.log_posterior)) and np.all((result.acceptance > 0) & (result.acceptance < 1))
    again = fit_batch(data.observations, **kwargs)
    np.testing.assert_array_equal(result.samples, again.samples)


def test_summaries_and_redshift_pdf():
    rng = np.random.default_rng(0)
    samples = np.stack([rng.normal(1.0, 0.1, (3, 4000)), rng.normal(10.0, 0.3, (3, 4000))], axis=-1)
    columns, pdf = summarize(samples, ("redshift", "log_stellar_mass"))
    assert np.allclose(columns["z_median"], 1.0, atol=0.01) and np.allclose(columns["z_q84"] - columns["z_q16"], 0.2, atol=0.02)
    assert np.allclose(columns["z_mode"], 1.0, atol=0.03) and np.allclose(columns["log_stellar_mass_q95"], 10.0 + 1.645 * 0.3, atol=0.05)
    assert pdf.shape == (3, DEFAULT_Z_GRID.size)
    assert np.allclose(np.trapezoid(pdf, DEFAULT_Z_GRID, axis=1), 1.0, atol=1e-6)
    assert np.allclose(redshift_pdf(np.full((1, 10), 0.5))[0].argmax(), 50)


def test_magnitude_catalogs_convert_to_flux_once_and_non_detections_are_data(tmp_path):
    table = pd.DataFrame({"id": [7, 8], "mag_u": [99.0, 22.0], "magerr_u": [26.0, 0.1], "ebv": [0.0, 0.01]})
    out = to_rubin_columns(table, ["u"], flux_template="mag_{band}", error_template="magerr_{band}", units="mag")
    assert list(out["objectId"]) == [7, 8]
    assert out["u_cModelFlux"][0] == 0.0 and np.isclose(out["u_cModelFluxErr"][0], 10 ** (-0.4 * (26.0 - 31.4)), rtol=1e-3)
    assert np.isclose(out["u_cModelFlux"][1], 10 ** (-0.4 * (22.0 - 31.4)), rtol=1e-3)
    assert np.isclose(out["u_cModelFluxErr"][1], 0.4 * np.log(10) * 0.1 * out["u_cModelFlux"][1])
    with pytest.raises(PopzError, match="no 'ebv' column"):
        to_rubin_columns(table.drop(columns="ebv"), ["u"], flux_template="mag_{band}", error_template="magerr_{band}", units="mag")
    with pytest.raises(PopzError, match="lacks column"):
        to_rubin_columns(table, ["g"], flux_template="mag_{band}", error_template="magerr_{band}", units="mag")
    # formats: CSV and RAIL-style HDF5 read to the same table
    table.to_csv(tmp_path / "c.csv", index=False)
    with h5py.File(tmp_path / "c.hdf5", "w") as f:
        for column in table.columns:
            f[f"photometry/{column}"] = table[column].to_numpy()
    for name in ("c.csv", "c.hdf5"):
        pd.testing.assert_frame_equal(read_table(tmp_path / name)[table.columns], table, check_dtype=False)


def test_fit_cli_writes_products_and_resumes(mock, tmp_path):
    import qp
    from typer.testing import CliRunner

    from popz.cli import app
    from popz.data_model.mock import write_mock

    catalog = write_mock(mock, tmp_path / "mock.parquet")
    out = tmp_path / "fit.parquet"
    # the amortized path keeps this fast; the CLI's MCMC path: test_fit_cli_new_bands_through_the_spectrum_emulator
    args = ["fit", str(catalog), "--out", str(out), "--method", "npe", "--chunk-size", "8", "--limit", "16", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = pd.read_parquet(out)
    assert list(summary["objectId"]) == list(mock.table["objectId"][:16])
    for column in ("z_median", "z_q16", "z_q84", "z_mode", "flags", "log_stellar_mass_median", "dust_av_q95"):
        assert column in summary.columns
    assert qp.read(str(tmp_path / "fit.pz.hdf5")).npdf == 16
    with h5py.File(tmp_path / "fit.samples.hdf5") as f:
        assert f["samples"].shape == (16, 100, 13)
    # Rubin metadata carried through, and the filters' throughput tags recorded
    assert list(summary["tract"]) == list(mock.table["tract"][:16])
    import json

    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(out).metadata[b"popz"])
    assert list(meta["filters"]) == list("ugrizy") and all(meta["filters"].values())


def test_a_killed_fit_resumes_to_the_same_result_and_other_settings_are_refused(config, simulator, objects, mock, tmp_path):
    """Resuming is the same for either path; the amortized one keeps this test fast (SIGKILL: test_hardening)."""
    from popz.infer.amortized_files import load_posterior
    from popz.infer.amortized_fit import NPESettings, npe_batch
    from popz.posterior.catalog_fit import fit_catalog

    table = mock.table.iloc[:16]
    flow = load_posterior("lsst-default", config=config)
    common = dict(hyper=objects["prior"].hyper(), data_model=default_data_model(0, 6, error_floor=0.02),
                  extinction=make_extinction_table(simulator.bands), **objects)  # fmt: skip

    def kwargs(settings):
        def fitter(observations, object_id):
            return npe_batch(observations, flow=flow, settings=settings, object_id=object_id, **common)

        return dict(emulator_id="shipped", settings=settings, fitter=fitter, chunk_size=8, **common)

    settings = NPESettings(n_draws=32)
    whole = fit_catalog(table, config, tuple("ugrizy"), tmp_path / "whole.parquet", **kwargs(settings))

    class Killed(Exception):
        pass

    def kill_after_first(k):
        raise Killed

    out = tmp_path / "resumed.parquet"
    with pytest.raises(Killed):
        fit_catalog(table, config, tuple("ugrizy"), out, progress=kill_after_first, **kwargs(settings))
    parts = tmp_path / "resumed.parquet.parts"
    assert (parts / "chunk_000000.npz").exists() and not out.exists()
    with pytest.raises(PopzError, match="another catalog or settings"):
        fit_catalog(table, config, tuple("ugrizy"), out, **kwargs(settings._replace(n_draws=64)))
    fit_catalog(table, config, tuple("ugrizy"), out, **kwargs(settings))
    pd.testing.assert_frame_equal(pd.read_parquet(whole), pd.read_parquet(out))
    assert not parts.exists()


def test_fit_cli_rejects_bands_the_emulator_lacks(mock, tmp_path):
    from typer.testing import CliRunner

    from popz.cli import app
    from popz.data_model.mock import write_mock

    catalog = write_mock(mock, tmp_path / "mock.parquet")
    result = CliRunner().invoke(app, ["fit", str(catalog), "--out", str(tmp_path / "o.parquet"), "--bands", "u,g", "--quiet"])
    assert isinstance(result.exception, PopzError) and "--filters" in str(result.exception)


def test_fit_cli_new_bands_through_the_spectrum_emulator(sdss_filter_dir, tmp_path):
    """SDSS magnitudes with their filter curves, as a new user runs it: MCMC through the spectrum emulator, no training."""
    from typer.testing import CliRunner

    from popz.cli import app

    data = pd.read_parquet(sdss_filter_dir.parent / "sdss_mgs.parquet")
    rows = data[data["split"] == "test"].iloc[:8]
    catalog = tmp_path / "sdss.csv"
    rows.to_csv(catalog, index=False)
    filters = ",".join(str(sdss_filter_dir / f"sdss_{b}.dat") for b in "ugriz")
    out = tmp_path / "sdss_fit.parquet"
    args = ["fit", str(catalog), "--out", str(out), "--method", "mcmc", "--bands", "u,g,r,i,z", "--filters", filters,
            "--flux-columns", "mag_{band}", "--error-columns", "magerr_{band}", "--units", "mag", "--assume-dereddened",
            "--n-walkers", "16", "--n-burn", "200", "--n-steps", "100", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = pd.read_parquet(out)
    assert list(summary["objectId"]) == list(rows["id"])
    # bright z < 0.3 galaxies: the redshift lands near the spectroscopic one for most
    dz = np.abs(summary["z_median"].to_numpy() - rows["z_spec"].to_numpy()) / (1 + rows["z_spec"].to_numpy())
    assert np.median(dz) < 0.1, dz
    result = CliRunner().invoke(app, args[:4] + ["--method", "npe"] + args[6:])
    assert isinstance(result.exception, PopzError) and "mcmc" in str(result.exception)
