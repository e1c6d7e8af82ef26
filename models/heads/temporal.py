"""Temporal models over the frame axis: 1-D convolutions, then a residual BiLSTM."""

from __future__ import annotations

import torch
from torch import nn


class TemporalCNN(nn.Module):
    """Two 1-D convolutions over frames: short-range motion cues before the LSTM.

    The second block is residual so a deeper stack never does worse than the first layer.
    """

    def __init__(self, in_dim: int, hidden: int, kernel_size: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.inp = nn.Sequential(
            nn.Conv1d(in_dim, hidden, kernel_size, padding=pad),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
        )
        self.block = nn.Sequential(
            nn.Conv1d(hidden, hidden, kernel_size, padding=pad),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
        )
        self.out_dim = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) → (B, T, hidden)."""
        h = self.inp(x.transpose(1, 2))  # (B, hidden, T)
        h = h + self.block(h)
        return h.transpose(1, 2)


class ResidualLSTM(nn.Module):
    """Bidirectional LSTM plus a linear projection of its input (a residual path).

    The residual keeps gradients flowing to the CNN even while the LSTM is still
    untrained, which matters for the short schedules used on small gesture sets.
    """

    def __init__(self, in_dim: int, hidden: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            in_dim,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.residual = nn.Linear(in_dim, 2 * hidden)
        self.norm = nn.LayerNorm(2 * hidden)
        self.out_dim = 2 * hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, in_dim) → (B, T, 2 * hidden)."""
        out, _ = self.lstm(x)  # (B, T, 2 * hidden)
        return self.norm(out + self.residual(x))
