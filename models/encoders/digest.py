"""sha256 of weight files, computed once per file version and remembered across runs.

A weight file is hundreds of MB, and its digest is part of every cache key that uses it, so hashing it on
every ``extract`` would cost seconds each time. The digests are memoised by path and stat with the same
memo that content fingerprints use (core/digests.py), in the user cache folder
(``$XDG_CACHE_HOME/gesture-cache/weights-sha256.json``, or ``GESTURE_DIGEST_MEMO``).
"""

from __future__ import annotations

import os
from pathlib import Path

from core.digests import DigestMemo


def memo_path() -> Path:
    """Where digests are remembered (read at call time, so tests and users can redirect it)."""
    if os.environ.get("GESTURE_DIGEST_MEMO"):
        return Path(os.environ["GESTURE_DIGEST_MEMO"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "gesture-cache" / "weights-sha256.json"


def file_sha256(path: Path) -> str:
    """sha256 hex of ``path``, read from disk only when this file version was never hashed."""
    memo = DigestMemo(memo_path(), algorithm="sha256")
    digest = memo.digest(Path(path).resolve())
    memo.save()
    return digest
