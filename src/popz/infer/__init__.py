"""Inference: the likelihood (and, next, the samplers built on it)."""
