"""Subjects per split of a cache, from the ``splits.json`` extraction writes beside the split files.

A subject (a person) in two splits means the model is validated or tested on someone it trained on.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

SPLITS = ("train", "val", "test")


def _recorded(key_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(video key -> split, video key -> subject) from splits.json; empty when unreadable or unknown."""
    try:
        payload = json.loads((Path(key_dir) / "splits.json").read_text(encoding="utf-8"))
        assignment, subjects = dict(payload["assignment"]), dict(payload.get("subjects") or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, {}
    return assignment, {str(k): str(v) for k, v in subjects.items()}


def recorded_subjects(key_dir: Path) -> dict[str, str]:
    """Video key (``<class>/<recording>[@a-b]``) -> subject, as the dataset format knew it."""
    return _recorded(key_dir)[1]


def subject_lines(key_dir: Path) -> list[str]:
    """'subjects: train=N val=N test=N', plus a WARNING line when a subject is in two splits; empty when
    the dataset's subjects are unknown."""
    assignment, subjects = _recorded(key_dir)
    if not subjects:
        return []
    splits_of: dict[str, set[str]] = defaultdict(set)
    for key, subject in subjects.items():
        if key in assignment:
            splits_of[str(subject)].add(assignment[key])
    counts = {s: sum(1 for splits in splits_of.values() if s in splits) for s in SPLITS}
    lines = ["subjects:   " + " ".join(f"{s}={counts[s]}" for s in SPLITS)]
    shared = sorted(subject for subject, splits in splits_of.items() if len(splits) > 1)
    if shared:
        examples = ", ".join(f"{s} ({'+'.join(sorted(splits_of[s]))})" for s in shared[:5])
        lines.append(
            f"WARNING:    {len(shared)} subject(s) in more than one split, e.g. {examples}; the scores "
            "flatter the model: re-extract with --split random (subject-disjoint) or --group-regex"
        )
    return lines
