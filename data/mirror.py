"""Left-right mirroring of what a sample carries besides its pixels, for augmented copies that were flipped.

Augmentation flips a copy's frames (data/augment.py); hand boxes and landmarks a corpus annotates, or that
were imported from ``.npz`` files, describe the original frames. Stored unmirrored beside flipped pixels
they would point at the wrong side of the image, and after a flip swap (``swipe_left`` learnt as
``swipe_right``) describe the opposite motion. All coordinates here are normalised to the frame, so the
copy's resize leaves them as they are; its distortions are followed afterwards by data/warp.py.
Absent entries (padding, invalid hands) stay exactly as they were.
"""

from __future__ import annotations

import numpy as np

# MediaPipe's pose landmarks: each index -> its mirror image (left_eye_inner 1 <-> right_eye_inner 4, ...).
POSE_MIRROR = np.array(
    [0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23, 26, 25, 28, 27]
    + [30, 29, 32, 31]
)


def mirror_points(points: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(K, P, C) points with x in channel 0 and validity per hand (K,) or per point (K, P) -> x becomes
    1 - x where valid."""
    out = points.copy()
    mask = np.broadcast_to(np.asarray(valid).astype(bool).reshape(len(points), -1), points.shape[:2])
    out[..., 0] = np.where(mask, 1.0 - points[..., 0], points[..., 0])
    return out


def mirror_boxes(boxes: np.ndarray, count: int) -> np.ndarray:
    """(K, 4) normalised x1, y1, x2, y2, the first ``count`` real -> mirrored, still x1 <= x2."""
    out = boxes.copy()
    out[:count, 0], out[:count, 2] = 1.0 - boxes[:count, 2], 1.0 - boxes[:count, 0]
    return out


def mirror_hands(points: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hands in (left, right) slots, (2, 21, C) and (2,) -> mirrored: x flipped, and the slots swapped,
    because a mirrored left hand is seen (and detected) as a right one."""
    return mirror_points(points, valid)[::-1].copy(), np.asarray(valid)[::-1].copy()


def mirror_pose(pose: np.ndarray, valid: bool) -> np.ndarray:
    """(33, C) MediaPipe pose -> mirrored: x flipped, each left landmark swapped with its right one."""
    if not valid:
        return pose.copy()
    return mirror_points(pose[None], np.ones(1, bool))[0][POSE_MIRROR]
