"""``--classes``: extract a subset of a corpus's classes, as benchmarks are defined (WLASL100 is WLASL's
100 most frequent glosses, the first 100 of its index), without re-encoding what another subset stored."""

from __future__ import annotations

import difflib
from dataclasses import replace

from core.errors import UserError
from data.discovery import Dataset


def parse_classes(spec: str) -> int | tuple[str, ...]:
    """``N`` (the first N classes of the corpus's label order) or ``a,b,c`` (those classes by name)."""
    text = spec.strip()
    if text.isdigit():
        if int(text) < 1:
            raise UserError(f"--classes {spec}: give at least 1 class")
        return int(text)
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise UserError(f"--classes {spec!r}: give N (the first N classes) or class names joined by ','")
    return names


def select_classes(dataset: Dataset, spec: str, keep: tuple[str, ...] = ()) -> Dataset:
    """The samples of the chosen classes (plus ``keep``: the background label of windows), labelled
    densely in the corpus's order; a note says what was kept."""
    wanted = parse_classes(spec)
    if isinstance(wanted, int):
        if wanted > len(dataset.classes):
            raise UserError(
                f"--classes {wanted}: {dataset.root} has {len(dataset.classes)} classes with samples; "
                "ask for fewer"
            )
        chosen = set(dataset.classes[:wanted])
    else:
        unknown = [name for name in wanted if name not in dataset.classes]
        if unknown:
            near = difflib.get_close_matches(unknown[0], dataset.classes, n=3)
            hint = f" (nearest: {', '.join(near)})" if near else ""
            raise UserError(
                f"--classes: {', '.join(map(repr, unknown))} not a class of {dataset.root}{hint}; "
                "`cache info` or extract's split line lists them"
            )
        chosen = set(wanted)
    chosen |= set(keep) & set(dataset.classes)
    classes = [name for name in dataset.classes if name in chosen]
    label_of = {name: index for index, name in enumerate(classes)}
    videos = [replace(v, label=label_of[v.class_name]) for v in dataset.videos if v.class_name in chosen]
    note = (
        f"classes: {len(classes)} of {len(dataset.classes)} (--classes {spec}), "
        f"{len(videos)} of {len(dataset.videos)} samples"
    )
    return replace(dataset, classes=classes, videos=videos, notes=[*dataset.notes, note])
