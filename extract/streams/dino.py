"""The DINO stream: the CLS token and the last block's CLS->patch attention map (mean over heads).

Writes ``dino_cls`` (Dd,) and ``dino_attention`` (h, w); with ``--dino-heads`` also
``dino_attention_heads`` (H, h, w), one map per head, so each head can be inspected. The grid follows
the flavour's patch and input size (14x14 for /16 at 224, 28x28 for /8, 16x16 for DINOv2's /14).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cache.schema import FieldSpec

from .base import FrameBatch, Stream, StreamOptions, register_stream


@register_stream
class Dino(Stream):
    name = "dino"
    models = {"dino": {"full": "dino_vit_s16", "tiny": "tiny_dino"}}
    reads = ("dino_heads",)

    def key(self, options: StreamOptions) -> dict[str, Any]:
        return {"heads": options.dino_heads}

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        enc = encoders["dino"]
        out = [FieldSpec("dino_cls", (enc.out_dim,)), FieldSpec("dino_attention", tuple(enc.attn_hw))]
        if options.dino_heads:
            out.append(FieldSpec("dino_attention_heads", (enc.num_heads, *enc.attn_hw)))
        return tuple(out)

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        out = batch.run("dino", batch.frames)
        fields = {"dino_cls": out.cls, "dino_attention": out.attention}  # (N, Dd), (N, h, w)
        fields["dino_patches"] = out.patches  # (N, h, w, Dd): not stored, read by the masks stream
        if batch.options.dino_heads:
            fields["dino_attention_heads"] = out.heads  # (N, H, h, w)
        return fields
