"""Frozen encoders behind one registry: ``create_encoder(name, weights, seed)``.

Importing this package registers every encoder; heavy libraries (timm, transformers, ultralytics) are
imported only when an encoder of theirs is built.
"""

from __future__ import annotations

from . import cnn, dino, hands, swav, vit  # noqa: F401  (registration side effect)
from .base import (
    PRESETS,
    ROLES,
    DinoOutput,
    Encoder,
    EncoderSpec,
    HandOutput,
    PreprocessConfig,
    create_encoder,
    encoder_spec,
    list_encoders,
    register_encoder,
)

__all__ = [
    "PRESETS",
    "ROLES",
    "DinoOutput",
    "Encoder",
    "EncoderSpec",
    "HandOutput",
    "PreprocessConfig",
    "create_encoder",
    "encoder_spec",
    "list_encoders",
    "register_encoder",
]
