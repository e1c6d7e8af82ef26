"""The hands stream: YOLO hand boxes per frame, padded to K, and how many were found.

Writes ``hand_boxes`` (K, 6) float32 (x1 y1 x2 y2 normalised, confidence, class; rows past the count are
zero) and ``hand_count`` () uint8 in 0..K. ``--encoders hands=none`` skips YOLO: both are then absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cache.schema import FieldSpec

from .base import FrameBatch, Stream, StreamOptions, register_stream


@register_stream
class Hands(Stream):
    name = "hands"
    models = {"hands": {"full": "yolov8x_hands", "tiny": "tiny_hands"}}

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        k = int(encoders["hands"].max_hands)
        return (
            FieldSpec("hand_boxes", (k, 6), "float32"),
            FieldSpec("hand_count", (), "uint8", bounds=(0, k)),
        )

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        out = batch.run("hands", batch.frames)
        return {"hand_boxes": out.boxes, "hand_count": out.count}  # (N, K, 6), (N,)
