"""--hands-every K: YOLO runs on keyframes only, the boxes between are interpolated and flagged."""

from __future__ import annotations

from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from conftest import tiny_extract_config

from cache.verify import verify_cache
from extract.plan import make_plan
from extract.run import run as extract
from extract.streams import get_stream
from models.encoders.base import HandOutput
from models.encoders.hands import YoloHands
from models.tracking import fill_from_keyframes, keyframe_positions

BOX = [0.2, 0.3, 0.4, 0.6, 0.9, 0.0]  # what the stand-in detector finds on every frame it sees


@pytest.fixture
def counted_detector(monkeypatch) -> list[int]:
    """Replace YOLO's forward by one that finds BOX on every frame and records how many frames it saw."""
    seen: list[int] = []

    def forward(self: YoloHands, x: torch.Tensor) -> HandOutput:
        seen.append(x.shape[0])
        boxes = torch.zeros(x.shape[0], self.max_hands, 6)
        boxes[:, 0] = torch.tensor(BOX)
        return HandOutput(boxes=boxes, count=torch.ones(x.shape[0], dtype=torch.int64))

    monkeypatch.setattr(YoloHands, "forward", forward)
    return seen


def test_hands_every_2_detects_on_keyframes_only_and_flags_them(small_demo, tmp_path, counted_detector):
    t = 6
    cfg = tiny_extract_config(small_demo, tmp_path / "cache", frames=t, hands_every=2, crop_mode="hands")
    result = extract(cfg)
    keys = keyframe_positions(t, 2)  # 0, 2, 4 and the last frame, 5
    assert keys.tolist() == [0, 2, 4, 5]
    assert sum(counted_detector) == result.computed * len(keys), "YOLO ran on frames between keyframes"
    assert verify_cache(result.key_dir) == []
    with h5py.File(result.key_dir / "train.h5") as h5:
        count, boxes, detected = h5["hand_count"][...], h5["hand_boxes"][...], h5["hand_detected"][...]
    assert (count == 1).all(), "frames between keyframes got their box from the neighbouring detections"
    np.testing.assert_allclose(boxes[:, :, 0], np.broadcast_to(BOX, boxes[:, :, 0].shape), atol=1e-6)
    flags = detected[:, :, 0].astype(bool)  # (N, T): the one hand's row
    assert (flags == np.isin(np.arange(t), keys)[None, :]).all()
    assert not detected[:, :, 1:].any()  # empty rows are never "detected"


def test_hands_every_is_in_the_key_and_1_keeps_todays_key_and_fields(small_demo, tmp_path):
    base = tiny_extract_config(small_demo, tmp_path / "cache", frames=4)
    plans = {
        k: make_plan(tiny_extract_config(small_demo, tmp_path / "cache", frames=4, hands_every=k))
        for k in (1, 2)
    }
    assert plans[1].key == make_plan(base).key
    assert plans[2].key != plans[1].key
    detector = {"hands": SimpleNamespace(max_hands=4)}
    fields = {k: [f.name for f in get_stream("hands").fields(detector, p.options)] for k, p in plans.items()}
    assert fields[1] == ["hand_boxes", "hand_count"] and fields[2] == [*fields[1], "hand_detected"]


def _box(cx: float, cy: float, conf: float) -> list[float]:
    return [cx - 0.05, cy - 0.05, cx + 0.05, cy + 0.05, conf, 0.0]


def test_two_fast_hands_are_interpolated_each_along_its_own_path():
    """Hands moving 0.1 of the frame per frame (0.4 between keyframes, beyond the per-frame gate), listed
    in a different confidence order on each keyframe: each frame between holds both true boxes."""
    t_len, keys = 9, keyframe_positions(9, 4)
    truth = np.array([[_box(0.05 + 0.1 * t, 0.3, 0.9), _box(0.95 - 0.1 * t, 0.7, 0.8)] for t in range(t_len)])
    boxes = np.zeros((t_len, 3, 6))
    for i, t in enumerate(keys):
        boxes[t, :2] = truth[t, :: 1 if i % 2 else -1]
    filled, count, detected = fill_from_keyframes(
        boxes, np.where(np.isin(np.arange(t_len), keys), 2, 0), keys
    )
    assert count.tolist() == [2] * t_len
    for t in range(t_len):
        got = sorted(map(tuple, np.round(filled[t, :2, :4], 6)))
        np.testing.assert_allclose(got, sorted(map(tuple, np.round(truth[t, :, :4], 6))), atol=1e-6)
    assert detected[:, :2].any(1).tolist() == [t in keys for t in range(t_len)] and not detected[:, 2].any()
