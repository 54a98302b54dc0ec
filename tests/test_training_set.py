"""popz simulate: the training-set table, resuming, workers, spectra."""

import numpy as np
import pandas as pd
import pytest

from popz.emulate.training_set import read_training_set_metadata, simulate_training_set
from popz.errors import PopzError


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "sims.parquet"
    simulate_training_set(config, 25, out, seed=3, chunk_size=10, spectra=True)
    return out


def test_table_columns_and_metadata(reference, config, simulator):
    table = pd.read_parquet(reference)
    assert len(table) == 25 and list(table["id"]) == list(range(25))
    assert list(table.columns) == ["id", *config.parameter_names, *[f"mag_{b}" for b in "ugrizy"]]
    assert table["redshift"].dtype == np.float32 and table["mag_r"].dtype == np.float64
    meta = read_training_set_metadata(reference)
    assert meta["model_hash"] == config.hash and meta["seed"] == 3 and meta["n"] == 25 and meta["n_failed"] == 0
    # the magnitudes are the simulator's for the stored parameters
    theta = table[list(config.parameter_names)].to_numpy(np.float64)
    assert np.allclose(simulator.magnitudes(theta[7]), table.iloc[7][[f"mag_{b}" for b in "ugrizy"]].to_numpy(float))
    assert not reference.with_name("sims.parquet.parts").exists()


def test_spectra_file(reference, config, simulator):
    import h5py

    table = pd.read_parquet(reference)
    with h5py.File(reference.with_name("sims.spectra.h5")) as h5:
        lam = h5["rest_wavelength_A"][:]
        spectra = h5["log10_l_lambda"][:]
    assert spectra.shape == (25, lam.size) and 400 <= lam[0] and lam[-1] <= 30000
    theta = table[list(config.parameter_names)].to_numpy(np.float64)[4]
    keep = (simulator.rest_wavelength_A >= 400) & (simulator.rest_wavelength_A <= 30000)
    assert np.allclose(spectra[4], np.log10(simulator.rest_sed(theta)[keep]), atol=1e-5)


def test_killed_run_resumes_to_the_identical_table(reference, config, tmp_path):
    out = tmp_path / "sims.parquet"
    calls = []

    def die_after_two_chunks(k):
        calls.append(k)
        if len(calls) == 3:  # the first call reports 0 done
            raise _Killed

    with pytest.raises(_Killed):
        simulate_training_set(config, 25, out, seed=3, chunk_size=10, spectra=True, progress=die_after_two_chunks)
    parts = tmp_path / "sims.parquet.parts"
    assert sorted(p.name for p in parts.glob("chunk_*.npz")) == ["chunk_000000.npz", "chunk_000001.npz"]
    assert not out.exists()
    summary = simulate_training_set(config, 25, out, seed=3, chunk_size=10, spectra=True)
    assert summary.n_chunks_done_before == 2
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(reference))


def test_two_workers_give_the_same_table(reference, config, tmp_path):
    out = tmp_path / "sims.parquet"
    simulate_training_set(config, 25, out, seed=3, chunk_size=10, workers=2)
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(reference))


def test_partial_run_with_other_settings_is_refused(config, tmp_path):
    out = tmp_path / "sims.parquet"

    def die(k):
        if k:
            raise _Killed

    with pytest.raises(_Killed):
        simulate_training_set(config, 20, out, seed=1, chunk_size=10, progress=die)
    with pytest.raises(PopzError, match="partial run with other settings \\(seed differ\\)"):
        simulate_training_set(config, 20, out, seed=2, chunk_size=10)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(n=0), "--n must be at least 1"), (dict(workers=0), "--workers"), (dict(out="x.csv"), "must end in .parquet")],
)
def test_bad_arguments(config, tmp_path, kwargs, message):
    args = dict(n=5, out=tmp_path / "s.parquet") | kwargs
    with pytest.raises(PopzError, match=message):
        simulate_training_set(config, args.pop("n"), args.pop("out"), **args)


def test_spectra_of_another_run_are_refused_and_stale_spectra_removed(reference, config, tmp_path):
    import shutil

    from popz.emulate.train import read_training_spectra

    theta, mags, lam, log_l = read_training_spectra(reference, config)
    assert theta.shape[0] == mags.shape[0] == log_l.shape[0] == 25
    out = tmp_path / "sims.parquet"
    simulate_training_set(config, 25, out, seed=4, chunk_size=25)
    shutil.copy(reference.with_name("sims.spectra.h5"), tmp_path / "sims.spectra.h5")  # seed 3's spectra
    with pytest.raises(PopzError, match="does not belong to"):
        read_training_spectra(out, config)
    simulate_training_set(config, 25, tmp_path / "sims2.parquet", seed=4, chunk_size=25)
    (tmp_path / "sims.parquet").unlink()
    simulate_training_set(config, 25, out, seed=4, chunk_size=25)  # without --spectra: old spectra go
    assert not (tmp_path / "sims.spectra.h5").exists()
