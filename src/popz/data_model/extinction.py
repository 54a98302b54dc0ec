"""Galactic extinction of model photometry from an object's E(B-V).

The band extinction A_b(E(B-V)) is the magnitude lost by a flat-f_nu source
through the band when the Milky Way law (Fitzpatrick 1999 or Gordon et al.
2023, R_V = 3.1 by default, via ``dust_extinction``) with that E(B-V) is
applied, integrated over the band exactly as popz's photometry does. It is
tabulated once per band set on an E(B-V) grid and interpolated in JAX, so the
slight non-linearity of broad bands at large E(B-V) is kept.
E(B-V) is taken on the scale the law expects (e.g. SFD x 0.86 for the
Schlafly & Finkbeiner 2011 recalibration): converting is the catalog's job.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from popz.errors import ConfigError
from popz.sps.filters import Bandpass
from popz.sps.photometry import band_mean_fnu

__all__ = ["ExtinctionTable", "make_extinction_table", "EXTINCTION_LAWS"]

EXTINCTION_LAWS = ("F99", "G23")


class ExtinctionTable(NamedTuple):
    """A_b in mag on an E(B-V) grid.

    ebv : (n_ebv,) E(B-V) grid in mag, from 0
    a_band : (n_ebv, n_bands) extinction per band in mag
    """

    ebv: jnp.ndarray
    a_band: jnp.ndarray

    def __call__(self, ebv):
        """A_b, shape (n_bands,), for one E(B-V) (linear interpolation; linear extrapolation beyond the grid)."""
        de = self.ebv[1] - self.ebv[0]
        i = jnp.clip(jnp.floor(ebv / de).astype(jnp.int32), 0, self.ebv.shape[0] - 2)
        w = (ebv - self.ebv[i]) / de
        return (1.0 - w) * self.a_band[i] + w * self.a_band[i + 1]

    def transmission(self, ebv):
        """Flux factor 10^(-0.4 A_b), shape (n_bands,)."""
        return 10.0 ** (-0.4 * self(ebv))


def _law(name: str, r_v: float):
    from dust_extinction.parameter_averages import F99, G23

    laws = {"F99": F99, "G23": G23}
    if name not in laws:
        raise ConfigError(f"unknown extinction law {name!r}; choose one of {', '.join(EXTINCTION_LAWS)}")
    return laws[name](Rv=r_v)


def make_extinction_table(
    bands: tuple[Bandpass, ...], law: str = "F99", r_v: float = 3.1, ebv_max: float = 2.0, n_ebv: int = 201
) -> ExtinctionTable:
    """Tabulate A_b(E(B-V)) for ``bands`` (E(B-V) from 0 to ``ebv_max``)."""
    import astropy.units as u

    model = _law(law, r_v)
    lo_um, hi_um = 1.0 / model.x_range[1], 1.0 / model.x_range[0]
    ebv = np.linspace(0.0, ebv_max, n_ebv)
    table = np.zeros((n_ebv, len(bands)))
    for j, band in enumerate(bands):
        lam = np.geomspace(band.wavelength_A[0], band.wavelength_A[-1], 2000)
        if lam[0] < lo_um * 1e4 or lam[-1] > hi_um * 1e4:
            raise ConfigError(
                f"band {band.name} ({lam[0]:.0f}-{lam[-1]:.0f} A) lies outside the {law} law's range "
                f"({lo_um * 1e4:.0f}-{hi_um * 1e4:.0f} A)"
            )
        a_over_av = np.asarray(model(lam * u.AA))
        for i, e in enumerate(ebv):
            dimmed = band_mean_fnu(lam, 10.0 ** (-0.4 * a_over_av * r_v * e), band)
            table[i, j] = -2.5 * np.log10(dimmed)
    return ExtinctionTable(jnp.asarray(ebv, jnp.float32), jnp.asarray(table, jnp.float32))
