"""The SwAV role: a self-supervised ResNet-50 (2048-d) run on the crop that DINO's attention picks out.

timm has no SwAV weights, so the backbone is torchvision's ResNet-50 loaded from the SwAV release checkpoint.
That checkpoint also holds the projection head and prototypes, hence ``strict=False``, but every backbone
weight must be present: a partial load would silently leave random layers in a "pretrained" model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import Encoder, PreprocessConfig, register_encoder
from .weights import (
    LocalWeights,
    WeightSource,
    create_timm_model,
    load_state_dict_file,
    torch_hub_path,
    unavailable,
)

SWAV_URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"
# SwAV's own eval code uses std 0.228 for red (not ImageNet's usual 0.229).
SWAV_MEAN = (0.485, 0.456, 0.406)
SWAV_STD = (0.228, 0.224, 0.225)


class SwAVResNet(Encoder):
    """A ResNet trunk with an identity head: prepared crops -> (B, C)."""

    def __init__(self, model: nn.Module, out_dim: int, size: int) -> None:
        preprocess = PreprocessConfig(
            input_size=(size, size),
            mean=SWAV_MEAN,
            std=SWAV_STD,
            interpolation="bilinear",
            channels_last=True,
        )
        super().__init__("swav", out_dim, preprocess)
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, C)


def load_swav_backbone(model: nn.Module, state_dict: dict[str, Any], encoder: str) -> None:
    """Load the SwAV release into a torchvision ResNet-50; refuse a checkpoint missing backbone weights."""
    if "state_dict" in state_dict:  # training checkpoints nest it; the release file does not
        state_dict = state_dict["state_dict"]
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys:
        path = torch_hub_path(SWAV_URL)
        missing = result.missing_keys
        reason = (
            f"{path} is not the SwAV ResNet-50 checkpoint ({len(missing)} backbone weights missing, "
            f"e.g. {missing[0]}); delete it"
        )
        raise unavailable(encoder, SWAV_URL, reason, f"download {SWAV_URL} to {path}")


@register_encoder("swav_resnet50", role="swav", source=WeightSource(url=SWAV_URL))
def swav_resnet50(weights: LocalWeights | None) -> Encoder:
    from torchvision.models import resnet50

    # Read the checkpoint first so an unreadable file fails before any model is built.
    state_dict = load_state_dict_file(weights[SWAV_URL], SWAV_URL, "swav_resnet50") if weights else None
    model = resnet50(weights=None)
    model.fc = nn.Identity()  # (B, 2048) pooled features; the checkpoint has no fc either
    if state_dict is not None:
        load_swav_backbone(model, state_dict, "swav_resnet50")
    return SwAVResNet(model, 2048, 224)


@register_encoder("tiny_swav", role="swav")
def tiny_swav(weights: LocalWeights | None) -> Encoder:
    # timm's test_resnet (pooled 96-d) at 64 px, with SwAV's normalisation.
    model = create_timm_model("test_resnet", weights, num_classes=0)
    return SwAVResNet(model, model.num_features, 64)
