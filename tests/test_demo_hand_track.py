"""The demo's cache carries the generator's own hand boxes, and the hands head reads them."""

from __future__ import annotations

import h5py
import numpy as np
from conftest import demo_boxes_config

from cache.key import extraction_key
from cache.schema import decode_id
from data.demo import true_hand_boxes
from extract.run import run
from models.heads.model import ModelArgs
from train.runtime import open_manifest, split_dataset


def test_the_demo_format_stores_the_true_boxes_and_feeds_the_hands_head(small_demo, tmp_path):
    key = run(demo_boxes_config(small_demo, tmp_path / "cache")).key_dir
    truth = true_hand_boxes(small_demo)
    with h5py.File(key / "train.h5", "r") as h5:
        assert "hand_boxes" not in h5  # no random-weight detections: the track is the generator's
        ids = [decode_id(s) for s in h5["sequence_ids"][...]]
        boxes, count, frames = (
            h5["annotated_boxes"][...],
            h5["annotated_count"][...],
            h5["frame_indices"][...],
        )
    assert (count == 1).all()
    for i, sequence in enumerate(ids):
        np.testing.assert_allclose(boxes[i, :, 0], truth[sequence][frames[i]], atol=1e-6)

    manifest = open_manifest(key)
    # The manifest says what the key means and what the streams ran with (predict re-extracts with them).
    assert extraction_key(manifest["key_spec"]) == manifest["key"] == key.name
    assert manifest["stream_options"]["annotations"] == "demo"
    assert ModelArgs.from_manifest(manifest, "hands", 8, 0.0).inputs == {
        "hand_motion": (2, 7),
        "hand_mask": (2, 2),
    }
    i = next(i for i, s in enumerate(ids) if s.startswith("swipe_right/"))
    item = split_dataset(key, manifest, "train", ("hand_motion", "hand_mask"), preload=False)[i]
    centre = (truth[ids[i]][frames[i]][:, :2] + truth[ids[i]][frames[i]][:, 2:]) / 2  # (T, 2)
    seen = item["valid"].numpy()  # a repeated frame of a short video shows no hand
    np.testing.assert_allclose(item["hand_motion"][seen, 0, :2].numpy(), centre[seen], atol=1e-5)
    assert (item["hand_mask"][:, 0, 0].numpy() == seen).all() and not item["hand_mask"][:, 1].any()
