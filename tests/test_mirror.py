"""A flipped augmented copy carries its annotations mirrored (and, distorted, moved: tests/test_warp.py),
so boxes and landmarks stay on the hands its pixels show, and hands keep the slots a detector or
placement would give them on the flipped frame."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import augmentation_of, demo_boxes_config

from cache.schema import decode_id, read_attrs
from data.augment import SequenceAugmenter
from data.demo import true_hand_boxes
from data.formats.hagrid import FIELDS
from data.formats.hagrid_hands import NotesPacker, hand_slots
from data.mirror import mirror_boxes, mirror_hands, mirror_pose
from data.warp import warp_boxes
from extract.run import run


def _flipped_copy(augmenter: SequenceAugmenter, frames: np.ndarray):
    for seed in range(100):
        result = augmenter.augment(frames, 0, seed)
        if result.flipped:
            return result
    raise AssertionError("no seed in 100 flipped the copy")


def test_a_mirrored_box_lies_on_the_bright_hand_of_the_flipped_frame():
    frames = np.full((2, 60, 80, 3), 20, np.uint8)
    frames[:, 10:30, 8:24] = 250  # the "hand": x 0.1-0.3, y 0.17-0.5 of the frame
    box = np.array([[8 / 80, 10 / 60, 24 / 80, 30 / 60], [0, 0, 0, 0]], np.float32)  # one real, one pad
    out = _flipped_copy(SequenceAugmenter(64), frames).frames[0]  # (64, 64, 3)

    def mean_inside(b: np.ndarray) -> float:
        x1, y1, x2, y2 = (b * 64).round().astype(int)
        return float(out[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].mean())

    mirrored = mirror_boxes(box, 1)
    assert mean_inside(mirrored[0]) > 180 and mean_inside(box[0]) < 90
    assert (mirrored[1] == 0).all()  # padding stays padding


def _hand(x0: float, y0: float) -> list[list[float]]:
    return [[x0 + 0.01 * (k % 5), y0 + 0.01 * (k // 5)] for k in range(21)]


def _packed(entry: dict) -> dict:
    """The entry as a HaGRID parse keeps it on the sample."""
    return NotesPacker().pack(entry, FIELDS)


def _mirrored_entry(entry: dict) -> dict:
    flip = {"left": "right", "right": "left"}
    marks = [[[1 - x, y] for x, y in hand] for hand in entry["hand_landmarks"]]
    out = {**entry, "hand_landmarks": marks}
    if "leading_hand" in entry:
        out["leading_hand"] = flip[entry["leading_hand"]]
    return out


@pytest.mark.parametrize(
    "entry",
    [
        {"labels": ["two_up", "two_up"], "hand_landmarks": [_hand(0.2, 0.3), _hand(0.7, 0.4)]},  # by x
        {"labels": ["like"], "hand_landmarks": [_hand(0.3, 0.5)]},  # one hand, left half
        {
            "labels": ["like", "no_gesture"],
            "hand_landmarks": [_hand(0.6, 0.5), _hand(0.2, 0.5)],
            "leading_hand": "right",
        },
    ],
)
@pytest.mark.parametrize("packed", [False, True], ids=["parsed", "packed"])
def test_mirrored_hands_sit_in_the_slots_placement_gives_the_flipped_image(entry, packed):
    # Placing the hands of the flipped image must give what mirroring the placed hands gives; the same
    # for the annotation as a parse keeps it on the sample (HagridNotes) and as parsed lists.
    pack = _packed if packed else dict
    placed, valid = hand_slots(pack(entry))
    want_points, want_valid = hand_slots(pack(_mirrored_entry(entry)))
    got_points, got_valid = mirror_hands(placed, valid)
    assert (got_valid == want_valid).all()
    np.testing.assert_allclose(got_points, want_points, atol=1e-6)


def test_a_mirrored_pose_still_faces_the_camera():
    # Facing the camera, a person's left side shows on the image's right: every left landmark has a
    # larger x than its right partner. A mirrored image shows a person facing the camera again.
    rng = np.random.default_rng(0)
    pose = np.zeros((33, 3), np.float32)
    pose[:, 1:] = rng.random((33, 2))
    pairs = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10)] + [(k, k + 1) for k in range(11, 33, 2)]
    for left, right in pairs:
        pose[left, 0], pose[right, 0] = 0.55 + 0.3 * rng.random(), 0.15 + 0.3 * rng.random()
    pose[0, 0] = 0.4
    mirrored = mirror_pose(pose, True)
    assert all(mirrored[left, 0] > mirrored[right, 0] for left, right in pairs)
    assert mirrored[0, 0] == pytest.approx(0.6)  # the nose stays the nose, mirrored
    np.testing.assert_allclose(mirror_pose(mirrored, True), pose, atol=1e-6)
    assert (mirror_pose(pose, False) == pose).all()  # no pose: nothing to move


def test_augmented_copies_store_the_demo_boxes_mirrored_and_moved(small_demo, tmp_path):
    # swipe_left:swipe_right swaps labels on a flip, so a copy's stored label says whether it was flipped.
    cfg = demo_boxes_config(
        small_demo, tmp_path / "cache", augment_copies=3, flip_swap=("swipe_left:swipe_right",)
    )
    key = run(cfg).key_dir
    truth = true_hand_boxes(small_demo)
    with h5py.File(key / "train.h5", "r") as h5:
        names = list(read_attrs(h5)["class_names"])
        ids = [decode_id(s) for s in h5["sequence_ids"][...]]
        labels, aug = h5["labels"][...], h5["aug_index"][...]
        boxes, frames = h5["annotated_boxes"][...], h5["frame_indices"][...]
    flips = moves = 0
    for i, sequence in enumerate(ids):
        cls = sequence.split("/")[0]
        if cls not in ("swipe_left", "swipe_right"):
            continue
        true = truth[sequence.split("#")[0]][frames[i]][:, None]  # (T, 1, 4); "#aK": augmented copy K
        flipped = names[labels[i]] != cls
        assert not (flipped and aug[i] == 0)  # the clean copy is never flipped
        want = np.stack([mirror_boxes(b, 1) for b in true]) if flipped else true
        copy = augmentation_of(sequence, 32)  # its distortion, if any (data/warp.py's tests: the pixels)
        assert copy.flipped == flipped
        if copy.warp is not None:
            want = np.stack([warp_boxes(b, 1, copy.warp) for b in want])
            assert not np.allclose(want, true) and (aug[i] > 0)
        np.testing.assert_allclose(boxes[i], want, atol=1e-6)
        flips += flipped
        moves += copy.warp is not None
    assert flips > 0 and moves > 0


@pytest.mark.parametrize("packed", [False, True], ids=["parsed", "packed"])
def test_hagrid_arrays_mirrored_equal_the_arrays_of_the_mirrored_annotation(packed):
    # Boxes (x, y, w, h), a whole hand and a partly annotated one; padding rows must stay zero.
    from types import SimpleNamespace

    from data.formats.hagrid import HaGRID

    entry = {
        "bboxes": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.2, 0.2]],
        "labels": ["like", "no_gesture"],
        "hand_landmarks": [_hand(0.15, 0.3), _hand(0.55, 0.15)[:12]],
    }
    flipped = {
        **entry,
        "bboxes": [[1 - x - w, y, w, h] for x, y, w, h in entry["bboxes"]],
        "hand_landmarks": [[[1 - x, y] for x, y in hand] for hand in entry["hand_landmarks"]],
    }
    pack = _packed if packed else dict
    got = HaGRID.mirror_annotations(HaGRID.annotation_arrays(SimpleNamespace(annotations=pack(entry)), 0))
    want = HaGRID.annotation_arrays(SimpleNamespace(annotations=pack(flipped)), 0)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
