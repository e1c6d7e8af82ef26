"""One writer per cache key directory, enforced by an advisory ``flock`` on ``<key_dir>/.lock``.

flock is released by the kernel when its holder dies, so a lock left behind by a killed
process is never a real obstacle: the file may still name the dead holder, but the lock
is free and the next writer simply takes over. The holder info in the file exists only
to make the "already running" message useful.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from cache.manifest import now_iso
from core.errors import CacheError

LOCK_NAME = ".lock"


def _read_holder(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536)
    if not raw.strip():
        return None
    try:
        info = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


def describe_holder(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process (no holder info recorded)"
    pid, host, since, cmd = (info.get(k, "?") for k in ("pid", "host", "since", "command"))
    return f"pid {pid} on {host} since {since} ({cmd})"


class CacheLock:
    """``with CacheLock(key_dir):`` — exclusive write access to one cache key directory.

    ``wait=False`` raises CacheError naming the holder; ``wait=True`` blocks until it is free.
    After entering, ``took_over`` holds the info a dead holder left behind (None if none).
    """

    def __init__(self, key_dir: Path, wait: bool = False) -> None:
        self.key_dir = Path(key_dir)
        self.path = self.key_dir / LOCK_NAME
        self.wait = wait
        self.took_over: dict[str, Any] | None = None
        self._fd: int | None = None

    def __enter__(self) -> CacheLock:
        self.key_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire(fd)
            previous = _read_holder(fd)
            me = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": " ".join(sys.argv) or sys.executable,
                "since": now_iso(),
            }
            # The lock was free, so whoever the file still names is gone: take over.
            if previous and (previous.get("pid"), previous.get("host")) != (me["pid"], me["host"]):
                self.took_over = previous
                print(
                    f"note: cache {self.key_dir} was left locked by {describe_holder(previous)}, which "
                    "ended without releasing it (killed?); the stale lock is cleared and its finished "
                    "work is reused",
                    file=sys.stderr,
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _acquire(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = describe_holder(_read_holder(fd))
        if not self.wait:
            raise CacheError(
                f"cache {self.key_dir} is in use by {holder}; wait for it to finish (extract --wait-lock "
                "waits for you) or stop that process"
            )
        print(f"waiting for cache {self.key_dir}, in use by {holder}", file=sys.stderr)
        fcntl.flock(fd, fcntl.LOCK_EX)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a clean exit leaves no holder info behind
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
