"""The 12-channel stream: left half, right half and whole frame through the hand-gesture ViT and ResNeXt-50.

Writes ``embeddings`` (12, D), channels in the fixed order of extract/channels.py. With
``--crop-mode hands`` the two halves become the YOLO hand boxes, so the stream then needs ``hands``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cache.schema import FieldSpec
from extract.channels import CHANNEL_NAMES, assemble_channels
from extract.crops import crop_resize, hand_views, split_halves

from .base import FrameBatch, Stream, StreamOptions, register_stream


@register_stream
class Twelve(Stream):
    name = "twelve"
    models = {
        "vit": {"full": "vit_b16_hand_gestures", "tiny": "tiny_vit"},
        "cnn": {"full": "resnext50_32x4d", "tiny": "tiny_cnn"},
    }
    reads = ("crop_mode",)

    def needs(self, options: StreamOptions) -> tuple[str, ...]:
        return ("hands",) if options.crop_mode == "hands" else ()

    def key(self, options: StreamOptions) -> dict[str, Any]:
        return {"crop_mode": options.crop_mode}

    def meta(self, options: StreamOptions) -> dict[str, Any]:
        return {"channel_layout": list(CHANNEL_NAMES)}

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        return (FieldSpec("embeddings", (len(CHANNEL_NAMES), encoders["vit"].out_dim)),)

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        x = batch.frames
        with batch.stage("crops"):
            if batch.options.crop_mode == "hands":
                left_box, right_box, _ = hand_views(batch.outputs["hand_boxes"], batch.outputs["hand_count"])
                size = tuple(batch.encoders["vit"].preprocess.input_size)
                left, right = crop_resize(x, left_box, size), crop_resize(x, right_box, size)
            else:
                left, right = split_halves(x)
        views = {"left": left, "right": right, "whole": x}
        vit = {name: batch.run("vit", v).float() for name, v in views.items()}  # (N, D) each
        cnn = {name: batch.run("cnn", v).float() for name, v in views.items()}  # (N, C) each
        return {"embeddings": assemble_channels(vit, cnn)}  # (N, 12, D)
