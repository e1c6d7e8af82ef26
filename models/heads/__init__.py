"""Trainable heads: channel/frame attention, temporal CNN + BiLSTM, gated fusion, the full model.

Nothing here imports an encoder: heads see only cached arrays (DESIGN §1).
"""

from __future__ import annotations

from models.heads.attention import ChannelAttention, SequenceAttention
from models.heads.fusion import GatedFusion
from models.heads.model import STREAM_FIELDS, GestureModel, ModelArgs
from models.heads.temporal import ResidualLSTM, TemporalCNN

__all__ = [
    "STREAM_FIELDS",
    "ChannelAttention",
    "GatedFusion",
    "GestureModel",
    "ModelArgs",
    "ResidualLSTM",
    "SequenceAttention",
    "TemporalCNN",
]
