"""sha256 of weight files, computed once per file version and remembered across runs.

A weight file is hundreds of MB, and its digest is part of every cache key that uses it, so hashing it on
every ``extract`` would cost seconds each time. The memo maps a file's absolute path to its size, mtime_ns
and digest; a file whose size or mtime changed is hashed again. The memo lives in the user cache folder
(``$XDG_CACHE_HOME/gesture-cache/weights-sha256.json``, or ``GESTURE_DIGEST_MEMO``) and is rewritten
atomically (core/atomic.py), so a crash never leaves a damaged memo.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from core.atomic import write_json_atomic

_CHUNK = 1 << 20


def memo_path() -> Path:
    """Where digests are remembered (read at call time, so tests and users can redirect it)."""
    if os.environ.get("GESTURE_DIGEST_MEMO"):
        return Path(os.environ["GESTURE_DIGEST_MEMO"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "gesture-cache" / "weights-sha256.json"


def _load(path: Path) -> dict[str, dict]:
    try:
        memo = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or damaged: start over, it is only a cache of digests
        return {}
    return memo if isinstance(memo, dict) else {}


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 hex of ``path``, read from disk only when this size and mtime were never hashed."""
    path = Path(path).resolve()
    st = path.stat()
    memo_file = memo_path()
    memo = _load(memo_file)
    entry = memo.get(str(path))
    if (
        isinstance(entry, dict)
        and entry.get("size") == st.st_size
        and entry.get("mtime_ns") == st.st_mtime_ns
    ):
        digest = entry.get("sha256")
        if isinstance(digest, str) and len(digest) == 64:
            return digest
    digest = _hash_file(path)
    memo[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    try:
        write_json_atomic(memo_file, memo, indent=1, sort_keys=True)
    except OSError:
        pass  # a read-only home still works: the digest is just computed again next time
    return digest
