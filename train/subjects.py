"""Which subject recorded each cached sequence: the one place cross-validation asks.

A cache knows subjects from its dataset format (recorded in ``splits.json`` beside the split files), or
through the ``--group-regex`` its extraction ran with (kept in ``manifest["config"]``), which names the
subject from the video id exactly as the split did. ``--group-regex`` wins, as it did for the split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cache.schema import video_of
from cache.subjects import recorded_subjects
from data.discovery import compile_group_regex, group_of


def subjects_of(cache_dir: Path, manifest: dict[str, Any], sequence_ids: list[str]) -> list[str] | None:
    """One subject per sequence, or None when the cache does not know subjects.

    A video the regex does not match (or whose format named no subject) is its own subject (as in
    data/splits.py), so it still never sits on both sides of a fold.
    """
    pattern = compile_group_regex((manifest.get("config") or {}).get("group_regex"))
    if pattern is not None:
        return [group_of(video_id(s), pattern) for s in sequence_ids]
    recorded = recorded_subjects(cache_dir)
    if not recorded:
        return None
    return [recorded.get(video_of(s), video_of(s)) for s in sequence_ids]


def video_id(sequence_id: str) -> str:
    """``<video_id>`` of ``<class>/<video_id>[#a<k>]``: augmented copies belong to their video."""
    return video_of(sequence_id).split("/", 1)[-1]
