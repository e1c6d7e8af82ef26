"""Error types that mean "the user can fix this".

The CLI turns every ``UserError`` into one line on stderr and exit status 2; any
other exception is a bug and keeps its traceback (exit status 1).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, files or environment, not with the code."""


class BadInputError(UserError):
    """A frame, video or folder that cannot be used. The message names the file."""


class CacheError(UserError):
    """A cache that is missing, stale, incomplete, corrupt or incompatible."""


class WeightsUnavailableError(UserError):
    """Pretrained weights are neither cached locally nor reachable."""


class DeviceUnavailableError(UserError):
    """A ``--device`` that names no usable device (CUDA asked for but absent, or a bad name)."""


def one_line(error: BaseException) -> str:
    """An exception's text on one line: a message built from a damaged file can carry its newlines."""
    return " ".join(str(error).split()) or type(error).__name__
