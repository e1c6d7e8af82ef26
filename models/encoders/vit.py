"""The ViT role: a transformers ViT-B/16 fine-tuned on HaGRID hand gestures (18 classes).

Features are ``model.vit(x).last_hidden_state.mean(1)``: the token mean *after* the final LayerNorm. The
tempting ``hidden_states[-1]`` is taken before that LayerNorm and gives different (unnormalised) features.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Encoder, PreprocessConfig, register_encoder
from .weights import LocalWeights, WeightSource

HAND_VIT = "dima806/hand_gestures_image_detection"

# The released config: ViT-B/16 at 224 (transformers' defaults), 18 HaGRID labels.
FULL_CONFIG: dict[str, Any] = dict(
    image_size=224,
    patch_size=16,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    qkv_bias=True,
    layer_norm_eps=1e-12,
    num_labels=18,
)
TINY_CONFIG: dict[str, Any] = dict(
    image_size=64,
    patch_size=16,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=128,
    num_labels=18,
)


class HFViT(Encoder):
    """A ``ViTForImageClassification`` used as a feature extractor: prepared frames -> (B, D)."""

    def __init__(self, model: torch.nn.Module) -> None:
        size = model.config.image_size
        # dima806's preprocessor_config: ViTImageProcessor, 224x224, bilinear, mean = std = 0.5.
        preprocess = PreprocessConfig(input_size=(size, size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        super().__init__("vit", model.config.hidden_size, preprocess)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.model.vit(pixel_values=x).last_hidden_state  # (B, 1 + N, D), after the final LayerNorm
        return tokens.mean(1)  # (B, D)


def _random_vit(config: dict[str, Any]) -> torch.nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig(**config))


@register_encoder(
    "vit_b16_hand_gestures",
    role="vit",
    source=WeightSource(repo=HAND_VIT, files=("config.json", "model.safetensors")),
)
def vit_b16_hand_gestures(weights: LocalWeights | None) -> Encoder:
    if weights is None:
        return HFViT(_random_vit(FULL_CONFIG))
    from transformers import ViTForImageClassification

    # Both files resolve to the same snapshot folder (hub cache: snapshots/<commit>/), which from_pretrained
    # then reads without touching the network.
    folder = weights["model.safetensors"].parent
    model = ViTForImageClassification.from_pretrained(str(folder), local_files_only=True)
    return HFViT(model.float())


@register_encoder("tiny_vit", role="vit")
def tiny_vit(weights: LocalWeights | None) -> Encoder:
    return HFViT(_random_vit(TINY_CONFIG))
