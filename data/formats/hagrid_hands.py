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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

POINTS = 21  # MediaPipe hand layout
SLOTS = ("left", "right")  # the landmarks stream's slot order (models/landmarker.py)
FREE = "no_gesture"  # HaGRID's label of a hand that shows no gesture


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
