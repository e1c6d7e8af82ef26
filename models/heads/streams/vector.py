"""The generic head of one per-frame vector field: projection, temporal CNN and sequence attention.

Any cached (T, D) field that no registered head reads trains through this under its own name
(``--streams <field>``), so a new extraction stream needs no head code to be tried.
"""

from __future__ import annotations

import torch

from models.heads.attention import SequenceAttention
from models.heads.temporal import TemporalCNN

from .base import HeadStream


class VectorStream(HeadStream):
    reads = ()

    def __init__(self, field: str, shape: tuple[int, ...], hidden: int, dropout: float) -> None:
        super().__init__()
        self.field = field
        self.cnn = TemporalCNN(shape[0], hidden, 3, dropout=dropout)
        self.attention = SequenceAttention(self.cnn.out_dim, hidden=hidden)
        self.out_dim = self.cnn.out_dim

    def forward(
        self, inputs: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.cnn(inputs[self.field])  # (B, T, h)
        s, fw = self.attention(x, valid)  # (B, h), (B, T)
        return s, {f"{self.field}_frame_weights": fw}
