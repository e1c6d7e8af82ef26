"""Content addresses for stored sequences: which video bytes, which augmented copy.

A sequence is reused only when its content id matches, so a changed, added or removed
frame changes the fingerprint and forces re-extraction of that one video (DESIGN §5).
Size + mtime_ns is the cheap proxy for the bytes (hashing every frame would cost as much
as decoding it); tools that rewrite a file keep neither size nor mtime_ns. ``--fingerprint
content`` hashes the bytes instead, once per file (cache/digests.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cache.digests import DigestMemo
from data.sequence import Video
from errors import BadInputError

FINGERPRINT_VERSION = 1


def _relative(path: Path, root: Path) -> str:
    """Path relative to the video root so moving the whole dataset keeps every fingerprint."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, root)).as_posix()


def video_fingerprint(video: Video, digests: DigestMemo | None = None) -> str:
    """sha256 hex over the video key, and each file's relative path, size and mtime_ns, in order.

    The key (``<class>/<video_id>``) is included because the stored record carries the
    sequence id and label; two videos with identical file listings must not share it.
    With ``digests`` (``--fingerprint content``) each file's BLAKE2b digest replaces its size and
    mtime: a same-size rewrite with a restored mtime is caught, and a copy that kept the bytes but
    not the timestamps is still reused. The two modes never share ids.
    """
    h = hashlib.sha256()
    if digests is not None:
        h.update(f"fingerprint-v{FINGERPRINT_VERSION}-content\0{video.key}\0{len(video.files)}\0".encode())
        for path in video.files:
            h.update(f"{_relative(Path(path), Path(video.root))}\0{digests.digest(Path(path))}\0".encode())
        return h.hexdigest()
    h.update(f"fingerprint-v{FINGERPRINT_VERSION}\0{video.key}\0{len(video.files)}\0".encode())
    for path in video.files:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise BadInputError(
                f"{path}: cannot read file ({exc.strerror}); check the dataset folder"
            ) from exc
        h.update(f"{_relative(Path(path), Path(video.root))}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def content_id(fingerprint: str, aug_index: int) -> str:
    """64 hex chars naming one stored sequence: a video's fingerprint plus its augmented copy."""
    if aug_index < 0:
        raise ValueError(f"aug_index must be >= 0, got {aug_index}")
    return hashlib.sha256(f"{fingerprint}#a{int(aug_index)}".encode()).hexdigest()
