"""Content addresses for stored sequences: which source bytes, which segment, which augmented copy.

A sequence is reused only when its content id matches, so a changed, added or removed
frame changes the fingerprint and forces re-extraction of that one video (DESIGN §5).
Size + mtime_ns is the cheap proxy for the bytes (hashing every frame would cost as much
as decoding it); tools that rewrite a file keep neither size nor mtime_ns. ``--fingerprint
content`` hashes the bytes instead, once per file (core/digests.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.digests import DigestMemo, stat_input
from data.sequence import Video

FINGERPRINT_VERSION = 1


def _relative(path: Path, root: Path) -> str:
    """Path relative to the video root so moving the whole dataset keeps every fingerprint."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, root)).as_posix()


def _source_entries(video: Video, digests: DigestMemo | None = None) -> bytes:
    """Each source file's relative path with its size and mtime_ns (or, with ``digests``, its BLAKE2b
    digest), in order: the source's fingerprint."""
    return _file_entries(video.files, Path(video.root), digests)


def _file_entries(files: Iterable[Path], root: Path, digests: DigestMemo | None = None) -> bytes:
    parts = []
    for path in files:
        if digests is not None:
            parts.append(f"{_relative(Path(path), root)}\0{digests.digest(Path(path))}\0")
            continue
        st = stat_input(path)
        parts.append(f"{_relative(Path(path), root)}\0{st.st_size}\0{st.st_mtime_ns}\0")
    return "".join(parts).encode()


def with_imports(fingerprint: str, files: tuple[Path, ...], digests: DigestMemo | None = None) -> str:
    """A video's fingerprint joined with files a stream imports for it (``--landmarks npz:DIR``), each
    named by its file name and fingerprinted as the frames are (stat, or content with ``digests``).
    Without imported files the fingerprint is returned unchanged, so existing caches stay valid."""
    if not files:
        return fingerprint
    h = hashlib.sha256(f"{fingerprint}\0imports\0".encode())
    h.update(_file_entries(files, Path(files[0]).parent, digests))
    return h.hexdigest()


def video_fingerprint(
    video: Video, sources: dict[tuple[str, str], bytes] | None = None, digests: DigestMemo | None = None
) -> str:
    """sha256 hex over the sample key, its segment bounds, and the source's fingerprint (each file's
    relative path, size and mtime_ns, in order).

    The key (``<class>/<video_id>``, plus ``@<start>-<end>`` for a segment) is included because the stored
    record carries the sequence id and label; two samples with identical file listings must not share it.
    ``sources`` memoises the source part per source, so 40 segments of one recording stat its files once.
    With ``digests`` (``--fingerprint content``) each file's BLAKE2b digest replaces its size and mtime: a
    same-size rewrite with a restored mtime is caught, and a copy that kept the bytes but not the
    timestamps is still reused. The two modes never share ids. A whole-source sample in the default mode
    hashes exactly as fingerprint v1 did, so existing caches stay valid.

    A sample that carries annotations (HaGRID's boxes and landmarks, which the annotations and landmarks
    streams store) is addressed by their content too: editing one image's entry in the JSON re-extracts
    that image only. Samples without annotations hash as before.
    """
    h = hashlib.sha256()
    mode = "-content" if digests is not None else ""
    h.update(f"fingerprint-v{FINGERPRINT_VERSION}{mode}\0{video.key}\0{len(video.files)}\0".encode())
    if video.is_segment:
        h.update(f"segment\0{video.start}\0{video.end}\0{video.source_length}\0".encode())
    if video.annotations is not None:
        notes = json.dumps(
            video.annotations, sort_keys=True, separators=(",", ":"), allow_nan=True, default=_json_stand_in
        )
        h.update(f"annotations\0{notes}\0".encode())
    folder = getattr(video.frames, "folder", None)
    source = video.video_file or folder
    if sources is None or source is None:
        h.update(_source_entries(video, digests))
        return h.hexdigest()
    memo_key = (str(source), str(video.root))
    if memo_key not in sources:
        sources[memo_key] = _source_entries(video, digests)
    h.update(sources[memo_key])
    return h.hexdigest()


def _json_stand_in(value: Any) -> Any:
    """JSON stand-in for what annotations hold besides plain data: for an array (the demo's true hand
    boxes) its dtype, shape and a digest of the bytes, so the annotation part of a key costs the same for
    any array size; for a compact mapping (HaGRID's ``HagridNotes``) the dict it reads as."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        data = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return {"ndarray": str(value.dtype), "shape": list(value.shape), "sha256": data}
    raise TypeError(f"annotation value of type {type(value).__name__} cannot be part of a cache key")


def content_id(fingerprint: str, aug_index: int) -> str:
    """64 hex chars naming one stored sequence: a video's fingerprint plus its augmented copy."""
    if aug_index < 0:
        raise ValueError(f"aug_index must be >= 0, got {aug_index}")
    return hashlib.sha256(f"{fingerprint}#a{int(aug_index)}".encode()).hexdigest()
