"""HDF5 writes that survive a full disk: the file HDF5 writes through absorbs the failure.

When a write fails inside HDF5 (disk full, quota, file size limit), HDF5 1.14 cannot close that
file any more: h5py prints "Exception ignored ... Traceback" blocks as the objects die, and the
interpreter segfaults at exit (seen with h5py 3.16 under RLIMIT_FSIZE). A full disk would then
end `extract` with signal 11 and a screen of tracebacks instead of exit 2 and one line.

So cache files are written through h5py's file-object driver into ``GuardedFile``: the first
failed write is recorded, the bytes of that and every later write are kept in memory (and served
back to HDF5's reads), and HDF5 closes normally. ``h5_writer`` then raises the recorded OSError;
callers delete the file and turn the error into one line (``cache.diskfull``). Writers stop
writing data once ``guard.error`` is set, so what is held in memory stays small.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py


class GuardedFile:
    """A binary file for h5py's fileobj driver (seek/tell/read(into)/write/truncate/flush)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.pos = 0
        self.size = 0  # logical size: what HDF5 believes the file holds
        self.error: OSError | None = None
        self.kept: list[tuple[int, bytes]] = []  # (offset, bytes) not on disk, in write order

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        n, done = len(view), 0
        if self.error is None:
            try:
                while done < n:
                    written = os.pwrite(self.fd, view[done:], self.pos + done)
                    if written == 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                    done += written
            except OSError as exc:
                self.error = exc if exc.filename else OSError(exc.errno, exc.strerror, str(self.path))
        if done < n:
            self.kept.append((self.pos + done, bytes(view[done:])))
        self.pos += n
        self.size = max(self.size, self.pos)
        return n

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self.pos))
        got = os.preadv(self.fd, [view[:n]], self.pos) if n else 0
        view[got:n] = bytes(n - got)  # past the end on disk: written only to memory, or never
        for offset, data in self.kept:  # later writes win, as on a disk
            lo, hi = max(offset, self.pos), min(offset + len(data), self.pos + n)
            if lo < hi:
                view[lo - self.pos : hi - self.pos] = data[lo - offset : hi - offset]
        self.pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        size = self.size - self.pos if size < 0 else size
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(buffer)])

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        self.size = size
        if self.error is None:
            try:
                os.ftruncate(self.fd, size)
            except OSError as exc:
                self.error = OSError(exc.errno, exc.strerror, str(self.path))
        return size

    def flush(self) -> None:
        pass  # every write goes straight to the kernel; durability is publish()'s fsync

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@contextmanager
def h5_writer(path: Path) -> Iterator[tuple[h5py.File, GuardedFile]]:
    """``with h5_writer(tmp) as (h5, guard):`` write; on exit raise the first failed write, if any.

    Long writers should stop once ``guard.error`` is set: the rest would only be kept in memory.
    """
    guard = GuardedFile(path)
    try:
        with h5py.File(guard, "w") as h5:
            yield h5, guard
    finally:
        guard.close()
    if guard.error is not None:
        raise guard.error
