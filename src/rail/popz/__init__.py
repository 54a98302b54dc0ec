"""popz as a RAIL plugin: ``from rail.popz import PopzInformer, PopzEstimator`` (also found by ``rail`` discovery)."""

from rail.estimation.algos.popz import PopzEstimator, PopzInformer

__all__ = ["PopzEstimator", "PopzInformer"]
