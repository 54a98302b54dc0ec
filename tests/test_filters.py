import numpy as np
import pytest

from popz.errors import FilterError
from popz.sps.filters import band_labels, load_band, load_bands


def test_lsst_bands_from_speclite():
    bands = load_bands([f"lsst2023-{b}" for b in "ugrizy"])
    pivots = [b.pivot_wavelength_A for b in bands]
    assert np.all(np.diff(pivots) > 0)
    assert 3600 < pivots[0] < 3800 and 9600 < pivots[-1] < 10000
    assert all(b.provenance.startswith("speclite") for b in bands)


def test_user_curve_file_and_tiny_negative_clipped(sdss_filter_dir):
    r = load_band(str(sdss_filter_dir / "sdss_r.dat"))  # has one value of -0.0013
    assert r.throughput.min() == 0.0
    assert "sha256:" in r.provenance
    assert 6100 < r.pivot_wavelength_A < 6250


@pytest.mark.parametrize(
    "content, message",
    [
        ("3000 0.1\n2000 0.5\n4000 0.2\n5000 0.1\n6000 0.0\n", "increase strictly"),
        ("3000 0.1\n4000 -0.5\n5000 0.9\n6000 0.1\n7000 0.0\n", "negative beyond"),
        ("3000 0.1\n4000 0.5\n", "only 2 samples"),
        ("3000 abc\n4000 0.5\n", "cannot be read"),
        ("3000\n4000\n5000\n6000\n7000\n", "expected two columns"),
        ("3000 0\n4000 0\n5000 0\n6000 0\n7000 0\n", "nowhere positive"),
        ("3000 nan\n4000 0.5\n5000 0.9\n6000 0.1\n7000 0.0\n", "finite"),
    ],
)
def test_malformed_filter_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.dat"
    path.write_text(content)
    with pytest.raises(FilterError, match=message) as info:
        load_band(str(path))
    assert str(path) in str(info.value)


def test_unknown_band_names():
    with pytest.raises(FilterError, match="unknown band 'lsst2023-w'"):
        load_band("lsst2023-w")
    with pytest.raises(FilterError, match="does not exist"):
        load_band("no/such/file.dat")
    with pytest.raises(FilterError, match="duplicated"):
        load_bands(["lsst2023-u", "lsst2023-u"])


def test_band_labels():
    assert band_labels([f"lsst2023-{b}" for b in "ugr"]) == ("u", "g", "r")
    assert band_labels(["lsst2023-u", "sdss2010-u"]) == ("lsst2023_u", "sdss2010_u")
    assert band_labels(["a/b/sdss_u.dat"]) == ("sdss_u",)
