"""Trainable heads: channel/frame attention, temporal CNN + BiLSTM, gated fusion, the full model.

Nothing here imports an encoder: heads see only cached arrays (DESIGN §1).
"""

from __future__ import annotations

from models.heads.attention import ChannelAttention, SequenceAttention
from models.heads.fusion import GatedFusion
from models.heads.model import GestureModel, ModelArgs, cache_shapes
from models.heads.temporal import ResidualLSTM, TemporalCNN

__all__ = [
    "ChannelAttention",
    "GatedFusion",
    "GestureModel",
    "ModelArgs",
    "ResidualLSTM",
    "SequenceAttention",
    "TemporalCNN",
    "cache_shapes",
]
