"""Ingredient A, the data model: zero-points, noise, Galactic extinction, selection."""

from popz.data_model.extinction import ExtinctionTable, make_extinction_table
from popz.data_model.noise import DataModelHyper, default_data_model, flux_variance, predicted_flux

__all__ = [
    "DataModelHyper",
    "ExtinctionTable",
    "default_data_model",
    "flux_variance",
    "make_extinction_table",
    "predicted_flux",
]
