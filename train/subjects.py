"""Which subject recorded each cached sequence: the one place cross-validation asks.

Today a cache knows subjects only through the ``--group-regex`` its extraction ran with (kept in
``manifest["config"]``): the regex over the video id names the subject, exactly as the split did.
When samples carry an explicit subject, point ``subjects_of`` at that field; folds need nothing else.
"""

from __future__ import annotations

from typing import Any

from cache.assemble import video_of
from data.discovery import compile_group_regex, group_of


def subjects_of(manifest: dict[str, Any], sequence_ids: list[str]) -> list[str] | None:
    """One subject per sequence, or None when the cache does not know subjects.

    A video the regex does not match is its own subject (as in data/splits.py), so it still
    never sits on both sides of a fold.
    """
    pattern = compile_group_regex((manifest.get("config") or {}).get("group_regex"))
    if pattern is None:
        return None
    return [group_of(video_id(s), pattern) for s in sequence_ids]


def video_id(sequence_id: str) -> str:
    """``<video_id>`` of ``<class>/<video_id>[#a<k>]``: augmented copies belong to their video."""
    return video_of(sequence_id).split("/", 1)[-1]
