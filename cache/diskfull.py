"""Recognising "the disk is full" in whatever form a layer reports it, as one line naming the file.

Python's own writes raise OSError with errno ENOSPC, EDQUOT or EFBIG (a file size limit). h5py
raises OSError too, but its text is HDF5's multi-line driver report ("file write failed: time = ...
errno = 28, error message = 'No space left on device' ..."), and some h5py versions leave
``errno`` None so that the number is only in the text. Printing that report verbatim breaks the
CLI's one-line error contract, so every writer maps it here.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from core.errors import CacheError

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_ERRNO_IN_TEXT = re.compile(r"errno\s*=\s*(\d+)")
_FILENAME_IN_TEXT = re.compile(r"filename\s*=\s*'([^']+)'")


def disk_errno(exc: BaseException) -> int | None:
    """ENOSPC, EDQUOT or EFBIG when ``exc`` says the disk (or quota, or size limit) is full; else None.

    h5py raises OSError for a failed write but RuntimeError when the failure surfaces while closing
    ("Can't close dataset (file write failed: ... errno = 27 ...)"), so both are read.
    """
    if not isinstance(exc, OSError | RuntimeError):
        return None
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return exc.errno
    text = str(exc)
    for match in _ERRNO_IN_TEXT.finditer(text):
        if int(match[1]) in DISK_ERRNOS:
            return int(match[1])
    return next((code for code in sorted(DISK_ERRNOS) if os.strerror(code) in text), None)


def failed_path(exc: BaseException) -> str | None:
    """The file an error is about: ``exc.filename``, or the ``filename = '...'`` of an HDF5 report."""
    if getattr(exc, "filename", None):
        return str(exc.filename)
    match = _FILENAME_IN_TEXT.search(str(exc))
    return match[1] if match else None


RESUME_ADVICE = "finished shards are kept and only the rest is redone"


def disk_full_error(path: Path | str | None, exc: BaseException, advice: str = "") -> CacheError | None:
    """A one-line CacheError naming ``path`` when ``exc`` is a full disk; None for any other error."""
    code = disk_errno(exc)
    if code is None:
        return None
    where = path or failed_path(exc) or "a file"
    return CacheError(
        f"cannot write {where}: {os.strerror(code)} (disk, quota or file size limit full); free space "
        f"and re-run the same command{': ' + advice if advice else ''}"
    )
