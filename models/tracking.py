"""Hand tracking over a sequence of per-frame detections: the one matching every hand consumer shares.

YOLO returns the hands of each frame in confidence order, so "box 0" may be the left hand in one frame and
the right one in the next. Everything that reads hands across time (the hand-motion head stream, the box
interpolation of ``--hands-every K``) goes through ``track_hands`` instead, which gives each hand a slot
that keeps it for the whole sequence: nearest predicted centre with a gate, solved as an assignment per
frame. The prediction carries each hand on at the velocity it was last seen moving, so a swipe that
crosses more than the gate between two frames stays with its hand: gestures are fast, and at Jester's
12 frames/s a hand can cross a third of the frame from one frame to the next.

The result depends only on the set of boxes in each frame, never on their order within the frame.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

BOX_COLUMNS = 6  # x1 y1 x2 y2 (normalised to the frame), confidence, class
# Where a cache keeps hand boxes and their per-frame count: the detector's, else a corpus' own annotated
# boxes (the demo's generator boxes, HaGRID's), for caches extracted with --encoders hands=none.
BOX_SOURCES = (("hand_boxes", "hand_count"), ("annotated_boxes", "annotated_count"))


def centres(boxes: np.ndarray) -> np.ndarray:
    """(..., >=4) x1 y1 x2 y2 -> (..., 2) box centres."""
    return np.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], axis=-1)


def track_hands(
    boxes: np.ndarray,
    count: np.ndarray,
    slots: int = 2,
    gate: float = 0.25,
    max_gap: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Assign each frame's detections to ``slots`` persistent hand tracks.

    boxes (T, K, C>=4) with rows past ``count`` (T,) ignored. Each track predicts its centre at constant
    velocity from its last two sightings (a new track stands still), clipped to the frame. A detection
    continues the track whose predicted centre is nearest, if within ``gate`` (a fraction of the frame);
    a track unseen for more than ``max_gap`` frames is free again. Unmatched detections start tracks in
    free slots, highest confidence first, and when several start at once the leftmost takes the lowest
    slot, so the order YOLO listed them in never matters. Returns tracked (T, slots, C) boxes (zero where
    absent) and present (T, slots).
    """
    t_len, _, cols = boxes.shape
    tracked = np.zeros((t_len, slots, cols), dtype=boxes.dtype)
    present = np.zeros((t_len, slots), dtype=bool)
    last = np.zeros((slots, 2))  # last seen centre per slot
    velocity = np.zeros((slots, 2))  # centre motion per frame between the slot's last two sightings
    age = np.full(slots, max_gap + 1)  # frames since the slot was last seen, less one; > max_gap: free
    for t in range(t_len):
        n = int(min(count[t], boxes.shape[1]))
        dets = boxes[t, :n]
        taken = np.zeros(n, dtype=bool)
        live = np.flatnonzero(age <= max_gap)
        continued = np.zeros(slots, dtype=bool)
        predicted = np.clip(last + velocity * (age + 1)[:, None], 0.0, 1.0)  # (slots, 2)
        if n and live.size:
            cost = np.linalg.norm(predicted[live, None, :] - centres(dets)[None, :, :], axis=-1)  # (live, n)
            rows, cols_ = linear_sum_assignment(cost)
            for r, c in zip(rows, cols_, strict=True):
                if cost[r, c] <= gate:
                    slot = live[r]
                    tracked[t, slot], present[t, slot], taken[c] = dets[c], True, True
                    continued[slot] = True
        free = [s for s in range(slots) if age[s] > max_gap and not present[t, s]]
        rest = [i for i in np.argsort(-dets[:, 4], kind="stable") if not taken[i]] if n and cols > 4 else []
        starters = sorted(rest[: len(free)], key=lambda i: (centres(dets[i])[0], centres(dets[i])[1]))
        for slot, i in zip(free, starters, strict=False):
            tracked[t, slot], present[t, slot] = dets[i], True
        seen = present[t]
        now = centres(tracked[t, seen])  # (seen, 2)
        steps = (age[seen] + 1)[:, None]
        velocity[seen] = np.where(continued[seen][:, None], (now - last[seen]) / steps, 0.0)
        last[seen] = now
        age += 1
        age[seen] = 0
    return tracked, present


def interpolate_tracks(
    tracked: np.ndarray, present: np.ndarray, keyframes: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Fill the frames between detected keyframes by linear interpolation of each tracked box.

    tracked (T, S, C) and present (T, S) hold detections on ``keyframes`` (sorted frame positions) only.
    A slot present at two consecutive keyframes is interpolated between them (coordinates and confidence;
    the class is carried from the earlier one); a slot missing at either end stays absent in between.
    Returns filled (T, S, C), present (T, S) and detected (T, S): True where the box came from the detector.
    """
    filled, has = tracked.copy(), present.copy()
    detected = np.zeros_like(present)
    detected[keyframes] = present[keyframes]
    for a, b in zip(keyframes[:-1], keyframes[1:], strict=True):
        if b - a < 2:
            continue
        both = present[a] & present[b]  # (S,)
        w = ((np.arange(a + 1, b) - a) / (b - a))[:, None, None]  # (b-a-1, 1, 1)
        mix = (1 - w) * tracked[a] + w * tracked[b]  # (b-a-1, S, C)
        mix[..., 5:] = tracked[a, :, 5:]
        filled[a + 1 : b][:, both] = mix[:, both]
        has[a + 1 : b][:, both] = True
    return filled, has, detected


def keyframe_positions(length: int, every: int) -> np.ndarray:
    """Positions 0, K, 2K, ... of a ``length``-frame sequence, plus its last frame: where a detector runs."""
    keys = np.arange(0, length, max(1, every))
    return keys if length == 0 or keys[-1] == length - 1 else np.append(keys, length - 1)


def fill_from_keyframes(
    boxes: np.ndarray, count: np.ndarray, keys: np.ndarray, gate: float = 0.25, max_gap: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detector-format boxes on every frame of one sequence from detections on its ``keys`` only.

    boxes (T, K, C) and count (T,) are read on the keyframes only, in the detector's format (rows in
    confidence order, zero past the count). The keyframes' detections are tracked across keyframes
    (``track_hands`` with the gate and the gap scaled by the keyframe spacing, since a hand moves K
    frames' worth between two of them) and interpolated (``interpolate_tracks``). Keyframes keep their
    detections untouched; a frame between gets its interpolated boxes, most confident first.
    Returns boxes (T, K, C), count (T,) and detected (T, K): True for a row the detector produced.
    """
    t_len, k, cols = boxes.shape
    step = int(np.diff(keys).max()) if len(keys) > 1 else 1
    key_tracks, key_present = track_hands(
        boxes[keys], count[keys], slots=k, gate=gate * step, max_gap=max(1, max_gap // step)
    )
    tracked = np.zeros((t_len, k, cols), dtype=boxes.dtype)
    present = np.zeros((t_len, k), dtype=bool)
    tracked[keys], present[keys] = key_tracks, key_present
    filled, has, _ = interpolate_tracks(tracked, present, keys)
    out_boxes, out_count = np.zeros_like(boxes), np.zeros_like(count)
    detected = np.zeros((t_len, k), dtype=bool)
    is_key = np.zeros(t_len, dtype=bool)
    is_key[keys] = True
    for t in range(t_len):
        if is_key[t]:
            n = int(min(count[t], k))
            out_boxes[t, :n], out_count[t], detected[t, :n] = boxes[t, :n], n, True
            continue
        rows = filled[t, has[t]]  # (n, C)
        if cols > 4:
            rows = rows[np.argsort(-rows[:, 4], kind="stable")]
        out_boxes[t, : len(rows)], out_count[t] = rows, len(rows)
    return out_boxes, out_count, detected
