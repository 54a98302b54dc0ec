import numpy as np
import pytest

from popz.sps.sfh import continuity_bin_edges_yr, continuity_sfr_per_bin


@pytest.mark.parametrize("age", [1.2e9, 5e9, 13.4e9])
def test_bin_edges_follow_prospector_alpha(age):
    edges = continuity_bin_edges_yr(age, 7)
    assert edges.shape == (8,)
    assert edges[0] == 0 and edges[1] == 3e7 and edges[2] == 1e8
    assert edges[-1] == age and edges[-2] == pytest.approx(0.85 * age)
    assert np.all(np.diff(edges) > 0)
    assert np.allclose(np.diff(np.log(edges[2:-1])), np.log(edges[3] / edges[2]))  # log-spaced middle


def test_too_young_universe_is_refused():
    with pytest.raises(ValueError, match="too young"):
        continuity_bin_edges_yr(1e8, 7)


def test_sfr_ratios_and_mass():
    edges = continuity_bin_edges_yr(10e9, 7)
    ratios = np.array([0.3, -0.2, 0.0, 1.0, -1.0, 0.5])
    sfr = continuity_sfr_per_bin(ratios, edges, mass_formed=1e10)
    assert np.allclose(np.log10(sfr[:-1] / sfr[1:]), ratios)
    assert np.sum(sfr * np.diff(edges)) == pytest.approx(1e10)
