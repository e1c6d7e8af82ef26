"""The DINO⊕SwAV head: per-frame gated fusion of the DINO CLS token and the SwAV crop feature."""

from __future__ import annotations

import torch

from models.heads.attention import SequenceAttention
from models.heads.fusion import GatedFusion

from .base import HeadStream, Shapes, register_head


@register_head
class DinoSwavStream(HeadStream):
    name = "dino-swav"
    order = 1
    reads = ("dino_cls", "swav")

    def __init__(self, shapes: Shapes, hidden: int, dropout: float, kernel_size: int) -> None:
        super().__init__()
        self.frame_fusion = GatedFusion(shapes["dino_cls"][0], shapes["swav"][0], hidden)
        self.attention = SequenceAttention(hidden, hidden=hidden)
        self.out_dim = hidden

    def forward(
        self, inputs: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f, fg = self.frame_fusion(
            inputs["dino_cls"], inputs["swav"]
        )  # (B, T, h) fused frames, (B, T, h) gate
        s, fw = self.attention(f, valid)  # (B, h), (B, T)
        return s, {"frame_gate": fg, "dino_frame_weights": fw, "frame_weights": fw}
