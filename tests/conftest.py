import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """One XLA compilation cache for the session: tests that build the same program (the MCMC kernel, say) load it."""
    import tempfile

    import jax

    # the controller's folder reaches the xdist workers through the environment, so that a program one worker
    # compiled is loaded by the other; every program is kept, the small ones too (~5 s per CLI run saved)
    folder = os.environ.get("POPZ_TEST_JAX_CACHE") or tempfile.mkdtemp(prefix="popz-test-jax-cache-")
    os.environ["POPZ_TEST_JAX_CACHE"] = folder
    os.environ["POPZ_JAX_CACHE"] = folder  # and the CLI runs the tests start share it
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def config():
    from popz.config import load_model

    return load_model("lsst-default")


@pytest.fixture(scope="session")
def simulator(config):
    from popz.sps.simulator import make_simulator

    return make_simulator(config)


@pytest.fixture(scope="session")
def prior_draws(config):
    """40 parameter vectors from the training prior, float64."""
    import jax

    from popz.population import TrainingPrior

    return TrainingPrior(config).sample(jax.random.key(123), 40).astype(np.float64)


@pytest.fixture(scope="session")
def sdss_filter_dir():
    path = SHARED_DATA / "sdss_mgs" / "filters"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="module")
def offset_mock(tmp_path_factory, config):
    """300 mock galaxies in 2 tracts; tract 1's g band 10% too bright, every other zero-point 1."""
    from popz.data_model.mock import MockSettings, make_mock, write_mock

    mock = make_mock(config, MockSettings(n=300, seed=5, n_tracts=2, chunk_size=20000))
    table = mock.table.copy()
    in_tract = table["tract"] == 1
    for column in ("g_cModelFlux", "g_cModelFluxErr"):
        table.loc[in_tract, column] *= 1.10
    mock.metadata["zero_points"]["1"]["g"] = 1.10
    path = tmp_path_factory.mktemp("calib") / "mock.parquet"
    write_mock(mock._replace(table=table), path)
    return path
