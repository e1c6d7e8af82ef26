"""A distorted augmented copy carries its annotations moved as its pixels were, so a box still encloses the
hand the copy shows and a landmark still sits on its joint (data/warp.py)."""

from __future__ import annotations

import numpy as np
import pytest

from data.augment import AugmentResult, SequenceAugmenter
from data.mirror import mirror_boxes, mirror_points
from data.warp import warp_boxes, warp_points

S = 128  # the copies' size
H, W = 72, 120  # the source frames'


def _copy(frames: np.ndarray, distortion: str, flipped: bool) -> AugmentResult:
    """The first augmented copy that applied ``distortion`` strongly enough to see (some pixel moved 4 or
    more), flipped or not, and no motion blur: a blur kernel may be off centre, and would move the bright
    spots the tests measure by a pixel or two."""
    augmenter = SequenceAugmenter(S)
    for seed in range(400):
        result = augmenter.augment(frames, 0, seed)
        names = {name for name, _ in result.params[0]}
        if distortion in names and result.flipped == flipped and "MotionBlur" not in names:
            if max(np.abs(result.warp.shift_x).max(), np.abs(result.warp.shift_y).max()) >= 4:
                return result
    raise AssertionError(f"no seed in 400 applied {distortion} with flipped={flipped}")


def _centroid(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Normalised centre of the bright spot nearest to ``xy`` (normalised), by intensity above the
    background (brightness shifts and noise lift it to ~80 at most)."""
    gray = image.astype(np.float64).mean(-1)
    c, r = np.round(xy * S - 0.5).astype(int)
    r0, c0 = max(r - 7, 0), max(c - 7, 0)
    window = np.clip(gray[r0 : r + 8, c0 : c + 8] - 128, 0, None)
    rows, cols = np.indices(window.shape)
    total = window.sum()
    assert total > 0, f"no bright spot near {xy}"
    return np.array([(cols * window).sum() / total + c0 + 0.5, (rows * window).sum() / total + r0 + 0.5]) / S


@pytest.mark.parametrize("flipped", [False, True])
@pytest.mark.parametrize("distortion", ["OpticalDistortion", "GridDistortion"])
def test_moved_landmarks_sit_on_the_spots_the_distortion_moved(distortion, flipped):
    # A 6 x 5 lattice of 4-pixel spots over the whole frame, as landmarks of one "hand" of 30 points.
    xs, ys = np.linspace(0.1, 0.9, 6), np.linspace(0.1, 0.9, 5)
    frames = np.zeros((1, H, W, 3), np.uint8)
    points = []
    for y in ys:
        for x in xs:
            r, c = round(y * H), round(x * W)
            frames[0, r - 2 : r + 2, c - 2 : c + 2] = 255  # centred at pixel edge (c, r): x = c / W
            points.append((c / W, r / H, 0.5))
    marks = np.array([points], np.float32)  # (1, 30, 3): x, y, depth
    result = _copy(frames, distortion, flipped)
    placed = mirror_points(marks, np.ones(1, bool)) if flipped else marks
    moved = warp_points(placed, np.ones(1, bool), result.warp)

    seen = np.array([_centroid(result.frames[0], p) for p in moved[0, :, :2]])  # (30, 2)
    error = np.abs(seen - moved[0, :, :2]).max() * S  # pixels
    unmoved = np.abs(seen - placed[0, :, :2]).max() * S
    assert error < 1.0, f"moved landmarks are {error:.2f} px off their spots"
    assert unmoved > 2.0, f"the distortion moved the spots by only {unmoved:.2f} px: the test cannot tell"
    assert (moved[..., 2] == 0.5).all()  # depth is not a position on the frame


@pytest.mark.parametrize("distortion", ["OpticalDistortion", "GridDistortion"])
def test_a_moved_box_encloses_the_bright_hand_of_the_distorted_copy(distortion):
    frames = np.full((1, H, W, 3), 10, np.uint8)
    frames[0, 4:30, 6:44] = 250  # the "hand", near the top-left corner where distortions move most
    boxes = np.array([[6 / W, 4 / H, 44 / W, 30 / H], [0, 0, 0, 0]], np.float32)  # one real, one padding
    result = _copy(frames, distortion, flipped=False)
    rows, cols = np.nonzero(result.frames[0].mean(-1) > 130)
    seen = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]) / S  # the hand's extent

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
        return w * h / (area - w * h)

    moved = warp_boxes(boxes, 1, result.warp)
    assert iou(moved[0], seen) > 0.95 > iou(boxes[0], seen) + 0.02
    assert (moved[1] == 0).all()  # padding stays padding
    # Mirroring first, as a flipped copy does, and moving then: still the mirrored outline, moved.
    mirrored = warp_boxes(mirror_boxes(boxes, 1), 1, result.warp)
    assert mirrored[0, 0] > 0.5 and (mirrored[1] == 0).all()


def test_absent_points_and_clean_copies_are_left_as_they_are():
    frames = np.zeros((2, H, W, 3), np.uint8)
    assert SequenceAugmenter(S).augment(frames, 0, None).warp is None  # the clean copy: resize only
    result = _copy(frames, "GridDistortion", flipped=False)
    hands = np.zeros((2, 21, 3), np.float32)
    hands[0] = 0.4
    moved = warp_points(hands, np.array([1, 0], np.uint8), result.warp)
    assert (moved[1] == 0).all() and not np.allclose(moved[0, :, :2], 0.4)


@pytest.mark.parametrize("packed", [False, True], ids=["parsed", "packed"])
def test_hagrid_annotations_move_where_annotated_and_padding_stays_zero(packed):
    from types import SimpleNamespace

    from data.formats.hagrid import FIELDS, HaGRID
    from data.formats.hagrid_hands import NotesPacker

    hand = [[0.1 + 0.01 * (k % 5), 0.2 + 0.01 * (k // 5)] for k in range(21)]
    entry = {  # a whole hand and one annotated up to its 12th point
        "bboxes": [[0.05, 0.1, 0.3, 0.4], [0.6, 0.1, 0.2, 0.2]],
        "labels": ["like", "no_gesture"],
        "hand_landmarks": [hand, [[0.65 + x, y] for x, y in hand[:12]]],
    }
    notes = NotesPacker().pack(entry, FIELDS) if packed else entry  # as a parse keeps it, or as parsed
    arrays = HaGRID.annotation_arrays(SimpleNamespace(annotations=notes), 0)
    # Optical distortion moves the frame's corner too, so an unannotated (0, 0) point would move if warped.
    result = _copy(np.zeros((1, H, W, 3), np.uint8), "OpticalDistortion", flipped=False)
    moved = HaGRID.warp_annotations(arrays, result.warp)
    marks, before = moved["annotated_landmarks"], arrays["annotated_landmarks"]  # (K, 21, 2)
    assert (np.abs(marks[:2, :12] - before[:2, :12]) > 1e-4).any(-1).all()  # every annotated point moved
    assert (marks[1, 12:] == 0).all() and (marks[2:] == 0).all()  # unannotated points, padding hands
    assert (moved["annotated_boxes"][2:] == 0).all() and not np.allclose(moved["annotated_boxes"][:2], 0)
    assert moved["annotated_count"] == arrays["annotated_count"] == 2
