"""Frozen encoders behind one registry: ``create_encoder(name, weights, seed, revision)``.

Importing this package imports every module in it, and each module registers its encoders with
``@register_encoder``: adding an encoder is adding a file. Heavy libraries (timm, transformers,
ultralytics) are imported only when an encoder of theirs is built.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    DinoOutput,
    Encoder,
    EncoderSpec,
    HandOutput,
    PreprocessConfig,
    create_encoder,
    encoder_identity,
    encoder_spec,
    list_encoders,
    register_encoder,
    unregister_encoder,
)
from .weights import LocalWeights, WeightSource

_SUPPORT = {"base", "weights", "digest"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SUPPORT:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "DinoOutput",
    "Encoder",
    "EncoderSpec",
    "HandOutput",
    "LocalWeights",
    "PreprocessConfig",
    "WeightSource",
    "create_encoder",
    "encoder_identity",
    "encoder_spec",
    "list_encoders",
    "register_encoder",
    "unregister_encoder",
]
