"""The hand-mask head: per frame, the DINO tokens pooled inside each hand mask, then over time.

Reads ``mask_dino`` (T, 2, Dd) from the masks extraction stream. The two hand slots (left and right in
the image) are concatenated per frame, so the head sees which hand is where; then a temporal CNN and
attention pooling over frames, like the generic vector head.
"""

from __future__ import annotations

import torch

from models.heads.attention import SequenceAttention
from models.heads.temporal import TemporalCNN

from .base import HeadStream, Shapes, register_head


@register_head
class MaskStream(HeadStream):
    name = "masks"
    order = 3
    reads = ("mask_dino",)

    def __init__(self, shapes: Shapes, hidden: int, dropout: float, kernel_size: int) -> None:
        super().__init__()
        slots, dim = shapes["mask_dino"]
        self.cnn = TemporalCNN(slots * dim, hidden, kernel_size, dropout=dropout)
        self.attention = SequenceAttention(self.cnn.out_dim, hidden=hidden)
        self.out_dim = self.cnn.out_dim

    def forward(
        self, inputs: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.cnn(inputs["mask_dino"].flatten(2))  # (B, T, 2, Dd) -> (B, T, 2 Dd) -> (B, T, h)
        s, fw = self.attention(x, valid)  # (B, h), (B, T)
        return s, {"mask_frame_weights": fw}
