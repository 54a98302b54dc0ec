"""Every per-object flag bit of popz's outputs, in one table (the ``flags`` column is their bitwise OR).

Bits are set where they arise: reading the catalog (:mod:`popz.io.catalog`),
the MCMC (:mod:`popz.infer.fit`), the amortized path
(:mod:`popz.infer.amortized_fit`) and posterior updates
(:mod:`popz.posterior.reweight`). docs/errors.md says what each means for the
user and what to do.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from popz.infer.amortized_fit import FLAG_LOW_ESS, FLAG_OUT_OF_DISTRIBUTION, FLAG_POOR_FIT, FLAG_REFIT_MCMC
from popz.infer.fit import FLAG_EMULATOR_DOMAIN, FLAG_NOT_CONVERGED
from popz.io.catalog import (
    FLAG_BAND_INVALID,
    FLAG_EBV_MISSING,
    FLAG_EBV_NEGATIVE,
    FLAG_NO_BANDS,
    FLAG_ONE_BAND,
    FLAG_UNKNOWN_TRACT,
)

__all__ = ["FLAGS", "Flag", "flag_names"]


class Flag(NamedTuple):
    bit: int
    name: str
    meaning: str


FLAGS = (
    Flag(FLAG_UNKNOWN_TRACT, "unknown_tract", "tract without calibrated zero-points: the default ones were used"),
    Flag(FLAG_EBV_MISSING, "ebv_missing", "E(B-V) missing (NaN): taken as 0"),
    Flag(FLAG_EBV_NEGATIVE, "ebv_negative", "E(B-V) negative: set to 0"),
    Flag(FLAG_NO_BANDS, "no_bands", "no usable band: the posterior is the prior"),
    Flag(FLAG_NOT_CONVERGED, "not_converged", "MCMC effective sample size or split R-hat missed its threshold"),
    Flag(FLAG_EMULATOR_DOMAIN, "emulator_domain", "over 1% of the posterior draws outside the emulator's bounds, or beyond one parameter's sparse tail of its training set"),
    Flag(FLAG_OUT_OF_DISTRIBUTION, "out_of_distribution", "inputs unlike the posterior flow's training set (density or selection cut)"),
    Flag(FLAG_POOR_FIT, "poor_fit", "best chi^2 improbable (p < 1e-3): no model in the posterior fits the fluxes"),
    Flag(FLAG_LOW_ESS, "low_ess", "importance-sampling effective sample size below its threshold"),
    Flag(FLAG_REFIT_MCMC, "refit_mcmc", "informational: draws come from the MCMC fallback"),
    Flag(FLAG_BAND_INVALID, "band_invalid", "a band held an unusable value (inf, bad error, absurd flux) and was ignored"),
    Flag(FLAG_ONE_BAND, "one_band", "a single usable band: redshift essentially unconstrained"),
)


def flag_names(flags) -> list[list[str]]:
    """The names of the bits set in each of ``flags`` (n,) int."""
    flags = np.asarray(flags, np.int64)
    return [[f.name for f in FLAGS if value & f.bit] for value in flags]
