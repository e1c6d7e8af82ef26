"""The DINO role: timm ViT-S/16 (self-supervised DINO weights) giving a CLS token and an attention map.

The attention map says where the model looks; the extractor crops the SwAV view from it. timm runs fused
scaled-dot-product attention, which never materialises the matrix, so the last block alone is switched to
the explicit path and its ``attn_drop`` (identity in eval) is hooked to catch the softmax output.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import DinoOutput, Encoder, register_encoder
from .cnn import timm_preprocess
from .weights import create_timm_model

DINO = "vit_small_patch16_224.dino"  # keep the .dino tag: its pretrained_cfg carries the right mean/std


class TimmDino(Encoder):
    """Prepared frames -> ``DinoOutput(cls (B, Dd), attention (B, h, w))``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__("dino", model.num_features, timm_preprocess(model))
        self.model = model
        patch_h, patch_w = model.patch_embed.patch_size
        height, width = self.preprocess.input_size
        self.patch_size = (patch_h, patch_w)
        self.attn_hw = (height // patch_h, width // patch_w)
        last = model.blocks[-1].attn
        last.fused_attn = False
        self._attn: torch.Tensor | None = None
        last.attn_drop.register_forward_hook(self._keep_attention)

    def _keep_attention(
        self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        self._attn = output  # (B, heads, N, N) softmax rows

    def forward(self, x: torch.Tensor) -> DinoOutput:
        self._attn = None
        tokens = self.model.forward_features(x)  # (B, N, Dd), after the final norm
        attn = self._attn
        if attn is None:
            raise RuntimeError(
                "DINO attention hook did not fire; timm's last block changed its attention path"
            )
        self._attn = None
        h, w = x.shape[-2] // self.patch_size[0], x.shape[-1] // self.patch_size[1]
        prefix = self.model.num_prefix_tokens
        cls_to_patches = attn[:, :, 0, prefix:].mean(1)  # (B, h*w); sums to 1 minus the CLS->prefix share
        return DinoOutput(cls=tokens[:, 0], attention=cls_to_patches.reshape(x.shape[0], h, w))


@register_encoder("dino_vit_s16", role="dino", source=f"timm/{DINO}")
def dino_vit_s16(pretrained: bool) -> Encoder:
    return TimmDino(create_timm_model(DINO, pretrained, "dino_vit_s16", num_classes=0))


@register_encoder("tiny_dino", role="dino")
def tiny_dino(pretrained: bool) -> Encoder:
    # timm's test_vit (D = 64, 6 blocks, 2 heads) at 128 px: an 8x8 attention map.
    model = create_timm_model(
        "test_vit",
        pretrained,
        "tiny_dino",
        num_classes=0,
        img_size=128,
        pretrained_cfg_overlay={"input_size": (3, 128, 128)},
    )
    return TimmDino(model)
