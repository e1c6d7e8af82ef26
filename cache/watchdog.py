"""A watchdog over the first read of every HDF5 file this process did not write.

libhdf5 can loop for good on damaged metadata (a B-tree whose child points back at its parent),
and a stuck C call cannot be interrupted from Python: a thread, a signal or a timeout around it
would wait forever too. So the first metadata walk of a file runs in a helper process
(``cache/h5probe.py``: every attribute, object header and chunk index entry) that can be killed.
Once the walk has finished, this process opens the file itself: what libhdf5 will meet there has
already been met once. A walk that does not finish within the limit becomes one line,
``<file>: HDF5 metadata damaged (read did not finish)``, instead of a hung job. The walk also refuses
a file whose chunk index holds what crashes libhdf5 outright on read (a chunk stored as 0 bytes), which
no exception handler in this process could survive.

The limit is ``GESTURE_HDF5_TIMEOUT`` seconds (default 30; 0 turns the watchdog off). One helper
serves the whole process; it starts on the first probe (~0.5 s, mostly importing h5py), answers in
milliseconds per file after that, and is replaced when it had to be killed.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from core.errors import CacheError

ENV_LIMIT = "GESTURE_HDF5_TIMEOUT"
DEFAULT_LIMIT = 30.0
PROBE_SCRIPT = Path(__file__).with_name("h5probe.py")


class MetadataHangError(CacheError):
    """An HDF5 file whose metadata walk did not finish, or found what crashes libhdf5: never opened here."""


def limit_seconds() -> float:
    """The per-file limit from ``GESTURE_HDF5_TIMEOUT``; a bad value is the user's to fix."""
    text = os.environ.get(ENV_LIMIT, "").strip()
    if not text:
        return DEFAULT_LIMIT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise CacheError(
            f"{ENV_LIMIT}={text!r}: expected a number of seconds >= 0 (0 turns the watchdog off)"
        )
    return value


class _Helper:
    """One probe process, its pipes, and a lock so threads take turns."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(PROBE_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    def ask(self, path: Path, limit: float) -> str | None:
        """None when the walk finished (readable or not) within ``limit`` s, else what went wrong."""
        self.proc.stdin.write(json.dumps({"path": os.fspath(path)}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], limit)
        if not ready:
            return "read did not finish"
        answer = self.proc.stdout.readline()
        if not answer:  # EOF: libhdf5 killed the helper (a crash on this file)
            return f"reading it crashed the reader, status {self.proc.wait()}"
        fatal = json.loads(answer).get("fatal")
        return f"{fatal}, which would crash the reader" if fatal else None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


_lock = threading.Lock()
_helper: _Helper | None = None
_walked: set[tuple[str, int, int, int]] = set()  # (path, inode, size, mtime_ns) walked to the end


@atexit.register
def _stop_helper() -> None:
    """End the helper with this process (it would see EOF anyway) without a ResourceWarning."""
    if _helper is not None:
        _helper.kill()
        for pipe in (_helper.proc.stdin, _helper.proc.stdout):
            pipe.close()


def _identity(path: Path) -> tuple[str, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # missing or unreadable: the caller's own open reports it
    return (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)


def watch_open(paths: Path | Iterable[Path]) -> None:
    """Walk each file's metadata in the helper first; raise MetadataHangError for one that hangs.

    A file that fails quickly (truncated, not HDF5) passes: the caller's own open reports it in
    its own words. Files already walked unchanged by this process are not walked again.
    """
    global _helper
    paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    limit = limit_seconds()
    if limit == 0:
        return
    with _lock:
        for path in paths:
            ident = _identity(path)
            if ident is None or ident in _walked:
                continue
            if _helper is None or _helper.proc.poll() is not None:
                _helper = _Helper()
            failed = _helper.ask(path, limit)
            if failed is None:
                _walked.add(ident)
                continue
            _helper.kill()
            _helper = None
            stopped = f"; stopped after {limit:g} s ({ENV_LIMIT})" if failed.endswith("finish") else ""
            raise MetadataHangError(
                f"{path}: HDF5 metadata damaged ({failed}){stopped}; delete the file and re-run "
                "`pipeline.py extract`"
            )
