"""The 12-channel head: channel attention, temporal CNN, residual BiLSTM and sequence attention."""

from __future__ import annotations

import torch
from torch import nn

from models.heads.attention import ChannelAttention, SequenceAttention
from models.heads.temporal import ResidualLSTM, TemporalCNN

from .base import HeadStream, Shapes, register_head


@register_head
class TwelveStream(HeadStream):
    name = "twelve"
    order = 0
    reads = ("embeddings",)

    def __init__(self, shapes: Shapes, hidden: int, dropout: float, kernel_size: int) -> None:
        super().__init__()
        channels, dim = shapes["embeddings"]
        self.channel_attention = ChannelAttention(dim, channels, hidden=hidden)
        self.channel_dropout = nn.Dropout(dropout)
        self.cnn = TemporalCNN(dim, hidden, kernel_size, dropout=dropout)
        self.lstm = ResidualLSTM(self.cnn.out_dim, hidden)
        self.frame_attention = SequenceAttention(self.lstm.out_dim, hidden=hidden)
        self.out_dim = self.lstm.out_dim

    def forward(
        self, inputs: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, cw = self.channel_attention(inputs["embeddings"])  # (B, T, D), (B, T, 12)
        x = self.lstm(self.cnn(self.channel_dropout(x)))  # (B, T, 2h)
        s, fw = self.frame_attention(x, valid)  # (B, 2h), (B, T)
        return s, {"channel_weights": cw, "frame_weights": fw}
