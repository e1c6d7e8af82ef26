"""Extraction streams: every module in this package registers one stream with ``@register_stream``.

Adding a stream is adding a file here (see base.py for what it declares); nothing lists streams by hand.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    NONE,
    FrameBatch,
    Stream,
    StreamOptions,
    active_streams,
    get_stream,
    ignored_options,
    list_streams,
    parse_assignments,
    preset_models,
    presets,
    register_stream,
    resolve_models,
    resolve_revisions,
    role_kind,
    roles,
    running_models,
    stream_fields,
    unregister_stream,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "NONE",
    "FrameBatch",
    "Stream",
    "StreamOptions",
    "active_streams",
    "get_stream",
    "ignored_options",
    "list_streams",
    "parse_assignments",
    "preset_models",
    "presets",
    "register_stream",
    "resolve_models",
    "resolve_revisions",
    "role_kind",
    "roles",
    "running_models",
    "stream_fields",
    "unregister_stream",
]
