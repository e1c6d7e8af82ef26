"""The watchdog's helper process: walk the metadata of HDF5 files named on stdin, one at a time.

Run as a script by ``cache.watchdog`` (it imports h5py and the standard library only, so it starts
fast). For each line ``{"path": ...}`` on stdin it opens the file read-only, reads every attribute,
every object header and every chunk index entry, and answers one line ``{"ok": true}`` or
``{"error": "..."}`` on stdout. A libhdf5 call that loops on damaged metadata simply never answers;
the parent kills this process after its limit. It exits at EOF on stdin, and with its parent.
"""

from __future__ import annotations

import ctypes
import json
import sys

import h5py


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL: a stuck probe never outlives us


def _chunks(ds: h5py.Dataset, fatal: list[str]) -> None:
    """Visit every entry of a chunked dataset's index (B-tree or other): the walk that can loop.

    An entry of 0 bytes goes to ``fatal``: reading that chunk crashes libhdf5 (its Fletcher-32 filter
    reads before the buffer), so the file must never be read in the asking process.
    """
    if ds.chunks is None:
        return

    def visit(info) -> None:
        if info.size == 0 and not fatal:
            fatal.append(f"{ds.name}: a chunk stored as 0 bytes")

    if hasattr(ds.id, "chunk_iter"):
        ds.id.chunk_iter(visit)
    else:
        for i in range(ds.id.get_num_chunks()):
            visit(ds.id.get_chunk_info(i))


def walk(path: str, fatal: list[str] | None = None) -> str | None:
    """Touch all metadata of one file; the first error's text, or None when all of it read.

    What would crash a reader of the file (not merely fail) is appended to ``fatal``.
    """
    errors: list[str] = []
    fatal = [] if fatal is None else fatal

    def guarded(fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001  any failure is an answer; only a hang is not
            errors.append(f"{type(exc).__name__}: {exc}")

    def attrs(obj) -> None:
        for name in list(obj.attrs):
            guarded(obj.attrs.get, name)

    def visit(_name: str, obj) -> None:
        guarded(attrs, obj)
        if isinstance(obj, h5py.Dataset):
            guarded(lambda: (obj.shape, obj.dtype, obj.compression, obj.id.get_create_plist()))
            guarded(_chunks, obj, fatal)

    try:
        with h5py.File(path, "r", locking=False) as h5:
            guarded(attrs, h5)
            guarded(h5.visititems, visit)
    except Exception as exc:  # noqa: BLE001
        errors.append(f"{type(exc).__name__}: {exc}")
    return errors[0] if errors else None


def main() -> None:
    _die_with_parent()
    for line in sys.stdin:
        fatal: list[str] = []
        error = walk(json.loads(line)["path"], fatal)
        answer = {"fatal": fatal[0]} if fatal else {"ok": True} if error is None else {"error": error}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
