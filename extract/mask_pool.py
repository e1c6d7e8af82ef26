"""Hand-focused DINO features: the patch tokens averaged inside each hand mask.

Each 64x64 mask is reduced to the patch grid by area (the share of each patch the mask covers), and the
patch tokens are averaged with those shares as weights: a patch half inside the hand counts half. A hand
without mask pixels gets a zero vector (the cache's ``mask_valid`` says which are real).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mask_coverage(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(N, K, S, S) bool -> (N, K, h, w) share of each patch that the mask covers, in [0, 1]."""
    return F.adaptive_avg_pool2d(masks.float(), grid)


def mask_pool(tokens: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Coverage-weighted mean of patch tokens per mask: (N, h, w, D), (N, K, S, S) -> (N, K, D)."""
    n, h, w, d = tokens.shape
    weights = mask_coverage(masks, (h, w)).flatten(2)  # (N, K, h*w)
    total = weights.sum(2, keepdim=True)  # (N, K, 1)
    pooled = weights @ tokens.reshape(n, h * w, d).float()  # (N, K, D)
    return torch.where(total > 0, pooled / total.clamp_min(1e-12), torch.zeros_like(pooled))
