"""The RAIL plugin (rail.popz): PopzInformer and PopzEstimator through RAIL's Python API and a ceci pipeline.

Both run on the first 300 rows of pz-rail-base's cosmoDC2 validation file
(skipped only where that file is absent). The XLA programs compiled by the
first test are kept in the session's compilation cache, so the ceci pipeline's
stage processes load rather than recompile them (about 25 s -> 10 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

N_ROWS = 300
DC2_FILE = "examples_data/testdata/test_dc2_validation_9816.hdf5"
SRC = Path(__file__).resolve().parents[1] / "src"


def _dc2_validation() -> Path:
    try:
        from rail.utils.path_utils import find_rail_file

        return Path(find_rail_file(DC2_FILE))
    except (ImportError, ValueError):
        pytest.skip(f"pz-rail-base's {DC2_FILE} not found")


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    """The first N_ROWS rows of the DC2 validation file, in RAIL's layout (one 'photometry' group)."""
    import h5py

    path = tmp_path_factory.mktemp("rail") / f"dc2_validation_{N_ROWS}.hdf5"
    with h5py.File(_dc2_validation(), "r") as source, h5py.File(path, "w") as target:
        group = target.create_group("photometry")
        for key, column in source["photometry"].items():
            group[key] = column[:N_ROWS]
    return path


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
    """The session's XLA cache folder, keeping every program for this module (the flow's many small ones too)."""
    import jax

    folder = jax.config.jax_compilation_cache_dir
    if not folder:
        folder = str(tmp_path_factory.mktemp("jax-cache"))
        jax.config.update("jax_compilation_cache_dir", folder)
    before = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield folder
    jax.config.update("jax_persistent_cache_min_compile_time_secs", before)


def _truth(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return f["photometry"]["redshift"][:]


def test_plugin_layout():
    """Namespace packages as RAIL plugins have them; the stages import both ways and are found by RAIL."""
    import rail.estimation.algos.popz as module
    from rail.core.introspection import RailEnv
    from rail.popz import PopzEstimator, PopzInformer

    assert not (SRC / "rail" / "__init__.py").exists()
    assert not (SRC / "rail" / "estimation" / "__init__.py").exists()
    assert not (SRC / "rail" / "estimation" / "algos" / "__init__.py").exists()
    assert PopzInformer is module.PopzInformer and PopzEstimator is module.PopzEstimator
    assert "rail.popz" in RailEnv.list_rail_packages()


def test_python_api(subset, tmp_path, monkeypatch, jax_cache):
    import pickle

    from rail.core.data import DataStore, TableHandle
    from rail.popz import PopzEstimator, PopzInformer

    monkeypatch.chdir(tmp_path)
    data = DataStore().read_file("dc2_subset", TableHandle, str(subset))
    model_handle = PopzInformer.make_stage(name="inform_popz", model="popz_model.pkl").inform(data)
    model = pickle.loads(Path("popz_model.pkl").read_bytes())
    assert model == model_handle.data
    assert model["kind"] == "popz" and model["popz_model"] == model["emulator"] == model["posterior"] == "lsst-default"
    assert model["band_labels"] == list("ugrizy") and model["method"] == "npe" and model["error_floor"] == 0.02

    estimator = PopzEstimator.make_stage(name="estimate_popz", model=model_handle, chunk_size=200, output="popz_pz.hdf5")
    ensemble = estimator.estimate(data)()
    grid = np.linspace(0.0, 3.0, 301)
    assert ensemble.npdf == N_ROWS
    np.testing.assert_allclose(ensemble.metadata["xvals"], grid)
    pdf = ensemble.objdata["yvals"]
    assert pdf.shape == (N_ROWS, grid.size) and np.all(pdf >= 0)
    np.testing.assert_allclose(np.trapezoid(pdf, grid, axis=1), 1.0, rtol=1e-3)

    ancil = ensemble.ancil
    expected = ["objectId", "zmode", "zmean", "zmedian", "z_q05", "z_q16", "z_q84", "z_q95", "flags", "redshift",
                "log_stellar_mass_median", "log_stellar_mass_q16", "log_stellar_mass_q84", "dust_av_median", "log_u_median"]  # fmt: skip
    for key in expected:
        assert key in ancil and np.shape(ancil[key]) == (N_ROWS,), key
    assert np.all(ancil["z_q16"] <= ancil["zmedian"]) and np.all(ancil["zmedian"] <= ancil["z_q84"])
    assert np.issubdtype(np.asarray(ancil["flags"]).dtype, np.integer)
    assert np.all(np.isfinite(ancil["log_stellar_mass_median"]))
    z = _truth(subset)
    np.testing.assert_array_equal(ancil["redshift"], z)
    scatter = np.median(np.abs(ancil["zmode"] - z) / (1 + z))
    assert scatter < 0.15, scatter

    # no model (the shipped defaults: the same as the informer's) and one chunk instead of two: the same posteriors,
    # since draws follow (seed, object id) and every device call has the same shape
    again = PopzEstimator.make_stage(name="estimate_popz_again", chunk_size=N_ROWS, output_mode="return").estimate(data)()
    for key in ("zmode", "zmean", "z_q16", "log_stellar_mass_median", "dust_av_q84", "flags"):
        np.testing.assert_array_equal(again.ancil[key], ancil[key], err_msg=key)
    np.testing.assert_allclose(again.objdata["yvals"], pdf, rtol=1e-12)  # qp renormalises p(z) when it reads the file back


PIPELINE = """\
config: {config}
modules: rail
inputs:
  input_test: {data}
output_dir: {out}
log_dir: {logs}
resume: false
site:
  name: local
  max_threads: 1
stages:
- name: inform_popz
  classname: PopzInformer
  module_name: rail.estimation.algos.popz
  nprocess: 1
  aliases: {{input: input_test, model: model_inform_popz}}
- name: estimate_popz
  classname: PopzEstimator
  module_name: rail.estimation.algos.popz
  nprocess: 1
  aliases: {{input: input_test, model: model_inform_popz, output: output_estimate_popz}}
- name: evaluate_popz
  classname: DistToPointEvaluator
  module_name: rail.evaluation.dist_to_point_evaluator
  nprocess: 1
  aliases:
    input: output_estimate_popz
    truth: input_test
    output: output_evaluate_popz
    summary: summary_evaluate_popz
    single_distribution_summary: single_distribution_summary_evaluate_popz
"""

CONFIG = """\
inform_popz:
  name: inform_popz
  hdf5_groupname: photometry
estimate_popz:
  name: estimate_popz
  hdf5_groupname: photometry
  chunk_size: 200
evaluate_popz:
  name: evaluate_popz
  hdf5_groupname: photometry
  metrics: [cdeloss]
  force_exact: true
"""


def test_ceci_pipeline(subset, tmp_path, jax_cache):
    import h5py
    import qp

    out, logs = tmp_path / "out", tmp_path / "logs"
    (tmp_path / "config.yml").write_text(CONFIG)
    (tmp_path / "pipeline.yml").write_text(PIPELINE.format(config=tmp_path / "config.yml", data=subset, out=out, logs=logs))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # ceci starts each stage with python3
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["JAX_COMPILATION_CACHE_DIR"] = jax_cache
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from ceci.main import main; sys.exit(main())", "pipeline.yml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    stage_logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.out"))) if logs.is_dir() else ""
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + stage_logs

    ensemble = qp.read(str(out / "output_estimate_popz.hdf5"))
    assert ensemble.npdf == N_ROWS
    assert ensemble.objdata["yvals"].shape == (N_ROWS, 301)
    for key in ("zmode", "zmean", "z_q16", "z_q84", "log_stellar_mass_median", "flags"):
        assert np.shape(ensemble.ancil[key]) == (N_ROWS,), key
    assert (out / "model_inform_popz.pkl").is_file()
    assert (out / "output_evaluate_popz.hdf5").is_file()
    with h5py.File(out / "summary_evaluate_popz.hdf5", "r") as f:
        assert np.all(np.isfinite(f["cdeloss"][:]))
