"""The hand-motion head stream learns swipes from stored box trajectories, and only from their motion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hand_fixtures import box, swipe_cache

from models.hand_motion import hand_motion
from train.arrays import SplitSource, decode_cache
from train.config import TrainConfig
from train.fit import run_train
from train.runtime import open_manifest, split_dataset


def _train(cache: Path, out: Path, name: str) -> float:
    cfg = TrainConfig(
        cache=cache, out=out, name=name, streams="hands", epochs=20, batch_size=16, lr=2e-2, hidden=32,
        dropout=0.1, seed=0, device="cpu", patience=0,
    )  # fmt: skip
    run = run_train(cfg)
    return json.loads((run / "report.json").read_text())["val"]["accuracy"]


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_swipes_are_learned_from_the_hand_track_alone(tmp_path, one_thread):
    assert _train(swipe_cache(tmp_path / "cache", "true"), tmp_path / "runs", "hands") >= 0.95


def test_boxes_shuffled_across_frames_teach_nothing(tmp_path, one_thread):
    acc = _train(swipe_cache(tmp_path / "cache", "shuffled"), tmp_path / "runs", "shuffled")
    assert acc <= 0.5, f"4 classes, chance 0.25: the shuffled track still gave {acc}"


def test_the_detection_order_changes_nothing(tmp_path):
    """What training reads from the cache is the same whichever order the detector listed the hands."""
    features = []
    for mode in ("true", "swapped"):
        key = swipe_cache(tmp_path / mode, mode)
        ds = split_dataset(key, open_manifest(key), "val", ("hand_motion", "hand_mask"), preload=True)
        features.append([(ds[i]["hand_motion"], ds[i]["hand_mask"]) for i in range(len(ds))])
    for (a, ma), (b, mb) in zip(*features, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(ma, mb, rtol=0, atol=0)
    motion = torch.stack([m for m, _ in features[0]])  # (N, T, 2, 7)
    assert motion[:, :, 0, 1].std(1).max() > 0 and motion[:, 0, 1, 0].min() > 0.85  # slot 1: resting


def test_a_missing_hand_is_masked_not_a_hand_at_the_corner():
    boxes = np.zeros((4, 2, 6), np.float32)
    boxes[:, 0] = box(0.3, 0.5, 0.1, 0.9)
    boxes[:, 0, 0] += np.array([0, 0.05, 0.1, 0.15])[:]  # x1 drifts right
    count = np.array([1, 0, 1, 1])
    motion, mask = hand_motion(boxes, count)
    assert mask[:, 0, 0].tolist() == [1, 0, 1, 1] and not mask[:, 1].any()
    assert mask[:, 0, 1].tolist() == [0, 0, 0, 1], "a velocity needs the hand in this and the frame before"
    np.testing.assert_allclose(motion[3, 0, 4], (0.15 - 0.10) / 2, atol=1e-6)  # centre moved half of x1


def test_sweeps_decoded_arrays_hold_the_same_track_as_the_reader(tmp_path):
    key = swipe_cache(tmp_path / "cache", "swapped")
    fields = ("hand_mask", "hand_motion")
    decoded = decode_cache(key, fields, tmp_path / "runs", splits=("val",))
    try:
        arrays = SplitSource.as_stored(decoded).dataset("val", fields)
        reader = split_dataset(key, open_manifest(key), "val", fields, preload=False)
        for i in range(len(reader)):
            for name in fields:
                torch.testing.assert_close(arrays[i][name], reader[i][name], rtol=0, atol=0)
    finally:
        decoded.remove()
