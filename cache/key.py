"""The extraction key: one short hash of everything that changes how a sequence becomes bytes.

Two runs with the same key produce byte-compatible sequences, so they share one cache
directory. The dataset path and split ratios are deliberately *not* part of it: changing
them must reuse every stored sequence (DESIGN §5).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

KEY_CHARS = 16


def _jsonable(value: Any) -> Any:
    """JSON fallback for the few non-JSON types a spec may hold; anything else is a bug."""
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"extraction key spec holds a {type(value).__name__}, which has no stable JSON form")


def canonical_json(spec: dict[str, Any]) -> str:
    """Key order, whitespace and tuple-vs-list never change the text, so never change the key."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_jsonable)


def extraction_key(spec: dict[str, Any]) -> str:
    """16 hex chars of sha256 over the canonical JSON of ``spec``.

    The caller passes everything that changes the stored bytes: sampling T and strategy,
    image size, augmentation recipe and seed, encoder identities, crop mode, float dtype
    and schema version.
    """
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()[:KEY_CHARS]
