"""The per-frame hand-motion feature of one sequence, computed from its stored hand boxes.

Hands are first given persistent slots by ``models.tracking.track_hands`` (the one hand matching), so
"hand 0" is the same hand for the whole sequence whatever order the detector listed them in. Per slot and
frame the feature holds the box centre, its size, the centre's velocity and the detector's confidence, all
in fractions of the frame. A hand that was not seen is not a hand at (0, 0): the mask says which slots are
present and where a velocity exists (the slot seen in this frame and the one before), and the head uses it.
"""

from __future__ import annotations

import numpy as np

from models.tracking import BOX_COLUMNS, centres, track_hands

SLOTS = 2  # hands tracked per sequence
FEATURES = ("cx", "cy", "w", "h", "vx", "vy", "confidence")  # hand_motion's last axis
MASKS = ("present", "moving")  # hand_mask's last axis: slot seen; slot seen here and in the frame before
VELOCITY = slice(4, 6)  # the columns of FEATURES that need "moving"


def as_detections(boxes: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (T, K, C>=4) with C < 6 (annotations carry no confidence) padded to the detector's 6 columns,
    confidence 1; rows past ``count`` (T,) zeroed, so nothing beyond the count can reach the feature."""
    t_len, k, cols = boxes.shape
    out = np.zeros((t_len, k, BOX_COLUMNS), np.float32)
    out[..., : min(cols, BOX_COLUMNS)] = boxes[..., :BOX_COLUMNS]
    if cols < 5:
        out[..., 4] = 1.0
    n = np.clip(np.asarray(count, np.int64).reshape(t_len), 0, k)
    out[np.arange(k)[None, :] >= n[:, None]] = 0.0
    return out, n


def hand_motion(
    boxes: np.ndarray, count: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """boxes (T, K, C) and count (T,) of one sequence -> motion (T, SLOTS, 7) float32, mask (T, SLOTS, 2).

    ``valid`` (T,) marks real frames; a repeated frame (0) of a short video shows no hand, so it neither
    counts as a sighting nor breaks a track. Masked entries of ``motion`` are 0, but the mask decides.
    """
    dets, n = as_detections(np.asarray(boxes, np.float32), count)
    if valid is not None:
        n = np.where(np.asarray(valid, bool), n, 0)
    tracked, present = track_hands(dets, n, slots=SLOTS)  # (T, S, 6), (T, S)
    c = centres(tracked)  # (T, S, 2)
    size = tracked[..., 2:4] - tracked[..., 0:2]  # (T, S, 2)
    velocity = np.zeros_like(c)
    moving = np.zeros_like(present)
    moving[1:] = present[1:] & present[:-1]
    velocity[1:] = np.where(moving[1:, :, None], c[1:] - c[:-1], 0.0)
    motion = np.concatenate([c, size, velocity, tracked[..., 4:5]], axis=-1)  # (T, S, 7)
    motion[~present] = 0.0
    mask = np.stack([present, moving], axis=-1)  # (T, S, 2)
    return motion.astype(np.float32), mask.astype(np.float32)
