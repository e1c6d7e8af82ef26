"""A spatio-temporal graph convolution network over hand (and pose) landmarks.

The landmark system's configuration: graph convolutions of 64/128/128 channels over MediaPipe's 21-joint
hand skeleton (the two hands joined at the wrists; the 33 pose joints, when present, joined to the
hands at the pose wrists), each followed by a temporal convolution of kernel 3 with dilations 1/2/3;
joints pooled per frame over the valid ones, a BiGRU of 256 over the frames, and attention pooling over
the valid frames. Missing hands are masked: their joints are zero, flagged invalid, and left out of the
per-frame pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from models.heads.attention import SequenceAttention

HAND_JOINTS = 21
POSE_JOINTS = 33
# MediaPipe's hand skeleton: wrist 0, thumb 1-4, index 5-8, middle 9-12, ring 13-16, little 17-20.
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip
# MediaPipe's pose skeleton (its POSE_CONNECTIONS); 15 and 16 are the left and right wrists.
POSE_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13), (13, 15),
    (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31),
    (30, 32), (27, 31), (28, 32),
)  # fmt: skip
POSE_WRISTS = (15, 16)


def hand_graph(pose: bool = False) -> torch.Tensor:
    """Symmetrically normalised adjacency with self loops, D^-1/2 (A + I) D^-1/2: (V, V).

    Joints 0-20 are the left hand, 21-41 the right, 42-74 the pose when ``pose``."""
    v = 2 * HAND_JOINTS + (POSE_JOINTS if pose else 0)
    edges = [(a + o, b + o) for o in (0, HAND_JOINTS) for a, b in HAND_EDGES]
    edges.append((0, HAND_JOINTS))  # the two wrists
    if pose:
        p = 2 * HAND_JOINTS
        edges += [(a + p, b + p) for a, b in POSE_EDGES]
        edges += [(0, p + POSE_WRISTS[0]), (HAND_JOINTS, p + POSE_WRISTS[1])]
    a = torch.eye(v)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of every (frame, joint): no batch statistics, so a head trained for a
    few hundred steps on a small set evaluates exactly as it trained (BatchNorm's running means lag)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, C, T, V)


class GraphConv(nn.Module):
    """Mixes each joint with its neighbours (a learnable weight per edge, as ST-GCN), then projects."""

    def __init__(self, cin: int, cout: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency)
        self.importance = nn.Parameter(torch.ones_like(adjacency))
        self.proj = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, T, V) -> (B, C', T, V)."""
        return torch.einsum("bctv,vw->bctw", self.proj(x), self.adjacency * self.importance)


class STBlock(nn.Module):
    """Graph convolution, then a dilated temporal convolution per joint, with a residual path."""

    def __init__(
        self, cin: int, cout: int, adjacency: torch.Tensor, kernel: int, dilation: int, dropout: float
    ):
        super().__init__()
        self.gcn = GraphConv(cin, cout, adjacency)
        self.tcn = nn.Sequential(
            ChannelNorm(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(
                cout, cout, (kernel, 1), padding=(dilation * (kernel - 1) // 2, 0), dilation=(dilation, 1)
            ),
            ChannelNorm(cout),
            nn.Dropout(dropout),
        )
        self.residual = (
            nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1), ChannelNorm(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.tcn(self.gcn(x)) + self.residual(x))  # (B, C', T, V)


class STGCN(nn.Module):
    """(B, T, V, C) joints with (B, T, V) validity -> a sequence summary (B, 2 * gru) and frame weights."""

    def __init__(
        self,
        in_channels: int,
        adjacency: torch.Tensor,
        channels: tuple[int, ...] = (64, 128, 128),
        kernel: int = 3,
        dilations: tuple[int, ...] = (1, 2, 3),
        gru: int = 256,
        dropout: float = 0.1,
        attention_hidden: int = 128,
    ) -> None:
        super().__init__()
        v = adjacency.shape[0]
        # ST-GCN's input normalisation: a BatchNorm statistic per joint and coordinate. The inputs' own
        # distribution does not move while training, so its running statistics settle within an epoch.
        self.data_norm = nn.BatchNorm1d(in_channels * v)
        widths = (in_channels, *channels)
        self.blocks = nn.Sequential(
            *(
                STBlock(widths[i], widths[i + 1], adjacency, kernel, d, dropout)
                for i, d in enumerate(dilations)
            )
        )
        self.gru = nn.GRU(channels[-1], gru, batch_first=True, bidirectional=True)
        self.attention = SequenceAttention(2 * gru, hidden=attention_hidden)
        self.out_dim = 2 * gru

    def forward(
        self, joints: torch.Tensor, joint_valid: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """joints (B, T, V, C), joint_valid (B, T, V) bool, valid (B, T) bool -> (B, 2g), weights (B, T)."""
        b, t, v, c = joints.shape
        x = self.data_norm(joints.permute(0, 2, 3, 1).reshape(b, v * c, t))  # (B, V*C, T)
        h = self.blocks(x.reshape(b, v, c, t).permute(0, 2, 3, 1))  # (B, C', T, V)
        m = joint_valid.unsqueeze(1).to(h.dtype)  # (B, 1, T, V)
        frames = (h * m).sum(-1) / m.sum(-1).clamp_min(1.0)  # (B, C', T): mean over the valid joints
        seq, _ = self.gru(frames.transpose(1, 2))  # (B, T, 2g)
        seen = valid & joint_valid.any(-1)  # (B, T): frames with some landmark
        seen = torch.where(seen.any(1, keepdim=True), seen, valid)  # none at all: every valid frame
        return self.attention(seq, seen)
