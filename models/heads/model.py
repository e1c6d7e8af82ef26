"""The full gesture classifier: 12-channel CNN-BiLSTM stream, DINO⊕SwAV stream, gated fusion."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from models.heads.attention import ChannelAttention, SequenceAttention
from models.heads.fusion import GatedFusion
from models.heads.normalize import FeatureNorm
from models.heads.temporal import ResidualLSTM, TemporalCNN

# Cache fields each stream choice reads; ablations run from one cache by picking a key.
STREAM_FIELDS: dict[str, tuple[str, ...]] = {
    "all": ("embeddings", "dino_cls", "swav"),
    "twelve": ("embeddings",),
    "dino-swav": ("dino_cls", "swav"),
}


@dataclass(frozen=True)
class ModelArgs:
    """Everything needed to rebuild the model; stored in checkpoints as a plain dict."""

    num_classes: int
    streams: str = "all"
    embed_dim: int = 768  # D of the 12-channel block
    num_channels: int = 12
    dino_dim: int = 384
    swav_dim: int = 2048
    hidden: int = 128
    dropout: float = 0.2
    kernel_size: int = 3

    def __post_init__(self) -> None:
        if self.streams not in STREAM_FIELDS:
            raise ValueError(f"streams must be one of {sorted(STREAM_FIELDS)}, got {self.streams!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelArgs:
        return cls(**d)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], streams: str, hidden: int, dropout: float) -> ModelArgs:
        """Read the input dims from a cache manifest so the heads match the stored arrays."""
        dims = manifest["dims"]
        return cls(
            num_classes=len(manifest["class_names"]),
            streams=streams,
            embed_dim=int(dims["embed_dim"]),
            num_channels=len(manifest["channel_layout"]),
            dino_dim=int(dims["dino_dim"]),
            swav_dim=int(dims["swav_dim"]),
            hidden=hidden,
            dropout=dropout,
        )


class GestureModel(nn.Module):
    """Classifies a sequence from the cached features of the chosen streams.

    Only the modules of the used streams are built, so an ablation's checkpoint holds no
    untrained weights and its parameter count is honest.
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        h = args.hidden
        self.uses_twelve = args.streams in ("all", "twelve")
        self.uses_dino_swav = args.streams in ("all", "dino-swav")
        summary_dims = []
        shapes = {
            "embeddings": (args.num_channels, args.embed_dim),
            "dino_cls": (args.dino_dim,),
            "swav": (args.swav_dim,),
        }
        self.norms = nn.ModuleDict({name: FeatureNorm(shapes[name]) for name in STREAM_FIELDS[args.streams]})
        if self.uses_twelve:
            self.channel_attention = ChannelAttention(args.embed_dim, args.num_channels, hidden=h)
            self.channel_dropout = nn.Dropout(args.dropout)
            self.cnn = TemporalCNN(args.embed_dim, h, args.kernel_size, dropout=args.dropout)
            self.lstm = ResidualLSTM(self.cnn.out_dim, h)
            self.frame_attention = SequenceAttention(self.lstm.out_dim, hidden=h)
            summary_dims.append(self.lstm.out_dim)
        if self.uses_dino_swav:
            self.frame_fusion = GatedFusion(args.dino_dim, args.swav_dim, h)
            self.dino_swav_attention = SequenceAttention(h, hidden=h)
            summary_dims.append(h)
        if args.streams == "all":
            self.stream_fusion = GatedFusion(summary_dims[0], summary_dims[1], h)
            self.embed_dim = h
        else:
            self.embed_dim = summary_dims[0]
        self.classifier = nn.Sequential(nn.Dropout(args.dropout), nn.Linear(self.embed_dim, args.num_classes))

    @classmethod
    def from_args(cls, args: dict[str, Any] | ModelArgs) -> GestureModel:
        return cls(args if isinstance(args, ModelArgs) else ModelArgs.from_dict(args))

    def set_statistics(self, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Fix the input standardisation from training-split statistics (see FeatureNorm)."""
        for name, (mean, std) in stats.items():
            self.norms[name].set_statistics(mean, std)

    @property
    def fields(self) -> tuple[str, ...]:
        """Cache fields (besides "valid") that forward needs."""
        return STREAM_FIELDS[self.args.streams]

    def forward(
        self,
        valid: torch.Tensor,
        embeddings: torch.Tensor | None = None,
        dino_cls: torch.Tensor | None = None,
        swav: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """valid (B, T) bool; embeddings (B, T, 12, D); dino_cls (B, T, Dd); swav (B, T, S).

        Returns logits (B, classes) and an aux dict: "embedding" (B, d) for t-SNE,
        "channel_weights" (B, T, 12), "frame_weights" (B, T) (12-channel stream when used),
        "dino_frame_weights" (B, T), "frame_gate" (B, T, h) (DINO share per frame) and
        "stream_gate" (B, h) (12-channel share), each when its stream is used.
        """
        valid = valid.bool()
        aux: dict[str, torch.Tensor] = {}
        summaries = []
        if self.uses_twelve:
            if embeddings is None:
                raise ValueError("streams include 'twelve' but no embeddings were given")
            x, cw = self.channel_attention(self.norms["embeddings"](embeddings))  # (B, T, D), (B, T, 12)
            x = self.lstm(self.cnn(self.channel_dropout(x)))  # (B, T, 2h)
            s, fw = self.frame_attention(x, valid)  # (B, 2h), (B, T)
            aux["channel_weights"], aux["frame_weights"] = cw, fw
            summaries.append(s)
        if self.uses_dino_swav:
            if dino_cls is None or swav is None:
                raise ValueError("streams include 'dino-swav' but dino_cls/swav were not given")
            # (B, T, h) fused frames, (B, T, h) gate
            f, fg = self.frame_fusion(self.norms["dino_cls"](dino_cls), self.norms["swav"](swav))
            s, fw = self.dino_swav_attention(f, valid)  # (B, h), (B, T)
            aux["frame_gate"], aux["dino_frame_weights"] = fg, fw
            aux.setdefault("frame_weights", fw)
            summaries.append(s)
        if len(summaries) == 2:
            emb, sg = self.stream_fusion(summaries[0], summaries[1])  # (B, h), (B, h)
            aux["stream_gate"] = sg
        else:
            emb = summaries[0]
        aux["embedding"] = emb
        return self.classifier(emb), aux
