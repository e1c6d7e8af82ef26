"""The masks stream: SAM2 hand masks per frame, prompted by YOLO's hand boxes or DINO's attention peaks.

Off unless asked: no preset names a masks model, so ``--encoders masks=sam2.1_hiera_tiny`` (or
``tiny_sam2`` with ``--preset tiny``) turns it on, and default extractions keep their key and bytes.

Per frame, two hand slots ordered like the 12-channel hand views (``hand_views``): the two most confident
YOLO boxes by centre x, one box on the side it is on. Where YOLO found no hand at all, SAM2 is prompted
with the centres of the ``PEAK_POINTS`` most attended DINO patches, and the mask goes to the slot on the
side of the highest peak. Writes:

- ``hand_masks`` (2, 64, 8) uint8: 64x64 masks bit-packed along rows (``cache.masks.unpack_masks``);
- ``mask_valid`` (2,) uint8 0/1; ``mask_score`` (2,) float32 SAM2's predicted IoU, 0 where not valid;
- ``mask_source`` (2,) uint8, the prompt a slot got: 0 none, 1 YOLO box, 2 DINO attention peaks (an
  attention-vs-mask analysis must leave out masks that attention itself prompted);
- ``mask_dino`` (2, Dd): patch tokens averaged inside each mask (extract/mask_pool.py), from the stream's
  own ``mask_features`` role: DINOv2 ViT-S/14 at 224 (a 16x16 grid, ``dinov2_vit_s14``; ``tiny_dinov2``
  in the tiny preset) whatever flavour the ``dino`` role runs, so the default ``dino`` stream and its key
  stay as they were. ``--encoders mask_features=MODEL`` takes any DINO flavour. When the ``dino`` role
  runs the very same model (name and weight identity), its tokens are pooled and the model runs once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cache.masks import MASK_SIZE, MASK_SOURCES, PACKED_WIDTH, pack_masks
from cache.schema import FieldSpec
from extract.crops import attention_peaks, hand_views
from extract.mask_pool import mask_pool

from .base import FrameBatch, Stream, StreamOptions, register_stream

PEAK_POINTS = 3  # attention peaks per point prompt (the source system used a handful of mask points)
NO_PROMPT, BOX, POINTS = 0, 1, 2


def mask_prompts(
    boxes: torch.Tensor, count: torch.Tensor, attention: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-slot prompts: boxes (N, 2, 4), attention points (N, P, 2) and the source (N, 2) per slot.

    ``boxes`` (N, K, 6) and ``count`` (N,) are YOLO's; ``attention`` (N, h, w) DINO's mean map.
    """
    left, right, found = hand_views(boxes, count)
    points = attention_peaks(attention, PEAK_POINTS)  # (N, P, 2)
    source = torch.where(found, BOX, NO_PROMPT)  # (N, 2)
    none = count == 0
    side = (points[:, 0, 0] >= 0.5).long()  # slot of the highest peak: 0 left, 1 right
    source[none, side[none]] = POINTS
    return torch.stack([left, right], 1), points, source


def same_model(a: Any, b: Any) -> bool:
    """Whether two built encoders compute the same thing: one registry name and one weight identity
    (``random:<seed>``, or repo, revision and file digests)."""
    return a is b or (bool(a.name) and a.name == b.name and a.identity == b.identity)


def mask_tokens(batch: FrameBatch) -> torch.Tensor:
    """(N, h, w, D) patch tokens to pool: the ``dino`` stream's when its model is the ``mask_features``
    one (no second forward pass), else a run of the ``mask_features`` encoder."""
    dino = batch.encoders.get("dino")
    if (
        dino is not None
        and "dino_patches" in batch.outputs
        and same_model(batch.encoders["mask_features"], dino)
    ):
        return batch.outputs["dino_patches"]
    return batch.run("mask_features", batch.frames).patches


@register_stream
class Masks(Stream):
    name = "masks"
    # No preset runs SAM2 (--encoders masks=MODEL turns the stream on); the presets' mask_features models
    # are built only when it is on.
    models = {"masks": {}, "mask_features": {"full": "dinov2_vit_s14", "tiny": "tiny_dinov2"}}
    kinds = {"mask_features": "dino"}

    def needs(self, options: StreamOptions) -> tuple[str, ...]:
        return ("dino", "hands")

    def key(self, options: StreamOptions) -> dict[str, Any]:
        return {"prompts": f"yolo-boxes/dino-peaks-{PEAK_POINTS}", "mask_size": MASK_SIZE}

    def meta(self, options: StreamOptions) -> dict[str, Any]:
        return {
            "hand_masks_layout": f"packbits rows, {MASK_SIZE}x{MASK_SIZE}",
            "mask_sources": list(MASK_SOURCES),
        }

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        if encoders["masks"].out_dim != MASK_SIZE:
            raise ValueError(
                f"masks encoder gives {encoders['masks'].out_dim}px masks; the cache stores {MASK_SIZE}"
            )
        return (
            FieldSpec("hand_masks", (2, MASK_SIZE, PACKED_WIDTH), "uint8"),
            FieldSpec("mask_valid", (2,), "uint8", bounds=(0, 1)),
            FieldSpec("mask_score", (2,), "float32", bounds=(0.0, 1.0)),
            FieldSpec("mask_source", (2,), "uint8", bounds=(0, 2)),
            FieldSpec("mask_dino", (2, encoders["mask_features"].out_dim)),
        )

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        out = batch.outputs
        with batch.stage("crops"):
            boxes, points, source = mask_prompts(out["hand_boxes"], out["hand_count"], out["dino_attention"])
        masks = batch.run("masks", batch.frames, boxes, points, source)
        tokens = mask_tokens(batch)  # (N, h, w, Dd)
        with batch.stage("crops"):
            pooled = mask_pool(tokens, masks.masks)  # (N, 2, Dd)
        return {
            "hand_masks": pack_masks(masks.masks),  # (N, 2, 64, 8)
            "hand_masks_bool": masks.masks,  # (N, 2, 64, 64): not stored, read by SwAV's mask crop
            "mask_valid": masks.valid.to(torch.uint8),
            "mask_score": masks.score,
            "mask_source": source.to(torch.uint8),  # the prompt each slot got, valid mask or not
            "mask_dino": pooled,
        }
