"""Bad input, crashes and reproducibility: every object kept and flagged, file problems one-line errors,
a killed fit resumed to the same bytes, results independent of chunking (the amortized path, small catalogs)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from popz.errors import PopzError
from popz.sps.photometry import AB_MAG_OF_ONE_NJY
from popz.io.catalog import (
    FLAG_BAND_INVALID,
    FLAG_EBV_MISSING,
    FLAG_EBV_NEGATIVE,
    FLAG_NO_BANDS,
    FLAG_ONE_BAND,
    observations_from_table,
    read_table,
    to_rubin_columns,
)

BANDS = tuple("ugrizy")
FAST_TMP = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # fsync on tmpfs costs nothing


@pytest.fixture(scope="module")
def npe():
    """Everything the amortized path needs, and a 64-galaxy mock catalog."""
    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.data_model.mock import MockSettings, make_mock
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.population import make_population_prior
    from popz.sps.filters import load_bands

    config = load_model("lsst-default")
    emulator, prior = load("lsst-default"), make_population_prior(config)
    common = dict(emulator=emulator, prior=prior, hyper=prior.hyper(), data_model=default_data_model(0, 6, error_floor=0.02),
                  extinction=make_extinction_table(load_bands(config.bands)))  # fmt: skip
    mock = make_mock(config, MockSettings(n=64, seed=11), emulator=emulator, prior=prior)
    return dict(config=config, flow=load_posterior("lsst-default", config=config), common=common, table=mock.table)


def _fit(npe, table, out, *, importance=False, chunk_size=16, batch_size=8, n_draws=16):
    from popz.infer.amortized_fit import NPESettings, npe_batch
    from popz.posterior.catalog_fit import fit_catalog

    settings = NPESettings(n_draws=n_draws, n_check=4, n_proposals=64, importance=importance)

    def fitter(observations, object_id):
        return npe_batch(observations, flow=npe["flow"], settings=settings, object_id=object_id, **npe["common"])

    return fit_catalog(table, npe["config"], BANDS, out, emulator_id="test", settings=settings, fitter=fitter,
                       chunk_size=chunk_size, batch_size=batch_size, storage="compact", **npe["common"])  # fmt: skip


def _bad_rows(table):
    """The first 10 rows of ``table`` spoiled one way each; returns (table, expected flag bits per row)."""
    t = table.iloc[:10].copy().reset_index(drop=True)
    f, e = "g_cModelFlux", "g_cModelFluxErr"
    t.loc[0, f] = np.inf
    t.loc[1, e] = 0.0
    t.loc[2, e] = -3.0
    t.loc[3, f] = 1e30
    t.loc[4, [f"{b}_cModelFlux" for b in BANDS]] = np.nan
    t.loc[4, [f"{b}_cModelFluxErr" for b in BANDS]] = np.nan
    keep = [f"{b}_cModelFlux" for b in BANDS if b != "i"] + [f"{b}_cModelFluxErr" for b in BANDS if b != "i"]
    t.loc[5, keep] = np.nan
    t.loc[6, "ebv"] = np.nan
    t.loc[7, "ebv"] = -0.01
    t.loc[8, e] = np.nan  # a flux without its error
    expected = [FLAG_BAND_INVALID, FLAG_BAND_INVALID, FLAG_BAND_INVALID, FLAG_BAND_INVALID, FLAG_NO_BANDS, FLAG_ONE_BAND,
                FLAG_EBV_MISSING, FLAG_EBV_NEGATIVE, FLAG_BAND_INVALID, 0]  # fmt: skip
    return t, expected


def test_bad_values_are_flagged_per_object_and_every_row_is_kept(npe, tmp_path):
    table, expected = _bad_rows(npe["table"])
    out = _fit(npe, table, tmp_path / "bad.parquet", importance=True)
    summary = pd.read_parquet(out)
    assert list(summary["objectId"]) == list(table["objectId"])
    for row, bits in enumerate(expected):
        input_bits = int(summary["flags"][row]) & (FLAG_BAND_INVALID | FLAG_NO_BANDS | FLAG_ONE_BAND | FLAG_EBV_MISSING | FLAG_EBV_NEGATIVE)
        assert input_bits == bits, (row, input_bits, bits)
    numbers = summary.drop(columns=["objectId", "flags"]).to_numpy(np.float64)
    assert np.isfinite(numbers[:, :-3]).all()  # summaries (diagnostics may be inf for the prior-only row)


def test_magnitude_sentinels():
    """99 = not detected (the error column a limit, if plausible), -99 = not observed, 99/99 = not observed."""
    mags = pd.DataFrame({"id": [1, 2, 3, 4, 5], "ebv": 0.0, "mag_r": [22.0, 99.0, -99.0, 99.0, 23.0],
                         "magerr_r": [0.1, 26.5, -99.0, 99.0, np.nan]})  # fmt: skip
    rubin = to_rubin_columns(mags, ["r"], flux_template="mag_{band}", error_template="magerr_{band}", units="mag")
    data = observations_from_table(rubin, ["r"])
    assert np.asarray(data.observations.observed)[:, 0].tolist() == [True, True, False, False, False]
    assert float(data.observations.flux_nJy[1, 0]) == 0.0
    assert float(data.observations.flux_err_nJy[1, 0]) == pytest.approx(10 ** (-0.4 * (26.5 - AB_MAG_OF_ONE_NJY)), rel=1e-5)
    assert data.flags.tolist() == [FLAG_ONE_BAND, FLAG_ONE_BAND, FLAG_NO_BANDS, FLAG_NO_BANDS, FLAG_NO_BANDS | FLAG_BAND_INVALID]


def _write_corrupt(kind, path):
    frame = pd.DataFrame({"objectId": [1, 2], "ebv": [0.0, 0.0]})
    if kind == "parquet":
        frame.to_parquet(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "hdf5":
        with h5py.File(path, "w") as f:
            f["objectId"] = np.arange(1000)
        data = path.read_bytes()
        path.write_bytes(data[:600])
    elif kind == "fits":
        path.write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"garbage")
    elif kind == "csv":
        path.write_text('objectId,ebv\n1,"0.0\n')


@pytest.mark.parametrize("kind,suffix", [("parquet", ".parquet"), ("hdf5", ".hdf5"), ("fits", ".fits"), ("csv", ".csv")])
def test_truncated_or_corrupt_files_are_one_line_errors(kind, suffix, tmp_path):
    path = tmp_path / f"cat{suffix}"
    _write_corrupt(kind, path)
    with pytest.raises(PopzError, match="cannot be read as|expected columns|no rows") as err:
        read_table(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "spoil,message",
    [
        (lambda t: t.drop(columns=["r_cModelFluxErr"]), "lacks column"),
        (lambda t: t.assign(ebv=["x"] * len(t)), "column ebv is not numeric"),
        (lambda t: t.assign(objectId=[7] * len(t)), "ids must be unique"),
        (lambda t: t.assign(objectId=[np.nan] + [1.0] * (len(t) - 1)), "no integer id"),
        (lambda t: t.iloc[:0], "no rows"),
    ],
)
def test_table_problems_are_one_line_errors(spoil, message, npe):
    with pytest.raises(PopzError, match=message) as err:
        observations_from_table(spoil(npe["table"].iloc[:5].copy()), BANDS)
    assert "\n" not in str(err.value)


def test_empty_and_unknown_files(tmp_path):
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(PopzError, match="empty file"):
        read_table(tmp_path / "empty.parquet")
    (tmp_path / "header.csv").write_text("objectId,ebv\n")
    with pytest.raises(PopzError, match="no rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "cat.txt").write_text("1 2\n")
    with pytest.raises(PopzError, match="unknown format"):
        read_table(tmp_path / "cat.txt")
    with pytest.raises(PopzError, match="--units must be"):
        to_rubin_columns(pd.DataFrame({"objectId": [1], "ebv": [0.0], "r_cModelFlux": [1.0], "r_cModelFluxErr": [1.0]}), ["r"], units="Jy")
    from popz.errors import FilterError
    from popz.sps.filters import load_bands

    with pytest.raises(FilterError, match="does not exist|unknown"):
        load_bands(["no-such-band"])


def test_cli_exits_2_with_one_line_for_a_corrupt_catalog(tmp_path):
    path = tmp_path / "cat.parquet"
    _write_corrupt("parquet", path)
    run = subprocess.run([sys.executable, "-m", "popz.cli", "fit", str(path), "--out", str(tmp_path / "o.parquet")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 2, run.stderr[-2000:]
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "cannot be read as Parquet" in lines[0], lines


def test_results_are_bitwise_the_same_whatever_the_chunk_size(npe):
    with_tmp = FAST_TMP or Path(os.environ.get("TMPDIR", "/tmp"))
    import tempfile

    from popz.posterior.catalog_fit import output_paths

    with tempfile.TemporaryDirectory(dir=with_tmp) as tmp:
        outputs = [_fit(npe, npe["table"], Path(tmp) / f"c{c}.parquet", importance=True, chunk_size=c) for c in (64, 23, 5)]
        first = [p.read_bytes() for p in output_paths(outputs[0])[1:]]
        reference = pd.read_parquet(outputs[0])
        for out in outputs[1:]:
            pd.testing.assert_frame_equal(pd.read_parquet(out), reference, check_exact=True)
            with h5py.File(output_paths(out)[2]) as f, h5py.File(output_paths(outputs[0])[2]) as g:
                assert np.array_equal(f["samples"][:], g["samples"][:])
            with h5py.File(output_paths(out)[1]) as f, h5py.File(output_paths(outputs[0])[1]) as g:
                for key in g["data"]:
                    assert np.array_equal(f["data"][key][:], g["data"][key][:])
        assert len(first) == 2


def test_extreme_objects_give_finite_summaries_or_a_flag(npe, tmp_path):
    """S/N 10^4 in every band, S/N < 1 in every band, a high-redshift dropout, E(B-V) = 1."""
    from popz.posterior.flags import FLAGS

    t = npe["table"].iloc[:4].copy().reset_index(drop=True)
    flux = [f"{b}_cModelFlux" for b in BANDS]
    err = [f"{b}_cModelFluxErr" for b in BANDS]
    t.loc[0, err] = np.abs(t.loc[0, flux].to_numpy(np.float64)) / 1e4 + 1e-3
    t.loc[1, flux] = 0.5 * t.loc[1, err].to_numpy(np.float64)
    t.loc[2, ["u_cModelFlux", "g_cModelFlux"]] = 0.0  # nothing blueward of the Lyman break
    t.loc[2, ["r_cModelFlux", "i_cModelFlux", "z_cModelFlux", "y_cModelFlux"]] = 2000.0
    t.loc[2, err] = 20.0
    t.loc[3, "ebv"] = 1.0
    documented = sum(f.bit for f in FLAGS)
    for importance in (False, True):
        summary = pd.read_parquet(_fit(npe, t, tmp_path / f"x{importance}.parquet", importance=importance))
        assert len(summary) == 4 and (summary["flags"] & ~documented == 0).all()
        columns = [c for c in summary.columns if c.startswith("z_") or c.startswith("log_stellar_mass_")]
        finite = np.isfinite(summary[columns].to_numpy(np.float64)).all(axis=1)
        assert (finite | (summary["flags"] != 0)).all()


def _visible_files_are_complete(folder: Path, out: Path, n: int) -> None:
    """What a reader can see in ``folder`` after a kill: only finished products (temporaries are dot-files)."""
    if not folder.is_dir():  # killed before it made its output folder
        return
    for path in folder.iterdir():
        if path.name.startswith("."):
            continue
        if path == out:
            assert len(pd.read_parquet(path)) == n
        elif path.suffix == ".hdf5":
            with h5py.File(path) as f:
                assert len(f.keys()) > 0
    parts = out.with_name(out.name + ".parts")
    if parts.is_dir():
        for chunk in parts.glob("chunk_*.npz"):
            with np.load(chunk) as data:
                assert len(data["objectId"]) > 0


def test_sigkilled_fits_resume_to_the_uninterrupted_bytes(npe, tmp_path):
    """``popz fit`` killed with SIGKILL at random moments, then rerun, writes what an uninterrupted run writes."""
    from popz.data_model.mock import MockSettings, make_mock
    from popz.posterior.catalog_fit import output_paths

    mock = make_mock(npe["config"], MockSettings(n=2000, seed=5, chunk_size=2000), emulator=npe["common"]["emulator"],
                     prior=npe["common"]["prior"]).table  # fmt: skip
    catalog = tmp_path / "cat.parquet"
    mock.to_parquet(catalog)
    n = len(mock)

    def command(out):
        return [sys.executable, "-m", "popz.cli", "fit", str(catalog), "--out", str(out), "--storage", "compact",
                "--n-draws", "16", "--chunk-size", "125", "--batch-size", "64", "--quiet"]  # fmt: skip

    env = {**os.environ, "POPZ_JAX_CACHE": str(tmp_path / "jax-cache")}  # compiled once, then loaded by every run
    reference = tmp_path / "ref" / "fit.parquet"
    subprocess.run(command(reference), check=True, capture_output=True, timeout=600, env=env)
    rng = np.random.default_rng(0)
    kills = 0
    for trial in range(1):  # more trials, on 10,000 galaxies: benchmarks/kill_resume.py
        out = tmp_path / f"killed{trial}" / "fit.parquet"
        process = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        parts = out.with_name(out.name + ".parts")
        while process.poll() is None and not any(parts.glob("chunk_*.npz")):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))  # a random moment while fitting and writing chunks
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        _visible_files_are_complete(out.parent, out, n)
        subprocess.run(command(out), check=True, capture_output=True, timeout=600, env=env)
        pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(reference), check_exact=True)
        for mine, theirs in zip(output_paths(out)[1:], output_paths(reference)[1:]):
            with h5py.File(mine) as f, h5py.File(theirs) as g:
                for key in ("samples",) if "samples" in g else ():
                    assert np.array_equal(f[key][:], g[key][:])
                for key in g["data"] if "data" in g else ():
                    assert np.array_equal(f["data"][key][:], g["data"][key][:])
        assert not any(p.name.startswith(".") for p in out.parent.iterdir())
        assert not out.with_name(out.name + ".parts").exists()
    assert kills == 1
