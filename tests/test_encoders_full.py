"""Full-size architectures (random weights, so offline): the dims the cache schema and heads rely on."""

from __future__ import annotations

import math

import pytest
import torch

from extract.streams import preset_models
from models.encoders import DinoOutput, HandOutput, create_encoder


@pytest.mark.slow
def test_full_preset_architectures_give_the_documented_dims():
    x = torch.rand(4, 3, 240, 320, generator=torch.Generator().manual_seed(0))  # a 4-frame batch
    dims = {}
    for role, name in preset_models("full").items():
        enc = create_encoder(name, weights="random", seed=0)
        with torch.inference_mode():
            out = enc(enc.prepare(x))
        if role == "mask_features":  # DINOv2 ViT-S/14 at 224: the 16x16 grid the masks stream pools
            assert isinstance(out, DinoOutput) and out.patches.shape == (4, 16, 16, 384)
        elif role == "dino":
            assert isinstance(out, DinoOutput)
            assert out.cls.shape == (4, 384) and enc.attn_hw == (14, 14)
            assert out.attention.shape == (4, 14, 14) and (out.attention >= 0).all()
        elif role == "hands":
            assert isinstance(out, HandOutput)
            assert out.boxes.shape == (4, enc.max_hands, 6) and enc.max_hands == 4
            assert ((out.boxes[..., :4] >= 0) & (out.boxes[..., :4] <= 1)).all()
            assert (out.count <= enc.max_hands).all()
        else:
            assert out.shape == (4, enc.out_dim) and torch.isfinite(out).all()
        dims[role] = enc.out_dim
    assert dims["vit"] == 768 and dims["cnn"] == 2048 and dims["swav"] == 2048 and dims["dino"] == 384
    assert math.ceil(dims["cnn"] / dims["vit"]) == 3
