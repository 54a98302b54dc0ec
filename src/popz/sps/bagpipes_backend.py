"""The bagpipes backend: BC03 MILES SSPs, Cloudy nebular grids, CF00 dust.

bagpipes (Carnall et al. 2018) is called at redshift 0, where it returns the
intrinsic rest-frame L_lambda in erg/s/A with no IGM and no distance; the
galaxy's redshift enters only through the age of the Universe, which sets the
continuity-SFH bin edges (computed in popz's cosmology). popz then applies IGM,
distance and bandpasses itself (:class:`popz.sps.simulator.Simulator`).

The emission is linear in the mass formed, so bagpipes is run for 1 Msun formed
and scaled to the requested surviving stellar mass exactly.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from popz.config import ModelConfig
from popz.errors import ConfigError
from popz.sps.sfh import continuity_bin_edges_yr
from popz.sps.simulator import Simulator, register_backend

__all__ = ["BagpipesSettings", "BagpipesSimulator", "import_bagpipes", "pixel_average"]

_FIXED_PARAMETERS = ("redshift", "log_stellar_mass", "log_metallicity", "dust_av", "dust_eta", "dust_index", "log_u")
_SFR_RATIO = re.compile(r"^log_sfr_ratio_(\d+)$")


@lru_cache(maxsize=1)
def import_bagpipes():
    """Import bagpipes with its start-up messages silenced."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import bagpipes
    return bagpipes


class BagpipesSettings(BaseModel):
    """``simulator.settings`` of a bagpipes model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    birth_cloud_age_gyr: float = Field(0.01, gt=0, description="age below which stars sit in birth clouds")
    sfh_fixed_edges_myr: tuple[float, ...] = Field((30.0, 100.0), description="recent continuity-bin edges")
    sfh_last_bin_fraction: float = Field(0.15, gt=0, lt=1, description="oldest bin as a fraction of the age")
    wavelength_span_angstrom: tuple[float, float] = Field(
        (3000.0, 25000.0), description="observed range sampled at R=100 for any z <= 10 (R=20 outside)"
    )


def pixel_average(raw_wavelength_A: np.ndarray, raw_flux: np.ndarray, edges_A: np.ndarray) -> np.ndarray:
    """Flux-conserving resampling: the mean of ``raw_flux`` over each pixel.

    Parameters
    ----------
    raw_wavelength_A : ndarray of shape (n_raw,)
        Increasing wavelengths of the input spectra, Angstrom.
    raw_flux : ndarray of shape (n_spec, n_raw)
        Spectra per unit wavelength (any unit).
    edges_A : ndarray of shape (n_pix + 1,)
        Pixel edges, Angstrom.

    Returns
    -------
    ndarray of shape (n_spec, n_pix); zero outside the input range.
    """
    lam = raw_wavelength_A
    cumulative = np.zeros(raw_flux.shape[:-1] + (lam.size,))
    cumulative[..., 1:] = np.cumsum(0.5 * (raw_flux[..., 1:] + raw_flux[..., :-1]) * np.diff(lam), axis=-1)
    edges = np.clip(edges_A, lam[0], lam[-1])
    idx = np.clip(np.searchsorted(lam, edges) - 1, 0, lam.size - 2)
    frac = (edges - lam[idx]) / (lam[idx + 1] - lam[idx])
    at_edges = cumulative[..., idx] + frac * (cumulative[..., idx + 1] - cumulative[..., idx])
    width = np.diff(edges_A)
    return np.diff(at_edges, axis=-1) / width


@register_backend("bagpipes")
class BagpipesSimulator(Simulator):
    """SPS by bagpipes for the ``lsst-default`` family of models.

    The model must have exactly the parameters ``redshift``, ``log_stellar_mass``,
    ``log_metallicity``, ``log_sfr_ratio_1..K`` (K >= 1), ``dust_av``, ``dust_eta``,
    ``dust_index`` and ``log_u`` (any order).
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        try:
            self.settings = BagpipesSettings.model_validate(config.simulator.settings)
        except ValidationError as err:
            first = err.errors()[0]
            raise ConfigError(
                f"model {config.name!r}: simulator.settings.{'.'.join(map(str, first['loc']))}: {first['msg']}"
            ) from None
        self._check_parameters(config)
        bagpipes = import_bagpipes()
        self._grid_max_age_yr = float(bagpipes.config.age_bins[-1])
        if config.upper[config.index("redshift")] > bagpipes.config.max_redshift:
            raise ConfigError(f"model {config.name!r}: bagpipes covers redshift <= {bagpipes.config.max_redshift}")

        # bagpipes needs a filter file to choose its wavelength sampling: a flat
        # curve over the configured span gives R=100 over it for every z <= 10.
        lo, hi = self.settings.wavelength_span_angstrom
        self._tmp = tempfile.TemporaryDirectory(prefix="popz-bagpipes-")
        span = Path(self._tmp.name) / "span.dat"
        span.write_text(f"{lo} 1\n{hi} 1\n")
        theta_mid = 0.5 * (config.lower + config.upper)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._model = bagpipes.model_galaxy(self._components(theta_mid), filt_list=[str(span)])
        self._resample_stellar_grid_flux_conserving(bagpipes)
        # popz does its own photometry: skip bagpipes' span-filter and UVJ photometry on update.
        self._model.filt_list = None
        self._model._calculate_uvj_mags = lambda: None
        self.rest_wavelength_A = np.asarray(self._model.wavelengths, dtype=np.float64)
        self._finish_setup()

    def _resample_stellar_grid_flux_conserving(self, bagpipes) -> None:
        """Replace bagpipes' point-sampled SSP grid by pixel averages of the raw BC03 MILES spectra.

        bagpipes samples the raw SSPs (0.5 A resolution in the optical) at its
        R=100 pixel centres with ``np.interp``: absorption lines then land in or
        between samples by chance, and broadband magnitudes move by up to 0.06 mag
        when the pixel grid shifts. Pixel averages converge: two different R=100
        grids then agree with an R=3000 reference to a few mmag.
        """
        from popz.sps.photometry import pixel_edges_A

        cfg = bagpipes.config
        stellar = self._model.stellar
        edges = pixel_edges_A(stellar.wavelengths)
        raw_lam = np.asarray(cfg.wavelengths, dtype=np.float64)
        grid = np.zeros((stellar.wavelengths.size, cfg.metallicities.size, cfg.raw_stellar_ages.size))
        for i in range(cfg.metallicities.size):
            raw = np.asarray(cfg.raw_stellar_grid[i].data, dtype=np.float64)
            grid[:, i, :] = pixel_average(raw_lam, raw, edges).T
        stellar.grid = stellar._resample_in_age(grid)

    def _check_parameters(self, config: ModelConfig) -> None:
        names = set(config.parameter_names)
        missing = [n for n in _FIXED_PARAMETERS if n not in names]
        ratios = sorted(int(m.group(1)) for n in names if (m := _SFR_RATIO.match(n)))
        unknown = sorted(n for n in names if n not in _FIXED_PARAMETERS and not _SFR_RATIO.match(n))
        if missing or unknown or not ratios or ratios != list(range(1, len(ratios) + 1)):
            raise ConfigError(
                f"model {config.name!r}: the bagpipes backend needs parameters {', '.join(_FIXED_PARAMETERS)} and "
                f"log_sfr_ratio_1..K; missing {missing or 'none'}, unknown {unknown or 'none'}, "
                f"SFR ratios found {ratios or 'none'}"
            )
        self.n_sfh_bins = len(ratios) + 1
        n_fixed = len(self.settings.sfh_fixed_edges_myr)
        if self.n_sfh_bins < n_fixed + 2:
            raise ConfigError(
                f"model {config.name!r}: {len(ratios)} SFR ratios give {self.n_sfh_bins} continuity bins; with "
                f"{n_fixed} fixed edges at least {n_fixed + 2} bins (log_sfr_ratio_1..{n_fixed + 1}) are needed"
            )
        z_lo = config.parameters[config.index("redshift")].bounds[0]
        if z_lo <= 0:
            raise ConfigError(f"model {config.name!r}: the redshift lower bound must be > 0 (a distance is needed), got {z_lo:g}")
        self._ratio_index = [config.index(f"log_sfr_ratio_{k}") for k in range(1, self.n_sfh_bins)]
        self._index = {n: config.index(n) for n in _FIXED_PARAMETERS}

    def sfh_bin_edges_yr(self, redshift: float) -> np.ndarray:
        """Continuity bin edges in lookback years at ``redshift``, shape (n_sfh_bins + 1,).

        The oldest edge is the age of the Universe in the model's cosmology, capped
        at the oldest age of bagpipes' SSP grid (13.47 Gyr).
        """
        age = min(float(self.cosmology.age(redshift)), self._grid_max_age_yr * (1.0 - 1e-9))
        fixed = tuple(1e6 * e for e in self.settings.sfh_fixed_edges_myr)
        return continuity_bin_edges_yr(age, self.n_sfh_bins, fixed, self.settings.sfh_last_bin_fraction)

    def _components(self, theta: np.ndarray) -> dict:
        ix = self._index
        ratios = theta[self._ratio_index]
        n = self.n_sfh_bins
        continuity = {
            "massformed": 0.0,
            "metallicity": 10.0 ** theta[ix["log_metallicity"]],
            "bin_edges": list(self.sfh_bin_edges_yr(theta[ix["redshift"]]) / 1e6),
        }
        # bagpipes orders bins from the oldest: its dsfr_i = log SFR(i+1-th oldest) / SFR(i-th oldest).
        for i in range(1, n):
            continuity[f"dsfr{i}"] = float(ratios[n - i - 1])
        return {
            "redshift": 0.0,
            "t_bc": self.settings.birth_cloud_age_gyr,
            "continuity": continuity,
            "dust": {
                "type": "CF00",
                "Av": float(theta[ix["dust_av"]]),
                "eta": float(theta[ix["dust_eta"]]),
                "n": float(theta[ix["dust_index"]]),
            },
            "nebular": {"logU": float(theta[ix["log_u"]])},
        }

    def components_at_redshift(self, theta: np.ndarray) -> dict:
        """bagpipes components for running bagpipes itself at theta's redshift (1 Msun formed).

        For checks against bagpipes' own photometry. The oldest bin edge is
        pulled in by 1e-4 so that bagpipes' coarser age table does not put it
        before its own Big Bang.
        """
        components = self._components(theta)
        components["redshift"] = float(theta[self._index["redshift"]])
        components["continuity"]["bin_edges"][-1] *= 1 - 1e-4
        return components

    def _rest_sed(self, theta: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._model.update(self._components(theta))
        if self._model.sfh.unphysical:
            raise RuntimeError(f"bagpipes rejected the SFH of theta={theta.tolist()} as older than the Universe")
        log_mass_per_formed = float(self._model.sfh.stellar_mass)
        scale = 10.0 ** (theta[self._index["log_stellar_mass"]] - log_mass_per_formed)
        return np.asarray(self._model.spectrum_full, dtype=np.float64) * scale
