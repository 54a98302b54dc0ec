"""Priors over SPS parameters (ingredient C of the hierarchical model)."""

from popz.population.training_prior import TrainingPrior

__all__ = ["TrainingPrior"]
