"""Head streams: every module in this package registers one with ``@register_head`` (see base.py)."""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    HeadStream,
    available_streams,
    build_head,
    claimed_fields,
    default_streams,
    head_fields,
    register_head,
    registered_heads,
    resolve_streams,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "vector"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "HeadStream",
    "available_streams",
    "build_head",
    "claimed_fields",
    "default_streams",
    "head_fields",
    "register_head",
    "registered_heads",
    "resolve_streams",
]
