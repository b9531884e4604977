"""Errors that the command line turns into one clear line and an exit code.

Anything else that escapes is a bug and keeps its traceback.
"""


def first_line(message: object) -> str:
    """The first line of ``str(message)``, stripped: an error that runs over several lines
    (pyarrow's, Hydra's, MLflow's) as one. An exception without a message is its ``repr``;
    any other empty text is ""."""
    lines = str(message).strip().splitlines()
    if lines:
        return lines[0].strip()
    return repr(message) if isinstance(message, BaseException) else ""


class MlopsLrError(Exception):
    """Base class of the errors a user can cause and fix."""

    exit_code = 1


class ConfigError(MlopsLrError, ValueError):
    """A configuration value is impossible (out of range, unknown choice, missing)."""

    exit_code = 2


class DataError(MlopsLrError, ValueError):
    """The input data cannot be used: unreadable, empty, non-numeric, NaN, missing columns."""

    exit_code = 3


class ArtifactError(MlopsLrError):
    """A saved artifact is missing, modified or incompatible."""

    exit_code = 4


class TrackingError(MlopsLrError):
    """The tracking store or registry cannot be reached, or refused what was asked."""

    exit_code = 5
