"""The 12-channel frame embedding of DESIGN §3, assembled from per-view ViT and CNN features."""

from __future__ import annotations

import math

import torch

from cache.schema import CNN_CHUNKS, NUM_CHANNELS


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
