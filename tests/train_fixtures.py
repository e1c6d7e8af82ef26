"""Synthetic caches for the training tests, written with the real schema helpers.

The class of every sequence is encoded in its features (a shifted coordinate per class in
some embedding channels, the DINO CLS and SwAV vectors) so a small model can learn it in
a few epochs. The files are read back by the real ``cache.reader``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from bench.synthetic import Sizes
from cache.schema import (
    SCHEMA_VERSION,
    Dims,
    FieldSpec,
    create_datasets,
    encode_id,
    field_specs,
    write_attrs,
)
from extract.channels import CHANNEL_NAMES

CLASSES = ("fist", "palm", "peace")
# Channels that carry the class signal; the attention report should find one of them.
SIGNAL_CHANNELS = (0, 8)


def write_synthetic_cache(
    root: Path,
    *,
    classes: tuple[str, ...] = CLASSES,
    counts: dict[str, int] | None = None,
    frames: int = 8,
    embed_dim: int = 16,
    dino_dim: int = 8,
    swav_dim: int = 12,
    attn_hw: tuple[int, int] = (4, 4),
    key: str = "synth0001",
    seed: int = 0,
    signal: float = 2.5,
    data_root: str = "/nonexistent/gesture-data",
    masks: str | None = None,
) -> Path:
    """Write ``<root>/<key>/{manifest.json, train.h5, val.h5, test.h5}``; return the key dir.

    ``masks``: also the mask stream's fields (``hand_masks``, ``mask_valid``, ``mask_score``), with the
    masks stored ``"dense"`` (T, 2, 64, 64) uint8 or ``"packed"`` (T, 2, 64, 8) uint8 (as stored).
    """
    counts = counts or {"train": 36, "val": 15, "test": 9}
    sizes = Sizes(frames, embed_dim, dino_dim, attn_hw, swav_dim, max_hands=2)
    dims = sizes.dims()
    if masks is not None:
        dims = Dims(dims.frames, dims.fields + mask_fields(masks), dims.float_dtype)
    key_dir = Path(root) / key
    key_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "key": key,
        "dims": dims.to_json(),
        "class_names": list(classes),
        "channel_layout": list(CHANNEL_NAMES),
        "encoders": {"cnn": "test_cnn", "vit": "test_vit", "dino": "test_dino", "swav": "test_swav"},
        "config": {"data": data_root, "frames": frames, "preset": "tiny", "weights": "random"},
        "versions": {"numpy": np.__version__},
        "created": "2024-01-01T00:00:00Z",
    }
    splits = {}
    for split, n in counts.items():
        ids = _write_split(key_dir / f"{split}.h5", split, n, sizes, classes, rng, signal, meta)
        splits[split] = {"file": f"{split}.h5", "count": n, "sequence_ids": ids}
    manifest = {**meta, "complete": True, "splits": splits}
    (key_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return key_dir


def _write_split(
    path: Path, split: str, n: int, sizes: Sizes, classes: tuple[str, ...], rng, signal: float, meta: dict
) -> list[str]:
    dims = Dims.from_json(meta["dims"])
    t, c = dims.frames, len(classes)
    labels = np.arange(n) % c
    emb = rng.normal(0, 1, (n, t, 12, sizes.embed_dim)).astype(np.float32)
    dino = rng.normal(0, 1, (n, t, sizes.dino_dim)).astype(np.float32)
    swav = rng.normal(0, 1, (n, t, sizes.swav_dim)).astype(np.float32)
    for i, y in enumerate(labels):
        emb[i, :, list(SIGNAL_CHANNELS), y] += signal
        dino[i, :, y] += signal
        swav[i, :, y] += signal
    valid = np.ones((n, t), np.uint8)
    indices = np.tile(np.arange(t, dtype=np.int32), (n, 1))
    for i in range(0, n, 4):  # every 4th sequence is a short video: repeated frames are invalid
        idx = np.linspace(0, t // 2 - 1, t).round().astype(np.int32)
        indices[i] = idx
        valid[i, 1:] = (idx[1:] != idx[:-1]).astype(np.uint8)
        for j in range(1, t):
            if not valid[i, j]:
                emb[i, j], dino[i, j], swav[i, j] = emb[i, j - 1], dino[i, j - 1], swav[i, j - 1]
    ids = [f"{classes[y]}/{split}{i:03d}" for i, y in enumerate(labels)]
    h, w = sizes.attn_hw
    attn = rng.random((n, t, h, w)).astype(np.float32)
    attn /= attn.sum(axis=(2, 3), keepdims=True)
    with h5py.File(path, "w") as f:
        d = create_datasets(f, n, dims) if n else _create_empty(f, dims)
        if n:
            d["embeddings"][...] = emb
            d["dino_cls"][...] = dino
            d["swav"][...] = swav
            d["dino_attention"][...] = attn
            d["labels"][...] = labels
            d["valid"][...] = valid
            d["frame_indices"][...] = indices
            d["sequence_ids"][...] = np.array([encode_id(s) for s in ids])
            d["content_ids"][...] = np.array([hashlib.sha1(s.encode()).hexdigest().encode() for s in ids])
            if "hand_masks" in d:
                _write_masks(d, rng, n, t)
        write_attrs(f, {**meta, "split": split})
    return ids


def mask_fields(layout: str) -> tuple[FieldSpec, ...]:
    """The mask stream's per-frame fields, as that stream declares them (dense or bit-packed masks)."""
    shape = (2, 64, 64) if layout == "dense" else (2, 64, 64 // 8)  # packed: cache/masks.py rows
    return (
        FieldSpec("hand_masks", shape, "uint8", stream="masks"),
        FieldSpec("mask_valid", (2,), "uint8", stream="masks", bounds=(0.0, 1.0)),
        FieldSpec("mask_score", (2,), "float32", stream="masks"),
    )


def _write_masks(d: dict, rng, n: int, t: int) -> None:
    """A square hand per valid hand slot at a random place; about a quarter of the slots empty."""
    masks = np.zeros((n, t, 2, 64, 64), np.uint8)
    valid = (rng.random((n, t, 2)) > 0.25).astype(np.uint8)
    corners = rng.integers(0, 48, (n, t, 2, 2))
    for i, j, k in zip(*np.nonzero(valid), strict=True):
        y, x = corners[i, j, k]
        masks[i, j, k, y : y + 16, x : x + 16] = 1
    packed = d["hand_masks"].shape[-1] == 8
    d["hand_masks"][...] = np.packbits(masks, axis=-1) if packed else masks  # packed: (n, t, 2, 64, 8)
    d["mask_valid"][...] = valid
    d["mask_score"][...] = rng.random((n, t, 2)).astype(np.float32) * valid


def _create_empty(f: h5py.File, dims: Dims) -> None:
    """An N = 0 split as the cache writes it: schema.create_datasets refuses a 0-length axis."""
    for name, (shape, dtype) in field_specs(dims).items():
        extra = {"chunks": (1, *shape), "compression": "gzip"} if shape else {}
        f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, **extra)


def write_frames(key_dir: Path, data_root: Path, color: tuple[int, int, int], size=(32, 24)) -> int:
    """The original frames of every sequence in a synthetic cache, as one-colour PNGs; return the count.

    Laid out as the dataset the manifest's ``config.data`` names: ``<class>/<video>_frame_<n>.png``.
    """
    from PIL import Image

    manifest = json.loads((Path(key_dir) / "manifest.json").read_text())
    frames = int(manifest["config"]["frames"])
    image = Image.new("RGB", size, color)
    written = 0
    for split in manifest["splits"].values():
        for sequence_id in split["sequence_ids"]:
            cls, video = sequence_id.split("/")
            folder = Path(data_root) / cls
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(frames):
                image.save(folder / f"{video}_frame_{n}.png")
                written += 1
    return written
