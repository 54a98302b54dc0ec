"""Photometry in any bands through the spectrum emulator, behind the photometric emulator's interface.

``popz fit --bands ... --filters ...`` with bands the photometric emulator was
not trained for uses :class:`BandPhotometry`: the spectrum emulator's rest-frame
SED redshifted and integrated through the given curves (no training). Its
error model is a constant per band (``error_rms_mag``; ``popz fit`` uses
:data:`DEFAULT_ERROR_MAG`, just above the largest held-out RMS measured for the
shipped spectrum emulator: 0.0082 mag in LSST bands, 0.011 in SDSS bands).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from popz.emulate.spectrum import SpectrumEmulator
from popz.sps.jax_photometry import BandTable, LogGridBandTable
from popz.sps.photometry import AB_MAG_OF_ONE_NJY

__all__ = ["BandPhotometry", "band_photometry", "DEFAULT_ERROR_MAG"]

DEFAULT_ERROR_MAG = 0.012


class BandPhotometry(eqx.Module):
    """theta -> fluxes in fixed bands via the spectrum emulator.

    bands : the curves as the spectrum emulator's :meth:`~SpectrumEmulator.band_table` (or any :class:`BandTable`)
    error_rms_mag : (n_bands,) emulator error per band, mag
    """

    spectrum: SpectrumEmulator
    bands: BandTable | LogGridBandTable
    error_rms_mag: jax.Array
    band_names: tuple = eqx.field(static=True)

    @property
    def inputs(self):
        return self.spectrum.inputs

    def flux_nJy(self, theta: jax.Array) -> jax.Array:
        return self.spectrum.flux_nJy(theta, self.bands)

    def magnitudes(self, theta: jax.Array) -> jax.Array:
        return AB_MAG_OF_ONE_NJY - 2.5 * jnp.log10(self.flux_nJy(theta))

    def error_mag(self, theta: jax.Array) -> jax.Array:
        return self.error_rms_mag

    def domain_flags(self, theta: jax.Array) -> jax.Array:
        return self.spectrum.domain_flags(theta)


def band_photometry(spectrum: SpectrumEmulator, bands, error_rms_mag: float) -> BandPhotometry:
    """:class:`BandPhotometry` for a tuple of :class:`popz.sps.filters.Bandpass` with one error (mag) for every band."""
    return BandPhotometry(
        spectrum=spectrum,
        bands=spectrum.band_table(tuple(bands)),
        error_rms_mag=jnp.full((len(bands),), error_rms_mag, jnp.float32),
        band_names=tuple(b.name for b in bands),
    )
