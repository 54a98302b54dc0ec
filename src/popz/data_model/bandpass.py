"""Bandpass corrections: a per-band wavelength shift of the filter curves, evaluated with the spectrum emulator.

A catalog's effective filters can differ from the nominal curves (filter
non-uniformity across the focal plane, atmosphere). The simplest correction is
a shift of each curve by delta_lambda (Angstrom, positive = redder). The
photometric emulator is tied to the nominal curves; the spectrum emulator
integrates any curve, so shifted bands are evaluated through it:

    table = make_band_table(shifted_bands(bands, shifts_A))
    mags = spectrum_emulator.magnitudes(theta, table)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from popz.errors import PopzError
from popz.sps.filters import Bandpass, make_bandpass

__all__ = ["shifted_bands"]


def shifted_bands(bands: Sequence[Bandpass], shifts_A: Sequence[float]) -> tuple[Bandpass, ...]:
    """``bands`` with each curve moved by ``shifts_A[b]`` Angstrom (throughput unchanged); provenance records the shift."""
    shifts = np.asarray(shifts_A, dtype=np.float64)
    if shifts.shape != (len(bands),) or not np.all(np.isfinite(shifts)):
        raise PopzError(f"need one finite shift (Angstrom) per band: {len(bands)} bands, got {list(np.atleast_1d(shifts))}")
    out = []
    for band, shift in zip(bands, shifts):
        if shift <= -band.wavelength_A[0]:
            raise PopzError(f"a shift of {shift} A moves band {band.name} below zero wavelength")
        out.append(
            make_bandpass(
                band.name if shift == 0 else f"{band.name}{shift:+g}A",
                band.wavelength_A + shift,
                band.throughput,
                band.provenance if shift == 0 else f"{band.provenance}, shifted by {shift:+g} A",
            )
        )
    return tuple(out)
