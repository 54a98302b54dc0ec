"""Property-based tests (hypothesis) of the catalog readers and the fit API on catalogs full of bad values.

For every generated catalog (Rubin nJy columns or RAIL-style magnitudes with
sentinels; NaN, inf, zero, negative, absurd fluxes and errors; odd E(B-V) and
tracts; ids anywhere in int64): no exception escapes, every input row comes
out exactly once, in order, with its id, and each object's summaries are
finite or it carries a flag.
"""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

BANDS = tuple("ugrizy")
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -1.0, -50.0, 1e30, 99.0, -99.0]
PROFILE = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def api():
    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.infer.amortized_fit import NPESettings, npe_batch
    from popz.population import make_population_prior
    from popz.sps.filters import load_bands

    config = load_model("lsst-default")
    prior = make_population_prior(config)
    common = dict(emulator=load("lsst-default"), prior=prior, hyper=prior.hyper(),
                  data_model=default_data_model(0, 6, error_floor=0.02), extinction=make_extinction_table(load_bands(config.bands)))  # fmt: skip
    flow = load_posterior("lsst-default", config=config)
    npe_settings = NPESettings(n_draws=8, n_check=4)

    def fitter(observations, object_id):
        return npe_batch(observations, flow=flow, settings=npe_settings, object_id=object_id, **common)

    return dict(config=config, common=common, fitter=fitter, settings=npe_settings)


def _value(typical_low, typical_high):
    return st.one_of(st.sampled_from(SPECIAL), st.floats(typical_low, typical_high))


@st.composite
def catalogs(draw):
    """(table, band labels, reader options): a Rubin or magnitude catalog with bad values sprinkled in."""
    n = draw(st.integers(1, 20))
    magnitudes = draw(st.booleans())
    values = draw(arrays(np.float64, (n, len(BANDS)), elements=_value(16.0, 30.0) if magnitudes else _value(-50.0, 1e6)))
    errors = draw(arrays(np.float64, (n, len(BANDS)), elements=_value(0.001, 3.0) if magnitudes else _value(0.1, 1e4)))
    ebv = draw(arrays(np.float64, n, elements=st.one_of(st.sampled_from([np.nan, -0.1, 0.0, 1.0, 5.0]), st.floats(0, 0.3))))
    ids = draw(arrays(np.int64, n, elements=st.integers(-(2**63), 2**63 - 1), unique=True))
    table = pd.DataFrame({"objectId": ids, "ebv": ebv})
    if draw(st.booleans()):
        table["tract"] = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0, 9813.0, np.nan])))
    template = ("mag_{band}", "magerr_{band}") if magnitudes else ("{band}_cModelFlux", "{band}_cModelFluxErr")
    for k, b in enumerate(BANDS):
        table[template[0].format(band=b)] = values[:, k]
        table[template[1].format(band=b)] = errors[:, k]
    return table, dict(flux_template=template[0], error_template=template[1], units="mag" if magnitudes else "nJy")


def _check_rows(table, object_id, flags, samples):
    from popz.posterior.flags import FLAGS

    assert len(object_id) == len(table)
    assert np.array_equal(object_id, table["objectId"].to_numpy(np.int64))
    assert (flags & ~sum(f.bit for f in FLAGS) == 0).all()
    finite = np.isfinite(samples).all(axis=(1, 2))
    assert (finite | (flags != 0)).all()


@settings(max_examples=1000, **PROFILE)
@given(catalogs())
def test_readers_and_batched_fit_keep_every_row(api, case):
    from popz.io.catalog import observations_from_table, to_rubin_columns
    from popz.posterior.catalog_fit import fit_in_batches

    table, options = case
    rubin = to_rubin_columns(table, BANDS, **options)
    data = observations_from_table(rubin, BANDS, known_tracts=(0,))
    result = fit_in_batches(api["fitter"], data.observations, data.object_id, batch_size=8)
    _check_rows(table, data.object_id, data.flags | result.flags, result.samples)


@settings(max_examples=40, **PROFILE)
@given(catalogs(), st.integers(1, 7))
def test_fit_catalog_writes_every_row_once(api, case, chunk_size):
    from popz.io.catalog import to_rubin_columns
    from popz.posterior.catalog_fit import fit_catalog

    table, options = case
    rubin = to_rubin_columns(table, BANDS, **options)
    fast = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=fast) as tmp:
        out = fit_catalog(rubin, api["config"], BANDS, Path(tmp) / "fit.parquet", emulator_id="property", settings=api["settings"],
                          fitter=api["fitter"], chunk_size=chunk_size, batch_size=8, storage="compact", **api["common"])  # fmt: skip
        summary = pd.read_parquet(out)
        import h5py

        with h5py.File(Path(tmp) / "fit.samples.hdf5") as f:
            samples = f["samples"][:]
    _check_rows(table, summary["objectId"].to_numpy(), summary["flags"].to_numpy(), samples)


@settings(max_examples=60, **PROFILE)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 120), st.integers(1, 3)),
           elements=st.floats(-1e6, 1e6, allow_nan=False) | st.just(np.nan)),
)  # fmt: skip
def test_sorted_percentiles_equal_numpy_bit_for_bit(x):
    from popz.posterior.summaries import QUANTILES, sorted_percentiles

    expected = np.percentile(x, QUANTILES, axis=1)
    assert np.array_equal(sorted_percentiles(np.sort(x, axis=1), QUANTILES), expected, equal_nan=True)
