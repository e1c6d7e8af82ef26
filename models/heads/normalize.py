"""Input standardisation with training-set statistics, stored in the model's state dict."""

from __future__ import annotations

import torch
from torch import nn


class FeatureNorm(nn.Module):
    """(x - mean) / std per feature, with mean and std fitted once on the training split.

    Frozen-encoder features differ in scale by orders of magnitude between streams and channels (a
    ViT mean token vs a ResNeXt chunk, pretrained vs random weights). Without this the attention
    and LSTM see near-constant inputs for the small channels and barely learn. The statistics are
    buffers, so checkpoints carry them and evaluate/predict normalise exactly as training did.
    """

    def __init__(self, shape: tuple[int, ...], eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(self.eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std  # broadcast over leading (B, T) axes


@torch.no_grad()
def feature_statistics(
    batches, fields: tuple[str, ...], max_sequences: int = 4096
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Mean and std of each field over the valid frames of up to ``max_sequences`` sequences.

    ``batches`` yields dicts with the fields as (B, T, ...) float tensors and "valid" (B, T).
    Sums are kept in float64 so long datasets do not lose precision.
    """
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    count, seen = 0, 0
    for batch in batches:
        valid = batch["valid"].bool()
        for name in fields:
            x = batch[name][valid].double()  # (frames, ...)
            sums[name] = sums.get(name, 0) + x.sum(0)
            squares[name] = squares.get(name, 0) + (x * x).sum(0)
        count += int(valid.sum())
        seen += valid.shape[0]
        if seen >= max_sequences:
            break
    if count == 0:
        raise ValueError("no valid frames to compute feature statistics from")
    out = {}
    for name in fields:
        mean = sums[name] / count
        var = (squares[name] / count - mean * mean).clamp_min(0)
        out[name] = (mean.float(), var.sqrt().float())
    return out
