"""HDF5 schema v1: field names, shapes, dtypes, storage settings and root attributes.

Every writer (shards, split assembly) and every reader goes through this module, so
the format is defined once. See DESIGN §5.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 1
NUM_CHANNELS = 12
CNN_CHUNKS = 3
ID_BYTES = 256  # fixed-length sequence ids; longer ids are a user error
GZIP_LEVEL = 4

# Channel order of the 12-channel embedding (DESIGN §3). Keep it exact.
CHANNEL_NAMES: tuple[str, ...] = (
    "left_vit",
    "right_vit",
    "left_cnn_0",
    "left_cnn_1",
    "left_cnn_2",
    "right_cnn_0",
    "right_cnn_1",
    "right_cnn_2",
    "whole_vit",
    "whole_cnn_0",
    "whole_cnn_1",
    "whole_cnn_2",
)
assert len(CHANNEL_NAMES) == NUM_CHANNELS

FLOAT_FIELDS = ("embeddings", "dino_cls", "dino_attention", "swav")


@dataclass(frozen=True)
class Dims:
    """Sizes that fix every dataset's shape for one extraction key."""

    frames: int  # T
    embed_dim: int  # D
    dino_dim: int  # Dd
    attn_hw: tuple[int, int]  # (h, w) of the DINO patch grid
    swav_dim: int
    max_hands: int  # K
    float_dtype: str = "float16"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "attn_hw": list(self.attn_hw)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Dims:
        """Dims from a manifest or attribute; wrong types or sizes raise ValueError (files are untrusted)."""
        dims = cls(**{**d, "attn_hw": tuple(d["attn_hw"])})
        sizes = (dims.frames, dims.embed_dim, dims.dino_dim, *dims.attn_hw, dims.swav_dim, dims.max_hands)
        if (
            len(dims.attn_hw) != 2
            or not all(type(v) is int and v >= 0 for v in sizes)
            or dims.frames < 1
            or dims.float_dtype not in ("float16", "float32")
        ):
            raise ValueError("dims: sizes must be whole numbers and float_dtype float16 or float32")
        return dims


def field_specs(dims: Dims) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per-sequence shape and dtype of every dataset (the leading N axis excluded)."""
    t, fdt = dims.frames, np.dtype(dims.float_dtype)
    return {
        "embeddings": ((t, NUM_CHANNELS, dims.embed_dim), fdt),
        "dino_cls": ((t, dims.dino_dim), fdt),
        "dino_attention": ((t, *dims.attn_hw), fdt),
        "swav": ((t, dims.swav_dim), fdt),
        "swav_boxes": ((t, 4), np.dtype("float32")),
        "hand_boxes": ((t, dims.max_hands, 6), np.dtype("float32")),
        "hand_count": ((t,), np.dtype("uint8")),
        "labels": ((), np.dtype("int64")),
        "frame_indices": ((t,), np.dtype("int32")),
        "valid": ((t,), np.dtype("uint8")),
        "sequence_ids": ((), np.dtype(f"S{ID_BYTES}")),
        "content_ids": ((), np.dtype("S64")),
        "aug_index": ((), np.dtype("int16")),
    }


def create_datasets(h5: h5py.File, n: int, dims: Dims) -> dict[str, h5py.Dataset]:
    """Create every field for ``n`` sequences with one-sequence chunks, shuffle and gzip-4.

    Scalar-per-sequence fields (labels, ids) are small and stored in one chunk each.
    """
    out = {}
    for name, (shape, dtype) in field_specs(dims).items():
        if shape:
            out[name] = h5.create_dataset(
                name,
                shape=(n, *shape),
                maxshape=(None, *shape),  # lets an empty split (n = 0) still carry one-sequence chunks
                dtype=dtype,
                chunks=(1, *shape),
                shuffle=True,
                compression="gzip",
                compression_opts=GZIP_LEVEL,
            )
        else:
            out[name] = h5.create_dataset(name, shape=(n,), dtype=dtype)
    return out


def encode_id(text: str) -> bytes:
    """UTF-8 bytes for a fixed-length id field; refuses ids that would be truncated."""
    raw = text.encode("utf-8")
    if len(raw) > ID_BYTES:
        raise ValueError(f"sequence id longer than {ID_BYTES} bytes: {text[:80]}...")
    return raw


def decode_id(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8")


def write_attrs(h5: h5py.File, meta: dict[str, Any]) -> None:
    """Store metadata as root attributes, every value as JSON text.

    Even plain strings are JSON-encoded: a hex key such as "12e4567890123456" stored raw would read
    back as a float."""
    for k, v in meta.items():
        h5.attrs[k] = json.dumps(v, sort_keys=True)


def read_attrs(h5: h5py.File) -> dict[str, Any]:
    """Inverse of ``write_attrs``."""
    out: dict[str, Any] = {}
    for k, v in h5.attrs.items():
        v = v.decode() if isinstance(v, bytes) else v
        try:
            out[k] = json.loads(v) if isinstance(v, str) else v
        except json.JSONDecodeError:
            out[k] = v
    return out


def foreign_storage(h5: h5py.File) -> list[str]:
    """Objects whose bytes live outside this file: external links, external raw storage, virtual datasets.

    All are refused: a virtual dataset with a missing source silently reads as fill values,
    and the others make the file's validity depend on files the cache does not own.
    """
    found: list[str] = []

    def visit(group: h5py.Group, prefix: str) -> None:
        for name in group:
            path = f"{prefix}{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                found.append(f"{path}: external link to {link.filename}:{link.path}")
                continue
            if isinstance(link, h5py.SoftLink):
                continue  # points inside this file; its target is visited under its own name
            obj = group[name]
            if isinstance(obj, h5py.Group):
                visit(obj, f"{path}/")
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    found.append(f"{path}: virtual dataset (data mapped from other files)")
                elif obj.external:
                    found.append(f"{path}: external raw storage in {obj.external[0][0]}")

    visit(h5, "")
    return found
