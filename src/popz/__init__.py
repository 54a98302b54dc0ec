"""popz: posteriors over redshift and physical properties for every galaxy of a survey.

A hierarchical model (data model x SPS model x population prior) made fast by
emulators and amortized inference. See ``docs/architecture.md``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("popz")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
