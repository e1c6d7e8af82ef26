"""The hand-motion head (``--streams hands``): where up to two tracked hands are and how they move.

It reads two derived fields, computed once per sequence from the stored boxes when the cache is read
(models/hand_motion.py; no re-extraction): ``hand_motion`` (T, 2, 7) centre, size, velocity and confidence
per tracked hand, and ``hand_mask`` (T, 2, 2) whether the hand was seen and whether it has a velocity.
The boxes are the detector's (``hand_boxes``), or a corpus' own annotated boxes when the cache holds no
detections (the demo's generator boxes, ``annotated_boxes``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from models.hand_motion import FEATURES, MASKS, SLOTS, VELOCITY, hand_motion
from models.heads.attention import SequenceAttention
from models.heads.derived import Derivation, register_derived
from models.heads.temporal import TemporalCNN
from models.tracking import BOX_SOURCES

from .base import HeadStream, Shapes, register_head


def _derive(stored: Mapping[str, np.ndarray], valid: np.ndarray) -> dict[str, np.ndarray]:
    boxes, count = next(pair for pair in BOX_SOURCES if pair[0] in stored)  # the source the reader gave
    motion, mask = hand_motion(stored[boxes], stored[count], valid)
    return {"hand_motion": motion, "hand_mask": mask}


register_derived(
    Derivation(
        outputs={"hand_motion": (SLOTS, len(FEATURES)), "hand_mask": (SLOTS, len(MASKS))},
        sources=BOX_SOURCES,
        compute=_derive,
        raw=frozenset({"hand_mask"}),
    )
)


@register_head
class HandsStream(HeadStream):
    name = "hands"
    order = 2
    reads = ("hand_motion", "hand_mask")
    in_all = False  # opt-in: `all` on an existing cache trains the model it trained before

    def __init__(self, shapes: Shapes, hidden: int, dropout: float, kernel_size: int) -> None:
        super().__init__()
        slots, features = shapes["hand_motion"]
        masks = shapes["hand_mask"][-1]
        self.cnn = TemporalCNN(slots * (features + masks), hidden, kernel_size, dropout=dropout)
        self.attention = SequenceAttention(self.cnn.out_dim, hidden=hidden)
        self.out_dim = self.cnn.out_dim

    def forward(
        self, inputs: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, mask = inputs["hand_motion"], inputs["hand_mask"]  # (B, T, S, F) standardised, (B, T, S, 2)
        keep = mask[..., :1].expand_as(x).clone()  # (B, T, S, F): a missing hand contributes nothing ...
        keep[..., VELOCITY] *= mask[..., 1:2]  # ... and a velocity needs the frame before
        x = torch.cat([x * keep, mask], dim=-1).flatten(2)  # (B, T, S * (F + 2)): the mask says what is
        s, fw = self.attention(self.cnn(x), valid)  # (B, h), (B, T)
        return s, {"hands_frame_weights": fw}
