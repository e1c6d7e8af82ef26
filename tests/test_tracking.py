"""Hand tracking: slots follow hands across frames whatever order the detector lists them in."""

from __future__ import annotations

import numpy as np

from models.tracking import interpolate_tracks, track_hands


def _box(cx: float, cy: float, conf: float = 0.9, size: float = 0.1) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2, conf, 0.0]


def _two_hands(t_len: int, rng: np.random.Generator, shuffle: bool) -> tuple[np.ndarray, np.ndarray]:
    """A left hand moving right and a right hand moving left, never within the gate of each other."""
    boxes = np.zeros((t_len, 3, 6), dtype=np.float32)
    conf = 0.6 + 0.3 * rng.random((t_len, 2))
    flips = rng.random(t_len) < 0.5
    for t in range(t_len):
        rows = [_box(0.1 + 0.01 * t, 0.5, conf[t, 0]), _box(0.9 - 0.01 * t, 0.3, conf[t, 1])]
        if shuffle and flips[t]:
            rows = rows[::-1]
        boxes[t, :2] = rows
    return boxes, np.full(t_len, 2)


def test_slots_keep_their_hand_whatever_the_detection_order():
    ordered, count = _two_hands(20, np.random.default_rng(1), shuffle=False)
    shuffled, _ = _two_hands(20, np.random.default_rng(1), shuffle=True)
    a, pa = track_hands(ordered, count)
    b, pb = track_hands(shuffled, count)
    np.testing.assert_array_equal(a, b)
    assert pa.all() and pb.all()
    assert (a[:, 0, 1] == a[0, 0, 1]).all()  # slot 0 is the left hand (y = 0.5) throughout


def test_a_lost_hand_keeps_its_slot_across_a_short_gap_and_a_stranger_does_not_take_it():
    boxes = np.zeros((6, 2, 6), dtype=np.float32)
    count = np.array([2, 1, 1, 2, 2, 2])
    boxes[:, 0] = _box(0.2, 0.5)
    boxes[[0, 3, 4, 5], 1] = _box(0.8, 0.5)
    boxes[[1, 2], 0] = _box(0.8, 0.5)  # the left hand vanishes for two frames; only the right is seen
    boxes[[1, 2], 1] = 0
    tracked, present = track_hands(boxes, count)
    assert present[:, 1].all(), "the right hand kept slot 1 while the left one was missing"
    assert not present[1:3, 0].any() and present[3:, 0].all()
    np.testing.assert_allclose(tracked[3:, 0, 0], 0.15, atol=1e-6)


def test_a_far_jump_starts_a_new_track_instead_of_teleporting():
    boxes = np.zeros((2, 1, 6), dtype=np.float32)
    boxes[0, 0], boxes[1, 0] = _box(0.1, 0.1), _box(0.9, 0.9)
    _, present = track_hands(boxes, np.array([1, 1]), gate=0.25)
    assert present[0, 0] and not present[1, 0] and present[1, 1]


def test_straight_line_interpolation_is_exact_and_flags_what_was_detected():
    t_len, keys = 9, np.array([0, 4, 8])
    truth = np.array([_box(0.1 + 0.05 * t, 0.5) for t in range(t_len)], dtype=np.float64)[:, None, :]
    sparse, present = np.zeros_like(truth), np.zeros((t_len, 1), dtype=bool)
    sparse[keys], present[keys] = truth[keys], True
    filled, has, detected = interpolate_tracks(sparse, present, keys)
    np.testing.assert_allclose(filled, truth, atol=1e-9)
    assert has.all() and detected[:, 0].tolist() == [t in keys for t in range(t_len)]


def test_a_missed_keyframe_leaves_the_gap_empty():
    keys = np.array([0, 4, 8])
    sparse, present = np.zeros((9, 1, 6)), np.zeros((9, 1), dtype=bool)
    for t in (0, 8):
        sparse[t, 0], present[t, 0] = _box(0.5, 0.5), True
    _, has, _ = interpolate_tracks(sparse, present, keys)
    assert has[:, 0].tolist() == [t in (0, 8) for t in range(9)]


def test_a_swipe_faster_than_the_gate_keeps_its_slot_beside_a_still_hand():
    """A hand crossing 0.2 then 0.3 of the frame per frame (beyond the 0.25 gate from where it was), beside
    a hand that holds still: both stay in their slots on every frame, also across two missed frames."""
    t_len = 5
    swipe = [0.05, 0.25, 0.55, 0.85, 0.95]  # accelerating, then leaving the frame
    boxes = np.zeros((t_len, 2, 6), dtype=np.float32)
    count = np.full(t_len, 2)
    for t, x in enumerate(swipe):
        boxes[t, :2] = [_box(x, 0.2, 0.7), _box(0.5, 0.8, 0.9)]
    tracked, present = track_hands(boxes, count)
    assert present.all()
    np.testing.assert_allclose(tracked[:, 0, 0] + 0.05, swipe, atol=1e-6)  # slot 0: the swipe, leftmost
    np.testing.assert_allclose(tracked[:, 1, 1], 0.75, atol=1e-6)  # slot 1: the still hand


def test_a_fast_hand_missed_for_two_frames_is_found_where_its_motion_carried_it():
    xs = np.linspace(0.05, 0.95, 7)  # 0.15 of the frame per frame; missed on frames 3 and 4
    boxes = np.zeros((7, 1, 6), dtype=np.float32)
    count = np.array([1, 1, 1, 0, 0, 1, 1])
    for t, x in enumerate(xs):
        boxes[t, 0] = _box(x, 0.5) if count[t] else 0
    tracked, present = track_hands(boxes, count)
    assert present[:, 0].tolist() == [True, True, True, False, False, True, True]
    assert not present[:, 1].any(), "the hand came back 0.45 from where it was last seen, in its own slot"
