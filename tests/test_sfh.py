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


def test_bagpipes_receives_the_ratios_in_the_right_order(simulator, config):
    # Unequal ratios: a reversed or shifted mapping to bagpipes' dsfr would fail.
    theta = 0.5 * (config.lower + config.upper)
    theta[config.index("redshift")] = 0.5
    ratios = np.array([0.7, -0.4, 0.2, 1.1, -0.9, 0.35])
    for k, r in enumerate(ratios, start=1):
        theta[config.index(f"log_sfr_ratio_{k}")] = r
    simulator.rest_sed(theta)
    sfh = simulator._model.sfh
    edges = simulator.sfh_bin_edges_yr(0.5)
    inside = [np.sqrt(max(edges[k], 1e6) * edges[k + 1]) for k in range(len(edges) - 1)]
    sfr = np.array([sfh.sfh[np.argmin(np.abs(sfh.ages - age))] for age in inside])
    assert np.allclose(np.log10(sfr[:-1] / sfr[1:]), ratios, atol=1e-6)
    expected = continuity_sfr_per_bin(ratios, edges, mass_formed=1.0)
    assert np.allclose(sfr / sfr.sum(), expected / expected.sum(), rtol=1e-6)
