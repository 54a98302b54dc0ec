"""Priors over SPS parameters (ingredient C of the hierarchical model).

``TrainingPrior``: the independent, bounded prior training sets are drawn from.
``PopulationPrior``: the physical population prior p(theta | hyper) with
hyperparameters, from the model config's ``population`` section.
"""

from popz.population.prior import PopulationPrior, make_population_prior
from popz.population.training_prior import TrainingPrior

__all__ = ["TrainingPrior", "PopulationPrior", "make_population_prior"]
