"""The 12-channel frame embedding of DESIGN §3, assembled from per-view ViT and CNN features."""

from __future__ import annotations

import math

import torch

NUM_CHANNELS = 12
CNN_CHUNKS = 3

# Channel order of the 12-channel embedding (DESIGN §3). Keep it exact.
CHANNEL_NAMES: tuple[str, ...] = (
    "left_vit",
    "right_vit",
    "left_cnn_0",
    "left_cnn_1",
    "left_cnn_2",
    "right_cnn_0",
    "right_cnn_1",
    "right_cnn_2",
    "whole_vit",
    "whole_cnn_0",
    "whole_cnn_1",
    "whole_cnn_2",
)
assert len(CHANNEL_NAMES) == NUM_CHANNELS


def chunk_and_pad(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Cut (N, C) CNN features into ceil(C / dim) chunks of ``dim``, zero-padding the last.

    Returns (N, chunks, dim)."""
    n, c = x.shape
    chunks = math.ceil(c / dim)
    if chunks != CNN_CHUNKS:
        raise ValueError(
            f"CNN dim {c} gives {chunks} chunks of {dim}; the 12-channel layout needs {CNN_CHUNKS}"
        )
    padded = x.new_zeros(n, chunks * dim)
    padded[:, :c] = x
    return padded.view(n, chunks, dim)


def assemble_channels(vit: dict[str, torch.Tensor], cnn: dict[str, torch.Tensor]) -> torch.Tensor:
    """Stack views into (N, 12, D) in the fixed order: left ViT, right ViT, left CNN x3, right CNN x3,
    whole ViT, whole CNN x3. ``vit[view]`` is (N, D), ``cnn[view]`` is (N, C)."""
    dim = vit["whole"].shape[1]
    parts = [
        vit["left"][:, None],
        vit["right"][:, None],
        chunk_and_pad(cnn["left"], dim),
        chunk_and_pad(cnn["right"], dim),
        vit["whole"][:, None],
        chunk_and_pad(cnn["whole"], dim),
    ]
    out = torch.cat([p.float() for p in parts], dim=1)  # (N, 12, D)
    assert out.shape[1] == NUM_CHANNELS
    return out
