"""The SwAV stream: a ResNet-50 on the crop the DINO attention points at, and that crop box.

Writes ``swav`` (C,) and ``swav_boxes`` (4,) float32 (normalised x1 y1 x2 y2). The box is the bounding
rectangle of the patches holding the top ``--attention-mass`` of attention, widened by ``--crop-margin``;
with ``--crop-source mask`` it is the union of the valid hand masks (the masks stream), widened the same,
and the attention box where a frame has no valid mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cache.schema import FieldSpec
from extract.crops import attention_box, crop_resize, mask_box

from .base import FrameBatch, Stream, StreamOptions, register_stream


@register_stream
class Swav(Stream):
    name = "swav"
    models = {"swav": {"full": "swav_resnet50", "tiny": "tiny_swav"}}
    reads = ("attention_mass", "crop_margin", "crop_source")

    def needs(self, options: StreamOptions) -> tuple[str, ...]:
        return ("dino", "masks") if options.crop_source == "mask" else ("dino",)

    def key(self, options: StreamOptions) -> dict[str, Any]:
        key = {"attention_mass": options.attention_mass, "crop_margin": options.crop_margin}
        if options.crop_source != "attention":  # keyed only when not the default: old keys stay valid
            key["crop_source"] = options.crop_source
        return key

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        return (
            FieldSpec("swav", (encoders["swav"].out_dim,)),
            FieldSpec("swav_boxes", (4,), "float32", bounds=(0.0, 1.0)),
        )

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        opts = batch.options
        with batch.stage("crops"):
            boxes = attention_box(
                batch.outputs["dino_attention"], opts.attention_mass, opts.crop_margin
            )  # (N, 4)
            if opts.crop_source == "mask":
                from_masks, found = mask_box(
                    batch.outputs["hand_masks_bool"], batch.outputs["mask_valid"], opts.crop_margin
                )
                boxes = torch.where(found[:, None], from_masks, boxes)
            crops = crop_resize(batch.frames, boxes, tuple(batch.encoders["swav"].preprocess.input_size))
        return {"swav": batch.run("swav", crops), "swav_boxes": boxes}
