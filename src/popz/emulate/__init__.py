"""Emulators of the SPS simulator, and the training sets they learn from.

``popz.emulate.load("lsst-default")`` gives the shipped photometric emulator;
``load("lsst-default", kind="spectrum")`` the spectrum emulator (any bands).
"""

from popz.emulate.batching import chunked_vmap
from popz.emulate.files import load

__all__ = ["load", "chunked_vmap"]
