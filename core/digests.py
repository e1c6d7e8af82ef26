"""Content digests of files, remembered by path and stat so each file is hashed once.

Two users: ``extract --fingerprint content`` addresses a video by the bytes of its frames instead of
their size and mtime (BLAKE2b, memo in ``<cache_dir>/digests.json``), and a cache key names real encoder
weights by their sha256 (memo in the user's cache folder, models/encoders/digest.py). Hashing a file
costs about as much I/O as decoding it, so a file whose path, size, mtime_ns, ctime_ns and inode are
unchanged since it was last hashed is not read again. ctime is what makes this safe: a tool can set a
file's mtime back after rewriting it, but no tool can set its ctime back, so the rewrite is hashed again.
The memo is only a shortcut: a missing or damaged one is rebuilt (every file hashed again), never
trusted in part, and it is written atomically (core/atomic.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from core.atomic import write_json_atomic
from core.errors import BadInputError

MEMO_NAME = "digests.json"
MEMO_FORMAT = "gesture-digests/1"
DIGEST_BYTES = 32  # BLAKE2b-256 and sha256 alike
ALGORITHMS = {"blake2b": lambda: hashlib.blake2b(digest_size=DIGEST_BYTES), "sha256": hashlib.sha256}


def file_digest(path: Path, algorithm: str = "blake2b") -> str:
    """Hex digest of the file's bytes; an unreadable file is the user's, named in one line."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, ALGORITHMS[algorithm]).hexdigest()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read file ({exc.strerror}); check the dataset folder") from exc


def stat_input(path: Path | str) -> os.stat_result:
    """``os.stat`` of a dataset file; a file that cannot be read is bad input naming it."""
    try:
        return os.stat(path)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read file ({exc.strerror}); check the dataset folder") from exc


class DigestMemo:
    """path -> [size, mtime_ns, ctime_ns, inode, digest], loaded from and saved to one JSON file."""

    def __init__(self, path: Path, algorithm: str = "blake2b") -> None:
        self.path = Path(path)
        self.algorithm = algorithm
        self.entries: dict[str, list] = {}
        self.hashed = 0  # files read this run (the rest came from the memo)
        self._dirty = False
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # missing, not UTF-8, not JSON: start over
            return
        same = isinstance(doc, dict) and doc.get("format") == MEMO_FORMAT
        same = same and doc.get("algorithm", "blake2b") == algorithm
        files = doc.get("files") if same else None
        if isinstance(files, dict):
            self.entries = {k: v for k, v in files.items() if _valid(v)}

    def digest(self, path: Path) -> str:
        """The digest of ``path``, hashed only when its stat changed since it was last hashed."""
        st = stat_input(path)
        key = os.path.abspath(path)
        stat = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        known = self.entries.get(key)
        if known is not None and known[:4] == stat:
            return known[4]
        digest = file_digest(path, self.algorithm)
        self.entries[key] = [*stat, digest]
        self.hashed += 1
        self._dirty = True
        return digest

    def save(self) -> None:
        """Write the memo atomically when it changed; a failed write only costs re-hashing later."""
        if not self._dirty:
            return
        doc = {"format": MEMO_FORMAT, "algorithm": self.algorithm, "files": self.entries}
        try:
            write_json_atomic(self.path, doc, indent=None)
            self._dirty = False
        except OSError:
            pass


def _valid(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 5
        and all(type(v) is int and v >= 0 for v in entry[:4])
        and isinstance(entry[4], str)
        and len(entry[4]) == 2 * DIGEST_BYTES
        and all(c in "0123456789abcdef" for c in entry[4])
    )
