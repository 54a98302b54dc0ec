"""Exceptions popz raises for user errors.

Every exception derived from :class:`PopzError` describes a problem with what
the user gave (a file, a name, a value) and carries a one-line message that says
what and where. The CLI prints that line and exits non-zero without a traceback;
anything else is a bug and keeps its traceback.
"""


class PopzError(Exception):
    """A user error: bad input, unknown name, incompatible file."""


class ConfigError(PopzError):
    """An invalid model configuration (YAML or its values)."""


class FilterError(PopzError):
    """An unknown band name or a malformed filter curve."""


class ParameterError(PopzError):
    """A parameter vector of the wrong shape or outside its bounds."""
