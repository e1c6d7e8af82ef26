"""Gated fusion of two feature streams."""

from __future__ import annotations

import torch
from torch import nn


class GatedFusion(nn.Module):
    """Project a and b to d dims and mix them with a learned per-dimension gate.

    out = g * a' + (1 - g) * b', g = sigmoid(W [a; b]). A gate (rather than concat) keeps
    the output in the span of the two projections and tells us how much each stream was
    trusted, which the report shows as the mean fusion gate. Works on any leading shape.
    """

    def __init__(self, a_dim: int, b_dim: int, d: int) -> None:
        super().__init__()
        # LayerNorm first: DINO CLS, SwAV and stream summaries live on very different scales.
        self.norm_a = nn.LayerNorm(a_dim)
        self.norm_b = nn.LayerNorm(b_dim)
        self.proj_a = nn.Linear(a_dim, d)
        self.proj_b = nn.Linear(b_dim, d)
        self.gate = nn.Linear(a_dim + b_dim, d)
        self.out_dim = d

    def project(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two projected inputs a' (..., d) and b' (..., d) that the output mixes."""
        return self.proj_a(self.norm_a(a)), self.proj_b(self.norm_b(b))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a (..., a_dim), b (..., b_dim) → out (..., d), gate (..., d) in (0, 1)."""
        pa, pb = self.project(a, b)
        g = torch.sigmoid(self.gate(torch.cat([self.norm_a(a), self.norm_b(b)], dim=-1)))
        return g * pa + (1 - g) * pb, g
