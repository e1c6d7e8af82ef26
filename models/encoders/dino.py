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
from .weights import LocalWeights, create_timm_model, timm_source


class TimmDino(Encoder):
    """Prepared frames -> ``DinoOutput(cls (B, Dd), attention (B, h, w), heads (B, H, h, w), patches)``.

    The attention grid follows the patch size and input size: 14x14 for /16 at 224, 28x28 for /8, 16x16
    for DINOv2's /14.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__("dino", model.num_features, timm_preprocess(model))
        self.model = model
        patch_h, patch_w = model.patch_embed.patch_size
        height, width = self.preprocess.input_size
        self.patch_size = (patch_h, patch_w)
        self.attn_hw = (height // patch_h, width // patch_w)
        last = model.blocks[-1].attn
        self.num_heads = int(last.num_heads)
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
        b = x.shape[0]
        h, w = x.shape[-2] // self.patch_size[0], x.shape[-1] // self.patch_size[1]
        prefix = self.model.num_prefix_tokens
        per_head = attn[:, :, 0, prefix:]  # (B, H, h*w); each row sums to 1 minus its CLS->prefix share
        return DinoOutput(
            cls=tokens[:, 0],
            attention=per_head.mean(1).reshape(b, h, w),
            heads=per_head.reshape(b, per_head.shape[1], h, w),
            patches=tokens[:, prefix:].reshape(b, h, w, -1),
        )


def _register_dino(name: str, timm_name: str, **kwargs: object) -> None:
    """One DINO flavour: a timm ViT with its released self-supervised weights (tag sets mean/std)."""

    @register_encoder(name, role="dino", source=timm_source(timm_name))
    def build(weights: LocalWeights | None) -> Encoder:
        return TimmDino(create_timm_model(timm_name, weights, num_classes=0, **kwargs))


# The flavours of the attention-map analysis: ViT-S and ViT-B at /16 and /8 (DINO), and DINOv2 ViT-S/14
# run at 224 (timm resamples its 518-px position embedding), keep the .dino/.lvd142m tags: their
# pretrained_cfg carries the right mean and std.
DINO = "vit_small_patch16_224.dino"
_register_dino("dino_vit_s16", DINO)
_register_dino("dino_vit_s8", "vit_small_patch8_224.dino")
_register_dino("dino_vit_b16", "vit_base_patch16_224.dino")
_register_dino("dino_vit_b8", "vit_base_patch8_224.dino")
_register_dino(
    "dinov2_vit_s14",
    "vit_small_patch14_dinov2.lvd142m",
    img_size=224,
    pretrained_cfg_overlay={"input_size": (3, 224, 224)},
)


@register_encoder("tiny_dino", role="dino")
def tiny_dino(weights: LocalWeights | None) -> Encoder:
    # timm's test_vit (D = 64, 6 blocks, 2 heads) at 128 px: an 8x8 attention map.
    model = create_timm_model(
        "test_vit",
        weights,
        num_classes=0,
        img_size=128,
        pretrained_cfg_overlay={"input_size": (3, 128, 128)},
    )
    return TimmDino(model)


@register_encoder("tiny_dinov2", role="dino")
def tiny_dinov2(weights: LocalWeights | None) -> Encoder:
    # DINOv2's ViT-S/14 architecture (patch 14, LayerScale) shrunk to D = 32, 2 blocks, 2 heads at 126 px:
    # a 9x9 grid, so tests can tell it from tiny_dino's 8x8 grid of 64-d tokens.
    model = create_timm_model(
        "vit_small_patch14_dinov2",
        weights,
        num_classes=0,
        embed_dim=32,
        depth=2,
        num_heads=2,
        img_size=126,
        pretrained_cfg_overlay={"input_size": (3, 126, 126)},
    )
    return TimmDino(model)
