"""n(z) of tomographic bins: the mean and its spread over realizations against a known answer; popz nz end to end."""

import json

import numpy as np
import pytest

from popz.errors import PopzError
from popz.posterior.nz import tomographic_nz


def _draws(n=4000, s=50, sigma=0.05, seed=1):
    rng = np.random.default_rng(seed)
    z_true = rng.uniform(0.1, 1.5, n)
    # posteriors centred on a noisy estimate, as a calibrated photo-z's are
    centre = z_true + sigma * rng.standard_normal(n)
    return z_true, centre, centre[:, None] + sigma * rng.standard_normal((n, s))


def test_mean_and_its_uncertainty_match_the_calibrated_case():
    z_true, centre, draws = _draws()
    result = tomographic_nz(draws, np.median(draws, axis=1), [0.2, 0.6, 1.0, 1.4], n_realizations=300)
    assert result.nz.shape == (3, result.z_grid.size) and result.realizations.shape == (3, 300, result.z_grid.size)
    np.testing.assert_allclose(np.trapezoid(result.nz, result.z_grid, axis=1), 1.0, atol=0.02)
    for b in range(3):
        members = (np.median(draws, axis=1) >= result.edges[b]) & (np.median(draws, axis=1) < result.edges[b + 1])
        # the stacked mean is the members' mean posterior mean; its realization spread is that of a mean of n draws
        assert abs(result.mean_z[b] - draws[members].mean()) < 1e-9
        expected_std = draws[members].std() / np.sqrt(members.sum())
        assert 0.8 < result.mean_z_std[b] / expected_std < 1.25
        # the truth lies within 3 reported sigma plus the 0.05 scatter's bin-edge effect
        assert abs(result.mean_z[b] - z_true[members].mean()) < 3 * result.mean_z_std[b] + 0.02


def test_bad_bins_and_shapes():
    _, centre, draws = _draws(n=100)
    with pytest.raises(PopzError, match="increasing"):
        tomographic_nz(draws, centre, [0.5, 0.2])
    with pytest.raises(PopzError, match="disagree"):
        tomographic_nz(draws[:50], centre, [0.2, 0.5])


def test_nz_command(tmp_path):
    import h5py
    import pandas as pd
    import qp
    from typer.testing import CliRunner

    from popz.cli import app

    _, centre, draws = _draws(n=500, s=20)
    fit = tmp_path / "fit.parquet"
    ids = np.arange(500, dtype=np.int64)
    flags = np.where(ids % 10 == 0, 64, 0).astype(np.int32)
    pd.DataFrame({"objectId": ids, "z_median": np.median(draws, axis=1), "flags": flags}).to_parquet(fit)
    with h5py.File(tmp_path / "fit.samples.hdf5", "w") as f:
        f["samples"] = np.stack([draws, np.zeros_like(draws)], axis=-1).astype(np.float32)
        f["objectId"] = ids
        f.attrs["parameters"] = json.dumps(["redshift", "log_stellar_mass"])
    out = tmp_path / "nz.hdf5"
    args = ["nz", str(fit), "--bins", "0.2,0.7,1.2", "--out", str(out), "--realizations", "50", "--exclude-flags", "64"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(out.with_suffix(".json").read_text())
    members = ((np.median(draws, axis=1) >= 0.2) & (np.median(draws, axis=1) < 0.7) & (flags == 0)).sum()
    assert summary["bins"][0]["n_galaxies"] == members
    assert qp.read(str(out)).npdf == 2 and qp.read(str(tmp_path / "nz.realizations.hdf5")).npdf == 100
    assert out.with_suffix(".png").stat().st_size > 0
    result = CliRunner().invoke(app, ["nz", str(fit), "--bins", "0.2,x", "--out", str(out)])
    assert isinstance(result.exception, PopzError) and "--bins" in str(result.exception)
