"""Partitioned fits: the same table as one fit of the whole catalog, here or on a 2-worker Dask cluster; reruns redo only what is missing."""

import json
import os

import pandas as pd
import pytest

from popz.errors import PopzError
from popz.posterior.fit_job import FitJob
from popz.posterior.partitioned import fit_partitioned, list_partitions, read_partitioned

JOB = FitJob(method="npe", storage="compact", n_draws=16, batch_size=64, chunk_size=128)
SIZES = (100, 250, 50, 200)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, config):
    from popz.data_model.mock import MockSettings, make_mock
    from popz.emulate.files import load
    from popz.population import make_population_prior

    mock = make_mock(config, MockSettings(n=sum(SIZES), seed=21), emulator=load("lsst-default"), prior=make_population_prior(config)).table
    folder = tmp_path_factory.mktemp("dataset")
    start = 0
    for k, n in enumerate(SIZES):
        mock.iloc[start : start + n].to_parquet(folder / f"chunk{k}.parquet")
        start += n
    (folder / "_metadata_like.parquet").write_bytes(b"")  # names starting with _ are not partitions
    whole = folder.parent / "whole.parquet"
    mock.to_parquet(whole)
    return folder, whole, mock


@pytest.fixture(scope="module")
def single(dataset, tmp_path_factory):
    from popz.posterior.fit_job import fit_table

    _, whole, mock = dataset
    return pd.read_parquet(fit_table(JOB, mock, tmp_path_factory.mktemp("single") / "fit.parquet"))


def test_partitions_in_order_with_their_row_offsets(dataset):
    parts = list_partitions(dataset[0])
    assert [p.n_rows for p in parts] == list(SIZES) and [p.first_row for p in parts] == [0, 100, 350, 400]


def test_partitioned_run_equals_the_single_fit_and_resumes_only_what_is_missing(dataset, single, tmp_path):
    out = tmp_path / "out"
    fit_partitioned(dataset[0], out, JOB)
    pd.testing.assert_frame_equal(read_partitioned(out), single, check_exact=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(p["complete"] for p in manifest["partitions"])
    # a lost partition is redone, the others are left untouched
    (out / "part-00002.parquet").unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("part-0000[013].parquet")}
    with pytest.raises(PopzError, match="not fitted yet"):
        read_partitioned(out)
    fit_partitioned(dataset[0], out, JOB)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    pd.testing.assert_frame_equal(read_partitioned(out), single, check_exact=True)
    with pytest.raises(PopzError, match="another dataset or options"):
        fit_partitioned(dataset[0], out, JOB._replace(n_draws=32))


def test_two_dask_workers_give_the_same_table(dataset, single, tmp_path):
    os.environ.setdefault("POPZ_JAX_CACHE", str(tmp_path / "jax-cache"))
    out = tmp_path / "dask"
    fit_partitioned(dataset[0], out, JOB, scheduler="local:2")
    pd.testing.assert_frame_equal(read_partitioned(out), single, check_exact=True)


def test_a_hats_catalog_on_lsdb_gives_the_same_table(dataset, single, tmp_path):
    """The mock written as a HATS catalog (rows regrouped by HEALPix pixel): read by LSDB on 2 Dask workers it gives
    what a one-process fit of its leaves gives, and, sorted by objectId, the whole-catalog fit's table."""
    lsdb = pytest.importorskip("lsdb")
    import numpy as np

    _, _, mock = dataset
    catalog = tmp_path / "hats"
    lsdb.from_dataframe(mock, ra_column="coord_ra", dec_column="coord_dec", partition_rows=150, margin_threshold=None).write_catalog(
        catalog, catalog_name="mock", progress_bar=False)  # fmt: skip
    parts = list_partitions(catalog)
    assert len(parts) > 3 and sum(p.n_rows for p in parts) == len(mock)
    assert all("Npix=" in p.path for p in parts)  # not per_partition_statistics.parquet or _metadata
    os.environ.setdefault("POPZ_JAX_CACHE", str(tmp_path / "jax-cache"))
    fit_partitioned(catalog, tmp_path / "leaves", JOB)
    fit_partitioned(catalog, tmp_path / "lsdb", JOB, scheduler="local:2")
    on_lsdb = read_partitioned(tmp_path / "lsdb")
    pd.testing.assert_frame_equal(on_lsdb, read_partitioned(tmp_path / "leaves"), check_exact=True)

    assert not on_lsdb["objectId"].equals(single["objectId"])  # the HEALPix order is another order
    by_id = on_lsdb.sort_values("objectId", ignore_index=True)
    assert by_id["objectId"].equals(single["objectId"].sort_values(ignore_index=True))
    single = single.sort_values("objectId", ignore_index=True)
    for column in single.columns:
        a, b = by_id[column].to_numpy(), single[column].to_numpy()
        if a.dtype.kind == "f":  # float-level: a row's slot in a device call follows its catalog row
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=column)  # float32 log densities of ~30: 1e-5 is ~100 ulp
        else:
            np.testing.assert_array_equal(a, b, err_msg=column)


def test_limit_on_a_partitioned_dataset_is_refused_not_ignored(dataset, tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "popz.cli", "fit", str(dataset[0]), "--out", str(tmp_path / "out"), "--limit", "10"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--limit applies to one catalog file" in result.stderr and not (tmp_path / "out").exists()


def test_an_error_in_a_hats_pixel_on_dask_is_a_popz_error(dataset, tmp_path):
    """LSDB wraps a worker's exception in a RuntimeError; the user still gets popz's one-line error."""
    lsdb = pytest.importorskip("lsdb")

    _, _, mock = dataset
    rows = pd.concat([mock.iloc[:100], mock.iloc[:1]], ignore_index=True)  # one id twice, in one pixel
    lsdb.from_dataframe(rows, ra_column="coord_ra", dec_column="coord_dec", margin_threshold=None).write_catalog(
        tmp_path / "hats", catalog_name="dup", progress_bar=False)  # fmt: skip
    os.environ.setdefault("POPZ_JAX_CACHE", str(tmp_path / "jax-cache"))
    with pytest.raises(PopzError, match=r"^HATS pixel .*object ids must be unique"):
        fit_partitioned(tmp_path / "hats", tmp_path / "out", JOB, scheduler="local:2")
