"""The CNN role: a timm ResNeXt-50 whose pooled 2048-d vector fills channels 2-7 and 9-11 of the embedding."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import Encoder, PreprocessConfig, register_encoder
from .weights import LocalWeights, create_timm_model, timm_source

RESNEXT = "resnext50_32x4d.a1h_in1k"


def timm_preprocess(model: nn.Module, channels_last: bool = False) -> PreprocessConfig:
    """Preprocessing exactly as the timm checkpoint was trained (mean, std, size, interpolation)."""
    import timm.data

    cfg = timm.data.resolve_model_data_config(model)
    interpolation = "bicubic" if cfg["interpolation"] == "bicubic" else "bilinear"
    return PreprocessConfig(
        input_size=tuple(cfg["input_size"][1:]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=interpolation,
        channels_last=channels_last,
    )


class TimmCNN(Encoder):
    """A timm CNN with its classifier removed: prepared frames -> pooled features (B, C)."""

    def __init__(self, model_name: str, weights: LocalWeights | None, **timm_kwargs: Any) -> None:
        model = create_timm_model(model_name, weights, num_classes=0, **timm_kwargs)
        super().__init__("cnn", model.num_features, timm_preprocess(model, channels_last=True))
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, C)


@register_encoder("resnext50_32x4d", role="cnn", source=timm_source(RESNEXT))
def resnext50(weights: LocalWeights | None) -> Encoder:
    return TimmCNN(RESNEXT, weights)


@register_encoder("tiny_cnn", role="cnn")
def tiny_cnn(weights: LocalWeights | None) -> Encoder:
    # timm's test_resnet widened at the last stage to C = 160, so 2*64 < C <= 3*64 for the tiny ViT's D = 64.
    return TimmCNN(
        "test_resnet",
        weights,
        channels=(32, 48, 48, 160),
        pretrained_cfg_overlay={"input_size": (3, 64, 64)},
    )
