"""HaGRID's annotated hand landmarks in the landmarks stream's slots (slot 0 the left hand, slot 1 the right).

HaGRID names no handedness per box. What the corpus publishes instead: ``labels``, one per box, where the
hand showing the gesture carries the gesture's name and a second, free hand ``no_gesture``; and
``leading_hand`` (``"left"`` or ``"right"``), the hand showing the gesture, in the annotations that ship
it (HaGRID's). When an image has ``leading_hand`` and exactly one box labelled other than ``no_gesture``,
that box's hand goes to the ``leading_hand`` slot and the other hand to the other slot.

Otherwise the annotation cannot decide it: HaGRIDv2's published annotations carry no ``leading_hand``, and
its two-handed gestures label both boxes with the gesture. Then the hands are ordered by x, as the
12-channel hand views order the detector's boxes (extract/crops.py): of two hands, the one whose points lie
further left in the image (smaller mean x) takes slot 0; a single hand takes the slot of the image half it
is in. That is the image's left, not the subject's: for a person facing an unmirrored camera, slot 0 then
holds their right hand. Which of the two rules placed an image's hands is not stored.

Points (HaGRIDv2's ``hand_landmarks``, HaGRID v1's ``landmarks``) are the normalised x, y; the third
channel is 0, as for imported ``.npz`` files with C = 2. A hand counts only with all 21 points annotated;
at most two hands are kept (the gesturing ones first).

Each image's annotation is kept on its sample from the plan to the end of an extraction, ~1M of them for
HaGRIDv2, so ``NotesPacker`` stores it as a ``HagridNotes``: its numbers in one float64 buffer, its names as
shared strings, about a sixth of the parsed lists' memory (bench/plan_hagrid.py). It reads back as the
parsed lists, so ``annotation_arrays`` (hagrid.py) and ``hand_slots`` give what they gave, to the byte.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import Any

import numpy as np

POINTS = 21  # MediaPipe hand layout
SLOTS = ("left", "right")  # the landmarks stream's slot order (models/landmarker.py)
FREE = "no_gesture"  # HaGRID's label of a hand that shows no gesture
ROWS, HANDS = 0, 1  # packed kinds: a list of float rows (or null), a list of hands of [x, y] points
PACKED = {"bboxes": ROWS, "united_bbox": ROWS, "hand_landmarks": HANDS, "landmarks": HANDS}
# (the fields in their parsed order, ((packed field, kind, its items' lengths: -1 for null), ...))
Layout = tuple[tuple[str, ...], tuple[tuple[str, int, tuple[int, ...]], ...]]


class _Names(tuple):
    """A parsed list of names (``labels``, ``united_label``), as one tuple that every image with the same
    names shares; read back as a list. A subclass, so no other tuple is taken for one."""

    __slots__ = ()


class HagridNotes(Mapping):
    """One image's parsed annotation, compact: the float lists (``bboxes``, ``united_bbox``, the landmarks)
    packed in one float64 buffer, the other fields kept as parsed, with names shared between images.

    Read as a mapping it gives back exactly the parsed entry (same keys, order, lists and floats), so its
    readers are those of a parsed dict, and cache/fingerprint.py keys it by that same dict: every cache key
    stays as it was. Read-only, as a sample's annotation is part of its key.
    """

    __slots__ = ("_kept", "_blob", "_layout")

    def __init__(self, kept: dict[str, Any], blob: bytes, layout: Layout) -> None:
        self._kept = kept  # the fields kept as parsed (a name list as its shared tuple)
        self._blob = blob  # float64 of the packed fields, in layout order
        self._layout = layout

    def packed(self, key: str) -> list[np.ndarray | None] | None:
        """A packed field's items as float64 views: a row (n,) or None for a null (ROWS), a hand (k, 2)
        (HANDS); None when the field is not packed (absent, or kept as parsed)."""
        offset = 0
        for name, kind, lengths in self._layout[1]:
            width = 2 if kind == HANDS else 1
            size = width * sum(n for n in lengths if n > 0)
            if name != key:
                offset += size
                continue
            values = np.frombuffer(self._blob, np.float64, count=size, offset=8 * offset)  # (size,)
            items: list[np.ndarray | None] = []
            for n in lengths:
                items.append(None if n < 0 else values[: n * width].reshape((n, 2) if width == 2 else (n,)))
                values = values[max(n, 0) * width :]
            return items
        return None

    def __getitem__(self, key: str) -> Any:
        if key in self._kept:
            value = self._kept[key]
            return list(value) if type(value) is _Names else value
        items = self.packed(key)
        if items is None:
            raise KeyError(key)
        return [None if item is None else item.tolist() for item in items]

    def __contains__(self, key: object) -> bool:
        return key in self._layout[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout[0])

    def __len__(self) -> int:
        return len(self._layout[0])

    def __repr__(self) -> str:
        return f"HagridNotes({dict(self)!r})"


def _floats(value: Any, kind: int) -> tuple[tuple[int, ...], list[float]] | None:
    """(each item's length, the floats in order) of a field that packs without loss: only lists and
    floats (ROWS: items null or lists of floats; HANDS: hands of [x, y] float pairs); else None, and the
    field is kept as parsed (an int, a bool, a null point or a 3-number point would not come back)."""
    if type(value) is not list:
        return None
    if kind == ROWS:
        rows = [row for row in value if row is not None]
        if not {type(row) for row in rows} <= {list}:
            return None
        flat = list(chain.from_iterable(rows))
        lengths = tuple(-1 if row is None else len(row) for row in value)
    else:
        if not set(map(type, value)) <= {list}:
            return None
        points = list(chain.from_iterable(value))
        if not set(map(type, points)) <= {list} or not set(map(len, points)) <= {2}:
            return None
        flat = list(chain.from_iterable(points))
        lengths = tuple(map(len, value))
    return (lengths, flat) if set(map(type, flat)) <= {float} else None


class NotesPacker:
    """Packs the annotations of one parse into ``HagridNotes``, sharing what repeats between images (the
    layouts, the label lists); strings are interned."""

    def __init__(self) -> None:
        self._shared: dict[Any, Any] = {}

    def _share(self, value: Any) -> Any:
        return self._shared.setdefault((type(value), value), value)  # () and _Names(()) are equal

    def _keep(self, value: Any) -> Any:
        if type(value) is str:
            return sys.intern(value)
        if type(value) is list and all(type(v) is str for v in value):
            return self._share(_Names(map(sys.intern, value)))
        return value

    def pack(self, entry: Mapping[str, Any], fields: Iterable[str]) -> HagridNotes:
        """The ``fields`` of one parsed entry that it has, in that order."""
        keys = tuple(key for key in fields if key in entry)
        kept: dict[str, Any] = {}
        floats: list[float] = []
        specs = []
        for key in keys:
            found = _floats(entry[key], PACKED[key]) if key in PACKED else None
            if found is None:
                kept[key] = self._keep(entry[key])
                continue
            specs.append((key, PACKED[key], self._share(found[0])))
            floats.extend(found[1])
        layout = self._share((keys, tuple(specs)))
        return HagridNotes(kept, array("d", floats).tobytes(), layout)


def landmark_lists(entry: Mapping[str, Any]) -> Any:
    """The annotation's per-hand point lists: HaGRIDv2 names them ``hand_landmarks``, HaGRID (v1)
    ``landmarks``; either may be missing, or hold ``[]`` for a hand without points."""
    marks = entry.get("hand_landmarks")
    return entry.get("landmarks") if marks is None else marks


def _points(hand: Any) -> np.ndarray | None:
    """One annotated hand -> (21, 2) float32, or None unless it is 21 finite [x, y] pairs."""
    if not isinstance(hand, list) or len(hand) != POINTS:
        return None
    try:
        points = np.asarray(hand, np.float64)
    except (TypeError, ValueError):
        return None
    if points.shape != (POINTS, 2) or not np.isfinite(points).all():
        return None
    return points.astype(np.float32)


def hand_slots(entry: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """One image's annotation -> points (2, 21, 3) float32 (x, y, 0) and valid (2,) uint8, in slot order."""
    points = np.zeros((len(SLOTS), POINTS, 3), np.float32)  # (2, 21, 3)
    valid = np.zeros(len(SLOTS), np.uint8)  # (2,)
    entry = entry or {}
    labels = list(entry.get("labels") or [])
    marks = list(landmark_lists(entry) or [])
    hands = {i: p for i, p in enumerate(_points(h) for h in marks) if p is not None}  # box index -> (21, 2)
    gesturing = [i for i, label in enumerate(labels) if label != FREE]
    leading = entry.get("leading_hand")
    if leading in SLOTS and len(gesturing) == 1:
        lead = SLOTS.index(leading)
        others = [i for i in hands if i != gesturing[0]]
        placed = {lead: hands.get(gesturing[0]), 1 - lead: hands[others[0]] if others else None}
    else:
        kept = sorted(hands, key=lambda i: (i not in gesturing, i))[: len(SLOTS)]
        by_x = sorted(kept, key=lambda i: float(hands[i][:, 0].mean()))
        if len(by_x) == 2:
            placed = {0: hands[by_x[0]], 1: hands[by_x[1]]}
        elif by_x:
            placed = {int(hands[by_x[0]][:, 0].mean() >= 0.5): hands[by_x[0]]}
        else:
            placed = {}
    for slot, hand in placed.items():
        if hand is not None:
            points[slot, :, :2] = hand
            valid[slot] = 1
    return points, valid
