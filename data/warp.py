"""Where an augmented copy's distortion moved a point, for what a sample carries besides its pixels.

Optical and grid distortion (data/augment.py) move a copy's pixels by up to 4 % and 7.5 % of the frame
(measured over 400 seeds; medians 2.3 % and 3.6 %), about half of all augmented copies. Boxes and
landmarks a corpus annotates, or that were imported from ``.npz`` files, describe the original frame:
data/mirror.py mirrors them for a flipped copy, and this module then moves them as the distortion moved
the pixels under them, so a stored box still encloses the hand the copy's pixels show.

A distortion is OpenCV remap maps: output pixel (row i, column j) samples the input at
``(map_x[i, j], map_y[i, j])``, pixel centres at integer coordinates. That is the map backwards; a point p
moves to the q where the map gives p. For distortions this mild the map is close to the identity, so
q = p - d(q), with d the map's displacement, is a contraction: a few steps solve it to well under a pixel.
Albumentations' own keypoint remapping rounds to whole pixels, hence this. Beyond the frame the
displacement is taken as at the nearest edge pixel. Coordinates here are normalised to the frame (0 the
left or top edge, 1 the right or bottom), as the annotations are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import map_coordinates

_STEPS = 30  # fixed-point steps at most; distortions within the recipe's limits settle in under ten
_TOLERANCE = 1e-4  # pixels
_EDGE_POINTS = 9  # points per box edge: a box moves to the extent of its moved outline


@dataclass(frozen=True)
class Warp:
    """One copy's distortion as the displacement of its remap maps, (S, S) float32 each, in pixels."""

    shift_x: np.ndarray  # map_x - column
    shift_y: np.ndarray  # map_y - row

    @classmethod
    def from_maps(cls, map_x: np.ndarray, map_y: np.ndarray) -> Warp:
        rows, cols = np.indices(map_x.shape, np.float32)  # (S, S) each
        return cls(np.asarray(map_x, np.float32) - cols, np.asarray(map_y, np.float32) - rows)

    def points(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) normalised x, y on the undistorted frame -> where they lie on the distorted one."""
        h, w = self.shift_x.shape
        shape = np.shape(xy)
        p = np.asarray(xy, np.float64).reshape(-1, 2) * (w, h) - 0.5  # (M, 2) pixel coordinates
        q = p.copy()
        for _ in range(_STEPS):
            rows = np.clip(q[:, 1], 0, h - 1)
            cols = np.clip(q[:, 0], 0, w - 1)
            d = np.stack(
                [
                    map_coordinates(s, [rows, cols], order=1, mode="nearest")
                    for s in (self.shift_x, self.shift_y)
                ],
                -1,
            )  # (M, 2)
            q, last = p - d, q
            if np.abs(q - last).max(initial=0) < _TOLERANCE:
                break
        return ((q + 0.5) / (w, h)).reshape(shape).astype(np.asarray(xy).dtype)


def warp_points(points: np.ndarray, valid: np.ndarray, warp: Warp) -> np.ndarray:
    """(K, P, C) points with x, y in channels 0 and 1 and validity per hand (K,) or per point (K, P) ->
    moved where valid; other channels (depth) and absent points stay as they were."""
    out = points.copy()
    mask = np.broadcast_to(np.asarray(valid).astype(bool).reshape(len(points), -1), points.shape[:2])
    out[mask, :2] = warp.points(points[mask, :2])
    return out


def warp_boxes(boxes: np.ndarray, count: int, warp: Warp) -> np.ndarray:
    """(K, 4) normalised x1, y1, x2, y2, the first ``count`` real -> each the extent of its moved outline,
    clipped to the frame (what the distortion pushed out of the frame is not in the copy)."""
    out = boxes.copy()
    t = np.linspace(0.0, 1.0, _EDGE_POINTS)
    for k in range(count):
        x1, y1, x2, y2 = (float(v) for v in boxes[k])
        xs, ys = x1 + (x2 - x1) * t, y1 + (y2 - y1) * t
        outline = np.concatenate(
            [
                np.stack([xs, np.full_like(xs, y1)], -1),
                np.stack([xs, np.full_like(xs, y2)], -1),
                np.stack([np.full_like(ys, x1), ys], -1),
                np.stack([np.full_like(ys, x2), ys], -1),
            ]
        )  # (4 * E, 2)
        moved = np.clip(warp.points(outline), 0.0, 1.0)
        out[k] = (*moved.min(0), *moved.max(0))
    return out
