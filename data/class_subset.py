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
    absent: list[str] = []
    if isinstance(wanted, int):
        order = dataset.ranking or tuple(dataset.classes)
        if wanted > len(order):
            raise UserError(f"--classes {wanted}: {dataset.root} has {len(order)} classes; ask for fewer")
        chosen = set(order[:wanted]) & set(dataset.classes)
        absent = [name for name in order[:wanted] if name not in chosen]
        if not chosen:
            raise UserError(
                f"--classes {wanted}: none of the first {wanted} classes of {dataset.root} has a sample"
            )
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
        f"classes: {len(classes)} of {len(dataset.ranking or dataset.classes)} (--classes {spec}), "
        f"{len(videos)} of {len(dataset.videos)} samples"
    )
    if absent:
        shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
        note += f"; {len(absent)} of them have no sample here and are left out: {shown}"
    return replace(dataset, classes=classes, videos=videos, notes=[*dataset.notes, note])
