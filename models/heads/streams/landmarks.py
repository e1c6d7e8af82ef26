"""The landmark head: an ST-GCN (models/heads/stgcn.py) over the two hands' 21 landmarks, plus the pose.

Reads ``landmarks`` (T, 2, 21, 3) and ``landmark_valid`` (T, 2) from ``--landmarks`` extraction, and
``pose`` (T, 33, 3) with ``pose_valid`` (T,) when the cache has them. The fields come raw (no FeatureNorm):
a validity mask must stay a mask, and the network normalises coordinates per joint itself. Each joint
gets (x - 0.5, y - 0.5, z, valid), with zeros where its hand is missing.
"""

from __future__ import annotations

import torch

from models.heads.stgcn import HAND_JOINTS, STGCN, hand_graph

from .base import HeadStream, Shapes, register_head


def joints_of(inputs: dict[str, torch.Tensor], pose: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The fields as graph joints: (B, T, V, 4) features and (B, T, V) bool validity."""
    hands = inputs["landmarks"]  # (B, T, 2, 21, 3)
    hv = inputs["landmark_valid"] > 0.5  # (B, T, 2)
    points, ok = (
        [hands.flatten(2, 3)],
        [hv.repeat_interleave(HAND_JOINTS, dim=2)],
    )  # (B, T, 42, 3), (B, T, 42)
    if pose:
        body = inputs["pose"]  # (B, T, 33, 3)
        points.append(body)
        ok.append((inputs["pose_valid"] > 0.5).unsqueeze(-1).expand(*body.shape[:3]))  # (B, T, 33)
    xyz, valid = torch.cat(points, 2), torch.cat(ok, 2)
    xyz = xyz - xyz.new_tensor([0.5, 0.5, 0.0])  # image-normalised x, y centred on the frame
    features = torch.cat([xyz, valid.unsqueeze(-1).to(xyz.dtype)], -1) * valid.unsqueeze(-1)  # (B, T, V, 4)
    return features, valid


@register_head
class LandmarkStream(HeadStream):
    name = "landmarks"
    order = 3
    reads = ("landmarks", "landmark_valid")
    optional_reads = ("pose", "pose_valid")
    normalise = False

    def __init__(self, shapes: Shapes, hidden: int, dropout: float, kernel_size: int) -> None:
        super().__init__()
        self.pose = "pose" in shapes and "pose_valid" in shapes
        self.net = STGCN(
            4, hand_graph(self.pose), kernel=kernel_size, dropout=dropout, attention_hidden=hidden
        )
        self.out_dim = self.net.out_dim

    def forward(
        self, inputs: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features, joint_valid = joints_of(inputs, self.pose)
        s, fw = self.net(features, joint_valid, valid)  # (B, 2g), (B, T)
        return s, {"landmark_frame_weights": fw}
