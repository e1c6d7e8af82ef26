"""The masks role: SAM2 (transformers' ``Sam2Model``) segmenting up to two hands per frame from prompts.

The image encoder runs once per frame; the prompt encoder and mask decoder then run for the prompts the
masks stream chose per hand slot: a YOLO hand box, or (where YOLO found no hand) the peak points of DINO's
attention. One mask per prompt (``multimask_output=False``, SAM's advice for boxes); its low-resolution
logits are resized to 64x64 and thresholded at 0. A slot is valid when it was prompted, SAM2's object
score says an object is there, and the mask is not empty.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import Encoder, PreprocessConfig, register_encoder
from .weights import LocalWeights, WeightSource

# Sam2ImageProcessor's defaults: bilinear resize to 1024 x 1024, ImageNet mean and std.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NO_PROMPT, BOX, POINTS = 0, 1, 2  # per-slot prompt kinds (``mask_source`` in the cache)
MASK_SIZE = 64  # side of the output masks; the cache stores them bit-packed (cache/masks.py)

# A SAM2 small enough for tests: Hiera with 5 blocks at 128 px (feature maps 32, 16, 8), 32-d neck and
# decoder; ~124k parameters, built through the same transformers classes as the real model.
TINY_CONFIG: dict[str, Any] = dict(
    vision_config=dict(
        backbone_config=dict(
            model_type="sam2_hiera_det_model",
            hidden_size=8,
            image_size=[128, 128],
            blocks_per_stage=[1, 1, 2, 1],
            embed_dim_per_stage=[8, 16, 32, 64],
            num_attention_heads_per_stage=[1, 1, 1, 1],
            window_size_per_stage=[8, 4, 4, 2],
            global_attention_blocks=[3],
            window_positional_embedding_background_size=[4, 4],
        ),
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
        fpn_hidden_size=32,
    ),
    prompt_encoder_config=dict(hidden_size=32, image_size=128, patch_size=16),
    mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
)


class MaskOutput(NamedTuple):
    """Hand masks for a batch of frames, two slots per frame."""

    masks: torch.Tensor  # (B, 2, S, S) bool at MASK_SIZE; all False where not valid
    score: torch.Tensor  # (B, 2) float32 SAM2's predicted IoU in [0, 1]; 0 where not valid
    valid: torch.Tensor  # (B, 2) bool


class Sam2Masks(Encoder):
    """Prepared frames and per-slot prompts -> ``MaskOutput``; ``out_dim`` is the mask side."""

    def __init__(self, model: nn.Module, mask_size: int = MASK_SIZE) -> None:
        size = int(model.config.prompt_encoder_config.image_size)
        preprocess = PreprocessConfig(input_size=(size, size), mean=IMAGENET_MEAN, std=IMAGENET_STD)
        super().__init__("masks", mask_size, preprocess)
        self.model = model
        self.mask_size = mask_size

    def forward(
        self, x: torch.Tensor, boxes: torch.Tensor, points: torch.Tensor, source: torch.Tensor
    ) -> MaskOutput:
        """``x`` (B, 3, S, S) prepared; ``boxes`` (B, 2, 4) and ``points`` (B, P, 2) normalised to [0, 1];
        ``source`` (B, 2) per slot: NO_PROMPT, BOX (prompt with that slot's box) or POINTS (with ``points``;
        at most one such slot per frame)."""
        b, m = x.shape[0], self.mask_size
        size = float(self.preprocess.input_size[0])
        embeddings = self.model.get_image_embeddings(x)  # 3 levels, (B, C, h, w) each
        logits = torch.full((b, 2, m, m), -1.0, device=x.device)
        score = torch.zeros(b, 2, device=x.device)
        present = torch.zeros(b, 2, dtype=torch.bool, device=x.device)

        def decode(frames: torch.Tensor, **prompts: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = self.model(
                image_embeddings=[e[frames] for e in embeddings], multimask_output=False, **prompts
            )
            low = out.pred_masks[:, :, 0].float()  # (n, prompts, h', w') logits
            resized = F.interpolate(low, size=(m, m), mode="bilinear", align_corners=False, antialias=True)
            return resized, out.iou_scores[:, :, 0].float(), out.object_score_logits[:, :, 0] > 0

        by_box = (source == BOX).any(1).nonzero().flatten()
        if by_box.numel():
            # Both slots decoded (a slot without a box gets a dummy one), the box slots kept.
            lg, sc, ob = decode(by_box, input_boxes=boxes[by_box].float() * size)  # (n, 2, m, m), (n, 2)
            keep = source[by_box] == BOX
            logits[by_box] = torch.where(keep[..., None, None], lg, logits[by_box])
            score[by_box] = torch.where(keep, sc, score[by_box])
            present[by_box] = keep & ob
        by_points = source == POINTS  # (B, 2)
        frames, slot = by_points.any(1).nonzero().flatten(), by_points.int().argmax(1)
        if frames.numel():
            pts = points[frames].float()[:, None] * size  # (n, 1, P, 2)
            labels = torch.ones(pts.shape[:3], dtype=torch.int64, device=x.device)  # all foreground
            lg, sc, ob = decode(frames, input_points=pts, input_labels=labels)  # (n, 1, m, m), (n, 1)
            logits[frames, slot[frames]] = lg[:, 0]
            score[frames, slot[frames]] = sc[:, 0]
            present[frames, slot[frames]] = ob[:, 0]
        masks = (logits > 0) & present[..., None, None]
        valid = masks.flatten(2).any(2)
        masks &= valid[..., None, None]
        return MaskOutput(masks=masks, score=torch.where(valid, score.clamp(0.0, 1.0), 0.0), valid=valid)


def _register_sam2(name: str, repo: str) -> None:
    """One SAM2 checkpoint from the hub (transformers format); random weights use the hiera-tiny config."""

    @register_encoder(
        name, role="masks", source=WeightSource(repo=repo, files=("config.json", "model.safetensors"))
    )
    def build(weights: LocalWeights | None) -> Encoder:
        from transformers import Sam2Config, Sam2Model

        if weights is None:
            return Sam2Masks(Sam2Model(Sam2Config()))  # transformers' defaults are SAM2.1 hiera-tiny
        # Both files resolve to one snapshot folder, which from_pretrained reads without the network.
        folder = weights["model.safetensors"].parent
        return Sam2Masks(Sam2Model.from_pretrained(str(folder), local_files_only=True).float())


_register_sam2("sam2.1_hiera_tiny", "facebook/sam2.1-hiera-tiny")


@register_encoder("tiny_sam2", role="masks")
def tiny_sam2(weights: LocalWeights | None) -> Encoder:
    from transformers import Sam2Config, Sam2Model

    return Sam2Masks(Sam2Model(Sam2Config(**TINY_CONFIG)))
