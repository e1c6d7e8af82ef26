"""Head streams: the trainable encoder of one group of cached fields, fused by the gated fusion.

A head stream reads named cache fields and summarises a sequence into one vector (B, d). Each registered
head stream is one module in this package (``@register_head``); a cached per-frame vector field that no
registered head claims (a new extraction stream's ``(T, D)`` output, say) gets the generic temporal
encoder of vector.py under its own field name, so a new stream trains with no head code at all.
Which streams a run uses is ``--streams``: names joined by ',' or '+', or ``all``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import ClassVar

import torch
from torch import nn

from core.config import split_names

Shapes = Mapping[str, tuple[int, ...]]  # cache field -> per-frame shape (the N and T axes excluded)


class HeadStream(nn.Module):
    """Summarises the fields it reads: ``forward(inputs, valid) -> (summary (B, out_dim), aux)``."""

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]]
    order: ClassVar[int] = 100  # place in ``all`` and in the fusion fold (the first is the gate's "a")
    optional_reads: ClassVar[tuple[str, ...]] = ()  # also read when the cache has them (pose landmarks)
    normalise: ClassVar[bool] = True  # False: its fields come raw (masks, coordinates), no FeatureNorm
    in_all: ClassVar[bool] = True  # False: only when named, so ``all`` keeps meaning what it meant
    out_dim: int

    def forward(
        self, inputs: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


_HEADS: dict[str, type[HeadStream]] = {}


def register_head(cls: type[HeadStream]) -> type[HeadStream]:
    if cls.name in _HEADS:
        raise ValueError(f"head stream {cls.name!r} is registered twice")
    _HEADS[cls.name] = cls
    return cls


def registered_heads() -> dict[str, type[HeadStream]]:
    return dict(_HEADS)


def available_streams(shapes: Shapes) -> dict[str, tuple[str, ...]]:
    """Head stream name -> the fields it reads, for every stream this cache can feed.

    Registered heads whose fields are all present come first (they make up ``all``), then one generic
    entry per per-frame vector field that no registered head reads.
    """
    heads = sorted(_HEADS.items(), key=lambda item: (item[1].order, item[0]))
    out = {name: cls.reads for name, cls in heads if all(f in shapes for f in cls.reads)}
    claimed = claimed_fields()
    for field, shape in shapes.items():
        if field not in claimed and len(shape) == 1 and field not in out:
            out[field] = (field,)
    return out


def claimed_fields() -> set[str]:
    """Every field some registered head reads, required or optional (whatever its dtype)."""
    return {f for cls in _HEADS.values() for f in (*cls.reads, *cls.optional_reads)}


def head_fields(name: str, shapes: Shapes) -> tuple[str, ...]:
    """The fields the head stream ``name`` reads from a cache of these ``shapes``."""
    if name not in _HEADS:
        return (name,)
    cls = _HEADS[name]
    return (*cls.reads, *(f for f in cls.optional_reads if f in shapes))


def default_streams(shapes: Shapes) -> list[str]:
    """What ``--streams all`` means for this cache: every registered head it can feed (opt-in ones aside)."""
    return [name for name in available_streams(shapes) if name in _HEADS and _HEADS[name].in_all]


def resolve_streams(choice: str, shapes: Shapes, stored: Collection[str] = ()) -> list[str]:
    """``--streams`` text -> stream names, refusing what this cache cannot feed with the valid choices.

    Names are joined by ',' or '+': a sweep grid separates its values by commas, so 'twelve+hands' is how
    it names one combination (and how run folders are named). ``stored``: every field the cache holds, so a
    refused name that is stored but not trainable (boxes, attention maps) is not called missing."""
    available = available_streams(shapes)
    names = default_streams(shapes) if choice == "all" else split_names(choice)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        reasons = [_why_not_a_stream(n, available, {*shapes, *stored}) for n in unknown] or ["nothing chosen"]
        valid = ", ".join(["all", *available])
        raise ValueError(f"--streams {choice!r}: {'; '.join(reasons)}; valid: {valid}")
    return list(dict.fromkeys(names))


def _why_not_a_stream(name: str, available: Mapping[str, tuple[str, ...]], held: set[str]) -> str:
    """Why ``name`` is no stream of this cache, pointing at the head that reads it when one does: a field
    such as dino_cls is left out of the choices because the dino-swav head reads it, not because it is
    missing."""
    heads = sorted(
        (cls for cls in _HEADS.values() if name in (*cls.reads, *cls.optional_reads)),
        key=lambda cls: (cls.order, cls.name),
    )
    fed = [cls.name for cls in heads if cls.name in available]
    if fed:
        return f"{name} is read by the {fed[0]} head; use --streams {fed[0]}"
    if heads:
        return f"{name} is read by the {heads[0].name} head, which this cache cannot feed"
    if name in held:
        return f"{name} is in this cache but is no per-frame feature vector a head trains on"
    return f"{name} not in this cache"


def build_head(name: str, shapes: Shapes, hidden: int, dropout: float, kernel_size: int) -> HeadStream:
    """The head stream ``name``: a registered one, or the generic encoder of one vector field."""
    if name in _HEADS:
        return _HEADS[name](shapes, hidden, dropout, kernel_size)
    from .vector import VectorStream

    return VectorStream(name, shapes[name], hidden, dropout)
