"""Distances and ages from the model's cosmology, tabulated for fast interpolation."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from popz.config import CosmologyConfig

__all__ = ["CosmologyTable", "make_cosmology_table", "MPC_CM"]

MPC_CM = 3.085677581491367e24  # one megaparsec in cm (IAU 2015)


class CosmologyTable(NamedTuple):
    """Luminosity distance and age of the Universe on a redshift grid.

    redshift : ndarray of shape (n_z,)
        Uniform grid from 0 to ``z_max``.
    luminosity_distance_over_z_cm : ndarray of shape (n_z,)
        d_L(z) / z in cm (c / H0 at z = 0): smooth, so it interpolates well at low z.
    age_yr : ndarray of shape (n_z,)
        Age of the Universe at z, in years.
    """

    redshift: np.ndarray
    luminosity_distance_over_z_cm: np.ndarray
    age_yr: np.ndarray

    def luminosity_distance(self, redshift):
        """d_L in cm at ``redshift`` (scalar or array); relative error < 1e-7."""
        return redshift * np.interp(redshift, self.redshift, self.luminosity_distance_over_z_cm)

    def age(self, redshift):
        """Age of the Universe in years at ``redshift``."""
        return np.interp(redshift, self.redshift, self.age_yr)


def make_cosmology_table(cosmology: CosmologyConfig, z_max: float = 10.0, dz: float = 1e-3) -> CosmologyTable:
    """Tabulate the astropy cosmology named in the model config.

    d_L / z is tabulated every ``dz``;
    the age, a slow quadrature in astropy and a smooth function, on a 10x coarser
    grid and interpolated onto the same one (error < 3e-5 relative).
    """
    cosmo = cosmology.astropy()
    z = np.linspace(0.0, z_max, int(round(z_max / dz)) + 1)
    d_l = cosmo.luminosity_distance(z[1:]).to_value("Mpc") * MPC_CM
    hubble_distance = cosmo.hubble_distance.to_value("Mpc") * MPC_CM
    d_l_over_z = np.concatenate([[hubble_distance], d_l / z[1:]])
    z_coarse = z[::10]
    age = np.interp(z, z_coarse, cosmo.age(z_coarse).to_value("yr"))
    return CosmologyTable(z, d_l_over_z, age)
