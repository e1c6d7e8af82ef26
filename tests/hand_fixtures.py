"""Synthetic caches of hand tracks: swipes in four directions, written as stored hand boxes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from train_fixtures import write_synthetic_cache

SWIPES = {"down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0)}
FRAMES = 12


def box(cx: float, cy: float, size: float, conf: float) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2, conf, 0.0]


def swipe_cache(root: Path, mode: str = "true", signers: int = 0) -> Path:
    """A cache whose hand boxes are swipes (jittered start, speed and size) plus a resting second hand.

    ``mode``: "true"; "swapped": the two detections listed in the other order in random frames;
    "shuffled": every frame's boxes moved to a random frame of the split, so no motion is left.
    ``signers`` > 0: each sequence is signed by a random one of ``signers`` signers (named by the end of
    its video id, through the cache's group regex), who holds the hand at their own offset and size.
    """
    key = write_synthetic_cache(
        root, classes=tuple(SWIPES), counts={"train": 48, "val": 32, "test": 0}, frames=FRAMES, seed=3
    )
    rng = np.random.default_rng(7)
    style = rng.uniform(-0.15, 0.15, (max(signers, 1), 3))  # per signer: x and y offset, size change
    manifest = json.loads((key / "manifest.json").read_text())
    for split in ("train", "val"):
        with h5py.File(key / f"{split}.h5", "r+") as h5:
            labels = h5["labels"][...]
            # Every frame real: the fixture's short videos are all of one class, a cue besides the boxes.
            indices = np.tile(np.arange(FRAMES, dtype=np.int32), (len(labels), 1))
            h5["frame_indices"][...], h5["valid"][...] = indices, 1
            n = len(labels)
            signer = rng.integers(0, max(signers, 1), n)  # drawn apart from the class
            boxes = np.zeros((n, FRAMES, 2, 6), np.float32)
            for i, y in enumerate(labels):
                dx, dy = SWIPES[list(SWIPES)[y]]
                travel, size = rng.uniform(0.3, 0.6), rng.uniform(0.08, 0.14)
                cx, cy = 0.5 + rng.uniform(-0.08, 0.08, 2)
                if signers:
                    ox, oy, grow = style[signer[i]]
                    cx, cy, size = cx + ox, cy + oy, size + grow / 3
                for t, frame in enumerate(indices[i]):
                    p = frame / (FRAMES - 1) - 0.5  # -0.5 .. 0.5 along the swipe
                    moving = box(cx + dx * travel * p, cy + dy * travel * p, size, rng.uniform(0.5, 0.9))
                    resting = box(0.9 + rng.normal(0, 0.005), 0.9 + rng.normal(0, 0.005), 0.1, 0.6)
                    rows = [moving, resting]
                    flip = rng.random() < 0.5  # drawn in every mode: the boxes stay the same
                    if mode == "swapped" and flip:
                        rows = rows[::-1]
                    boxes[i, t] = rows
            count = np.full((n, FRAMES), 2, np.uint8)
            if mode == "shuffled":
                order = rng.permutation(n * FRAMES)
                boxes = boxes.reshape(n * FRAMES, 2, 6)[order].reshape(n, FRAMES, 2, 6)
            h5["hand_boxes"][...] = boxes
            h5["hand_count"][...] = count
            if signers:
                ids = [
                    f"{s}-{signer[i]:03d}" for i, s in enumerate(manifest["splits"][split]["sequence_ids"])
                ]
                manifest["splits"][split]["sequence_ids"] = ids
                h5["sequence_ids"][...] = np.array([i.encode() for i in ids])
    if signers:
        manifest["config"]["group_regex"] = r"-(\d+)$"
        (key / "manifest.json").write_text(json.dumps(manifest))
    return key
