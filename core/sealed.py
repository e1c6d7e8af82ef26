"""Pickles only this user can have written: an HMAC with a per-user secret kept outside any cache.

Memos (folder listings, parsed corpora) live inside a cache folder, which a user may copy from a
colleague; unpickling a file someone else wrote would run their code. A sealed pickle carries an
HMAC-SHA256 keyed by a secret in the user's own cache folder (``$XDG_CACHE_HOME/gesture-cache/seal.key``,
mode 0600), so a memo written by anyone else simply fails to open and is rebuilt.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import os
import pickle
import secrets
from pathlib import Path
from typing import Any

_TAG = 32  # bytes of HMAC-SHA256


def _key() -> bytes:
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(xdg) / "gesture-cache" / "seal.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    except FileExistsError:
        pass
    return path.read_bytes()


def seal(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return hmac.new(_key(), data, hashlib.sha256).digest() + data


FREEZE_BYTES = 1 << 20  # memos above this are frozen after loading (see unseal)


def unseal(blob: bytes) -> Any | None:
    """The object, or None when the blob was not sealed by this user (or is damaged)."""
    tag, data = blob[:_TAG], blob[_TAG:]
    if len(tag) != _TAG or not hmac.compare_digest(tag, hmac.new(_key(), data, hashlib.sha256).digest()):
        return None
    # A memo of a corpus is hundreds of thousands of small objects: with the collector running, unpickling
    # it triggers collection after collection over everything alive, 4x the cost of the load itself.
    collecting = gc.isenabled()
    gc.disable()
    try:
        loaded = pickle.loads(data)  # noqa: S301 - authenticated above: only this user's own writes get here
    finally:
        if collecting:
            gc.enable()
    if len(data) >= FREEZE_BYTES:
        # A memo this size lives for the whole run: frozen, no later collection walks its objects again
        # (two walks of every object, ~12% of planning an unchanged corpus). The cost is that garbage
        # cycles alive at this moment are never freed, which a memo this size dwarfs.
        gc.freeze()
    return loaded
