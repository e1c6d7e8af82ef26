"""FLOPs per frame of the whole extractor, counted by torch's FlopCounterMode.

FlopCounterMode has formulas for the CUDA fused-attention ops but not for the CPU one
(``aten._scaled_dot_product_flash_attention_for_cpu``), so on CPU the ViTs' attention matmuls would
silently count as zero. They are added here with torch's own SDPA formula, and ``attention_check``
verifies it: the same ViT counted with the explicit (eager) attention path must give the same total.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from extract.encode import FrameEncoder

aten = torch.ops.aten


def _sdpa_cpu_flop(query, key, value, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return sdpa_flop_count(query, key, value)  # q @ k^T and p @ v; shapes (B, H, S, E)


def counter() -> FlopCounterMode:
    """A FlopCounterMode that also counts CPU fused attention."""
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop}
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _by_role(counts: dict[str, dict[Any, int]], encoders: dict[str, torch.nn.Module]) -> dict[str, float]:
    """GFLOP per top-level encoder module; FlopCounterMode names a top-level module by its class."""
    out: dict[str, float] = {}
    for role, enc in encoders.items():
        ops = counts.get(type(enc).__name__, {})
        out[role] = sum(ops.values()) / 1e9
    return out


def frame_gflop(frame_encoder: FrameEncoder, frame: torch.Tensor) -> dict[str, Any]:
    """GFLOP of one frame through every encoder and view: total, per role (all views of that role).

    ``frame`` is (1, S, S, 3) uint8, as the extractor sees it.
    """
    with counter() as fc:
        frame_encoder(frame)
    counts = fc.get_flop_counts()
    by_role = _by_role(counts, frame_encoder.encoders)
    return {
        "total": fc.get_total_flops() / 1e9,
        "by_role": by_role,
        "by_op": {str(op): n / 1e9 for op, n in counts["Global"].items()},
    }


def _eager_vit(enc: torch.nn.Module) -> torch.nn.Module:
    """A copy of a ViT encoder whose attention runs as explicit matmuls (counted by FlopCounterMode)."""
    eager = copy.deepcopy(enc)
    model = eager.model
    if hasattr(model, "config") and hasattr(model.config, "_attn_implementation"):  # transformers
        model.config._attn_implementation = "eager"
        for module in model.modules():
            if hasattr(module, "config"):
                module.config._attn_implementation = "eager"
    for module in model.modules():  # timm
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return eager


def attention_check(enc: torch.nn.Module) -> dict[str, float]:
    """GFLOP of one image through ``enc`` counted three ways: fused SDPA without and with the CPU
    attention formula, and the explicit eager path. The added formula is right when the last two match."""
    h, w = enc.preprocess.input_size
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))  # the same on any device
    x = enc.prepare(image.to(next(enc.parameters()).device))
    out: dict[str, float] = {}
    with torch.inference_mode():
        with FlopCounterMode(display=False) as plain:
            enc(x)
        with counter() as fused:
            enc(x)
        with FlopCounterMode(display=False) as eager:
            _eager_vit(enc)(x)
    out["stock_counter"] = plain.get_total_flops() / 1e9
    out["with_sdpa_formula"] = fused.get_total_flops() / 1e9
    out["eager_attention"] = eager.get_total_flops() / 1e9
    return out
