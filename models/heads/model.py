"""The gesture classifier: one head per chosen stream (models/heads/streams/), joined by gated fusion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from models.heads.derived import derived_shapes, raw_fields
from models.heads.fusion import GatedFusion
from models.heads.normalize import FeatureNorm
from models.heads.streams import build_head, claimed_fields, head_fields, registered_heads, resolve_streams


def cache_shapes(manifest: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Per-frame shape of every float field a cache manifest records, of any field a registered head reads
    whatever its dtype (a validity mask), and of every derived field its stored fields can feed
    (models/heads/derived.py): what heads can read."""
    fields = manifest["dims"]["fields"]
    claimed = claimed_fields()
    stored = {
        name: tuple(int(x) for x in spec["shape"])
        for name, spec in fields.items()
        if spec["dtype"] == "float" or name in claimed
    }
    return {**stored, **derived_shapes(fields)}


@dataclass(frozen=True)
class ModelArgs:
    """Everything needed to rebuild the model; stored in checkpoints as a plain dict.

    ``streams`` are head-stream names; ``inputs`` maps every cache field they read to its per-frame shape.
    """

    num_classes: int
    streams: tuple[str, ...]
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    hidden: int = 128
    dropout: float = 0.2
    kernel_size: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "streams", tuple(self.streams))
        object.__setattr__(self, "inputs", {k: tuple(v) for k, v in self.inputs.items()})
        if not self.streams:
            raise ValueError("a model needs at least one stream")

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "streams": list(self.streams),
            "inputs": {k: list(v) for k, v in self.inputs.items()},
            "hidden": self.hidden,
            "dropout": self.dropout,
            "kernel_size": self.kernel_size,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelArgs:
        return cls(**d)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], streams: str, hidden: int, dropout: float) -> ModelArgs:
        """Resolve ``--streams`` against the cache and read the input shapes from its manifest."""
        shapes = cache_shapes(manifest)
        names = resolve_streams(streams, shapes, manifest["dims"]["fields"])
        reads = [f for n in names for f in head_fields(n, shapes)]
        return cls(
            num_classes=len(manifest["class_names"]),
            streams=tuple(names),
            inputs={f: shapes[f] for f in dict.fromkeys(reads)},
            hidden=hidden,
            dropout=dropout,
        )


def input_fields(manifest: dict[str, Any], *choices: str) -> tuple[str, ...]:
    """The cache fields that these ``--streams`` choices read, resolved against this cache (sorted, once
    each); a choice the cache cannot feed raises ValueError naming the valid ones."""
    reads = {f for c in choices for f in ModelArgs.from_manifest(manifest, c, hidden=1, dropout=0.0).inputs}
    return tuple(sorted(reads))


class GestureModel(nn.Module):
    """Classifies a sequence from the cached features of the chosen streams.

    Only the modules of the used streams are built, so an ablation's checkpoint holds no untrained
    weights and its parameter count is honest. Stream summaries are folded left through gated fusion:
    ``fuse(fuse(s1, s2), s3)``; with the 12-channel and DINO⊕SwAV streams that is the original
    two-stream gate.
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        h = args.hidden
        heads = registered_heads()
        raw = raw_fields() | {  # masks stay 0/1 (the heads multiply by them); some heads read coordinates raw
            f
            for n in args.streams
            if n in heads and not heads[n].normalise
            for f in head_fields(n, args.inputs)
        }
        self.norms = nn.ModuleDict(
            {name: FeatureNorm(shape) for name, shape in args.inputs.items() if name not in raw}
        )
        self.heads = nn.ModuleDict(
            {name: build_head(name, args.inputs, h, args.dropout, args.kernel_size) for name in args.streams}
        )
        dims = [head.out_dim for head in self.heads.values()]
        self.fusions = nn.ModuleList()
        acc = dims[0]
        for d in dims[1:]:
            self.fusions.append(GatedFusion(acc, d, h))
            acc = h
        self.embed_dim = acc
        self.classifier = nn.Sequential(nn.Dropout(args.dropout), nn.Linear(self.embed_dim, args.num_classes))

    @classmethod
    def from_args(cls, args: dict[str, Any] | ModelArgs) -> GestureModel:
        return cls(args if isinstance(args, ModelArgs) else ModelArgs.from_dict(args))

    def set_statistics(self, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Fix the input standardisation from training-split statistics (see FeatureNorm)."""
        for name, (mean, std) in stats.items():
            if name in self.norms:  # a head that reads its fields raw normalises them itself
                self.norms[name].set_statistics(mean, std)

    @property
    def fields(self) -> tuple[str, ...]:
        """Cache fields (besides "valid") that forward needs."""
        return tuple(self.args.inputs)

    def forward(
        self, valid: torch.Tensor, **fields: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """valid (B, T) bool; one (B, T, *shape) tensor per field of ``self.fields``.

        Returns logits (B, classes) and an aux dict: "embedding" (B, d) for t-SNE, each head's own
        weights ("channel_weights" (B, T, 12) and "frame_weights" (B, T) from the 12-channel head,
        "frame_gate" (B, T, h) and "dino_frame_weights" (B, T) from DINO⊕SwAV, ...), and "stream_gate"
        (B, h), the first stream's share in the last fusion, when several streams are fused.
        """
        missing = [f for f in self.fields if fields.get(f) is None]
        if missing:
            raise ValueError(
                f"streams {list(self.args.streams)} need cache fields {missing}, which were not given"
            )
        valid = valid.bool()
        inputs = {
            name: self.norms[name](fields[name]) if name in self.norms else fields[name].float()
            for name in self.fields
        }
        aux: dict[str, torch.Tensor] = {}
        summaries = []
        for head in self.heads.values():
            s, extra = head(inputs, valid)
            for k, v in extra.items():
                aux.setdefault(k, v)
            summaries.append(s)
        emb = summaries[0]
        for fusion, s in zip(self.fusions, summaries[1:], strict=True):
            emb, aux["stream_gate"] = fusion(emb, s)  # (B, h), (B, h)
        aux["embedding"] = emb
        return self.classifier(emb), aux
