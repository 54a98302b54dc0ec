"""The SPS simulator interface.

A backend turns one parameter vector into a rest-frame SED; everything observed
(IGM, cosmological dimming, redshifting, bandpasses) is done here by popz, the
same way for every backend, so a new backend (FSPS, DSPS, ...) implements only
:meth:`Simulator.rest_sed` and registers itself with :func:`register_backend`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from popz.config import ModelConfig
from popz.errors import ConfigError, ParameterError
from popz.sps.cosmology import make_cosmology_table
from popz.sps.filters import Bandpass, load_bands
from popz.sps.igm import IGMTransmission
from popz.sps.photometry import flux_nJy_to_ab, rest_sed_to_flux_nJy

__all__ = ["Simulator", "register_backend", "make_simulator", "check_in_bounds"]

_BACKENDS: dict[str, Callable[[ModelConfig], "Simulator"]] = {}


def register_backend(name: str):
    """Class decorator: make a Simulator subclass available as ``simulator.backend: name``."""

    def decorate(cls):
        _BACKENDS[name] = cls
        return cls

    return decorate


def check_in_bounds(config: ModelConfig, theta: np.ndarray) -> np.ndarray:
    """Return ``theta`` as float64 of shape (n_parameters,), or raise ParameterError naming the offender."""
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (config.n_parameters,):
        raise ParameterError(
            f"model {config.name!r} expects a parameter vector of shape ({config.n_parameters},); got {theta.shape}"
        )
    for p, value in zip(config.parameters, theta):
        lo, hi = p.bounds
        if not lo <= value <= hi:
            raise ParameterError(f"parameter {p.name}={value:g} is outside its bounds [{lo:g}, {hi:g}]")
    return theta


class Simulator:
    """Base class of SPS backends.

    Subclasses set ``rest_wavelength_A`` and implement :meth:`_rest_sed`.

    Attributes
    ----------
    config : ModelConfig
    rest_wavelength_A : ndarray of shape (n_wave,)
        The backend's rest-frame wavelength grid, Angstrom.
    bands : tuple of Bandpass
        The model's band set.
    """

    config: ModelConfig
    rest_wavelength_A: np.ndarray

    def __init__(self, config: ModelConfig):
        self.config = config
        self.bands: tuple[Bandpass, ...] = load_bands(config.bands)
        self.cosmology = make_cosmology_table(config.cosmology)
        self.redshift_index = config.index("redshift")

    def _finish_setup(self) -> None:
        """Call at the end of a subclass's __init__, once ``rest_wavelength_A`` is known."""
        self.igm = IGMTransmission(self.rest_wavelength_A)

    def _rest_sed(self, theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def rest_sed(self, theta: np.ndarray) -> np.ndarray:
        """Intrinsic rest-frame L_lambda, shape (n_wave,), erg s^-1 A^-1 (no IGM).

        ``theta`` is one parameter vector, shape (n_parameters,), in the model's order.
        Raises ParameterError when it is outside the model's bounds.
        """
        return self._rest_sed(check_in_bounds(self.config, theta))

    def rest_sed_with_igm(self, theta: np.ndarray) -> np.ndarray:
        """Rest-frame L_lambda, shape (n_wave,), erg s^-1 A^-1, after IGM absorption at the galaxy's redshift."""
        theta = check_in_bounds(self.config, theta)
        return self._rest_sed(theta) * self.igm(float(theta[self.redshift_index]))

    def observe(self, rest_l_lambda: np.ndarray, redshift: float, bands: tuple[Bandpass, ...] | None = None) -> np.ndarray:
        """Fluxes in nJy, shape (n_bands,), of an intrinsic rest-frame SED (from :meth:`rest_sed`) seen at ``redshift``.

        Applies IGM absorption, the luminosity distance of the model's cosmology and
        the bandpasses (default: the model's).
        """
        sed = rest_l_lambda * self.igm(redshift)
        d_l = float(self.cosmology.luminosity_distance(redshift))
        return rest_sed_to_flux_nJy(self.rest_wavelength_A, sed, redshift, d_l, bands or self.bands)

    def flux_nJy(self, theta: np.ndarray, bands: tuple[Bandpass, ...] | None = None) -> np.ndarray:
        """Noiseless observed fluxes in nJy, shape (n_bands,), in ``bands`` (default: the model's)."""
        theta = check_in_bounds(self.config, theta)
        return self.observe(self._rest_sed(theta), float(theta[self.redshift_index]), bands)

    def magnitudes(self, theta: np.ndarray, bands: tuple[Bandpass, ...] | None = None) -> np.ndarray:
        """Noiseless observed AB magnitudes, shape (n_bands,)."""
        return flux_nJy_to_ab(self.flux_nJy(theta, bands))


def make_simulator(config: ModelConfig) -> Simulator:
    """The simulator named by ``config.simulator.backend``."""
    # Backends register themselves on import.
    import popz.sps.bagpipes_backend  # noqa: F401

    try:
        backend = _BACKENDS[config.simulator.backend]
    except KeyError:
        raise ConfigError(
            f"model {config.name!r}: unknown simulator backend {config.simulator.backend!r} "
            f"(available: {', '.join(sorted(_BACKENDS))})"
        ) from None
    return backend(config)
