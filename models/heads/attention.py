"""Attention over the 12 embedding channels of a frame, and over the frames of a sequence."""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Scores each channel of every frame and pools them with softmax weights.

    The 12 channels (ViT/CNN views of the halves and the whole image) are not equally
    informative for every gesture; letting the model pick per frame makes that choice
    visible in the report. A learned per-channel bias gives the scorer a prior on which
    channel it is looking at, since all channels share one D-dim space.
    """

    def __init__(self, dim: int, num_channels: int = 12, hidden: int = 64) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        # No bias on the last layer: softmax is shift invariant, so it would never train.
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))
        self.channel_bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C, D) → pooled (B, T, D), weights (B, T, C) summing to 1 over C."""
        scores = self.score(self.norm(x)).squeeze(-1) + self.channel_bias  # (B, T, C)
        weights = torch.softmax(scores.float(), dim=-1).to(x.dtype)  # (B, T, C)
        pooled = (weights.unsqueeze(-1) * x).sum(dim=2)  # (B, T, D)
        return pooled, weights


class SequenceAttention(nn.Module):
    """Attention pooling over frames that gives padded (invalid) frames exactly zero weight.

    Short videos repeat frames to reach T; those repeats carry no new information and must
    not tilt the summary or the reported frame statistics.
    """

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, d), valid (B, T) bool → pooled (B, d), weights (B, T)."""
        mask = valid.bool()
        # A sequence with no valid frame (should not happen) falls back to uniform weights
        # instead of NaN.
        mask = mask | ~mask.any(dim=1, keepdim=True)  # (B, T)
        scores = self.score(x).squeeze(-1).float()  # (B, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1) * mask  # exact zeros on masked frames
        pooled = torch.bmm(weights.unsqueeze(1).to(x.dtype), x).squeeze(1)  # (B, d)
        return pooled, weights
