"""Atomic, durable file writes: a reader sees the old file or the new one, never half of one.

Every write goes to a temporary path in the same directory (so the rename stays on one file
system), is flushed and fsynced, renamed over the target with ``os.replace``, and then the
directory is fsynced so the rename itself survives a power cut, not only a killed process.
Writers that produce their own temporary file (HDF5 shards and split files, a staged folder)
call ``publish`` with it; everything else uses ``atomic_path`` or one of the ``write_*`` helpers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import BadInputError


def refuse_unwritable(path: Path, flag: str) -> None:
    """Refuse, before any work, an output file path that is a folder, lies under a regular file, or in a
    folder this user cannot write: the write at the end (a predictions CSV after a whole test set, a
    report after an evaluation, a video) would fail and lose that work."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{flag} {path}: is a folder; name the file to write")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BadInputError(f"{flag} {path}: {parent} is a file, not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInputError(f"{flag} {path}: cannot write into {parent}; choose another path")


def fsync_path(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk so a rename after it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, rename it over ``final`` and fsync the directory: all-or-nothing on disk.

    ``tmp`` may be a file or a directory (a folder staged whole); it must sit beside ``final``.
    """
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_path(Path(final).parent)


def tmp_path_for(path: Path) -> Path:
    """The hidden temporary name ``atomic_path`` writes to: ``.<name>.tmp`` beside ``path``."""
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success publish it over ``path``.

    For writers that want a path (``torch.save``, csv, h5py). An exception leaves the previous
    file intact and removes the temporary one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(
    path: Path,
    obj: Any,
    *,
    indent: int = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> None:
    """``obj`` as JSON text with a final newline; the layout options are the caller's (diff-friendly)."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n")
