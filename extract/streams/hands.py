"""The hands stream: YOLO hand boxes per frame, padded to K, and how many were found.

Writes ``hand_boxes`` (K, 6) float32 (x1 y1 x2 y2 normalised, confidence, class; rows past the count are
zero) and ``hand_count`` () uint8 in 0..K. ``--encoders hands=none`` skips YOLO: both are then absent.

``--hands-every N`` (N > 1) runs YOLO on every N-th frame of a sequence and on its last one only (YOLOv8x
is most of the extraction's FLOPs), and fills the frames between by tracking and interpolating the boxes
(``models.tracking.fill_from_keyframes``, the one hand matching). It then also writes ``hand_detected``
(K,) uint8: 1 for a row the detector produced, 0 for an interpolated or empty one. With N = 1 (the
default) the field is absent and the bytes and the key are those of a run without the flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cache.schema import FieldSpec
from core.errors import UserError
from models.tracking import fill_from_keyframes, keyframe_positions

from .base import FrameBatch, Stream, StreamOptions, register_stream

# What the frames between keyframes get; a change here changes their bytes, so it is in the key
# (v2: tracks predict each hand's centre at its last velocity, models/tracking.py).
FILL_VERSION = "keyframe-fill-v2"


def _every(options: StreamOptions) -> int:
    every = options.hands_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise UserError(
            f"--hands-every must be a whole number >= 1 (1 detects on every frame), not {every!r}"
        )
    return every


@register_stream
class Hands(Stream):
    name = "hands"
    models = {"hands": {"full": "yolov8x_hands", "tiny": "tiny_hands"}}
    reads = ("hands_every",)

    def key(self, options: StreamOptions) -> dict[str, Any]:
        every = _every(options)
        return {"hands_every": every, "fill": FILL_VERSION} if every > 1 else {}

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        k = int(encoders["hands"].max_hands)
        fields = (
            FieldSpec("hand_boxes", (k, 6), "float32"),
            FieldSpec("hand_count", (), "uint8", bounds=(0, k)),
        )
        if _every(options) > 1:
            fields += (FieldSpec("hand_detected", (k,), "uint8", bounds=(0, 1)),)
        return fields

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        every = _every(batch.options)
        if every == 1:
            out = batch.run("hands", batch.frames)
            return {"hand_boxes": out.boxes, "hand_count": out.count}  # (N, K, 6), (N,)
        n = batch.frames.shape[0]
        length = batch.sequence_length or n  # frames come in runs of T per sequence
        if n % length:
            raise ValueError(f"a batch of {n} frames is not whole sequences of {length}")
        keys = keyframe_positions(length, every)
        starts = np.arange(0, n, length)
        picked = torch.from_numpy((starts[:, None] + keys[None, :]).reshape(-1))  # keyframes of all sequences
        out = batch.run("hands", batch.frames[picked.to(batch.frames.device)])  # YOLO on keyframes only
        k = out.boxes.shape[1]
        key_boxes = out.boxes.float().cpu().numpy().reshape(len(starts), len(keys), k, 6)
        key_count = out.count.cpu().numpy().reshape(len(starts), len(keys))
        boxes = np.zeros((n, k, 6), dtype=np.float32)
        count = np.zeros(n, dtype=np.int64)
        detected = np.zeros((n, k), dtype=np.uint8)
        with batch.stage("hand_fill"):
            for s, start in enumerate(starts):
                seq_boxes = np.zeros((length, k, 6), dtype=np.float32)
                seq_count = np.zeros(length, dtype=np.int64)
                seq_boxes[keys], seq_count[keys] = key_boxes[s], key_count[s]
                b, c, d = fill_from_keyframes(seq_boxes, seq_count, keys)
                boxes[start : start + length], count[start : start + length] = b, c
                detected[start : start + length] = d
        device = out.boxes.device
        return {
            "hand_boxes": torch.from_numpy(boxes).to(device),  # (N, K, 6)
            "hand_count": torch.from_numpy(count).to(device),  # (N,)
            "hand_detected": torch.from_numpy(detected).to(device),  # (N, K)
        }
