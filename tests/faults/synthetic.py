"""Synthetic shards for the assembly faults: many sequences, so a kill can land inside assembly.

Written with the real ``ShardStore``; the job functions run inside forked children of the zygote.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from cache.assemble import assemble_splits
from cache.schema import Dims, field_specs
from cache.shards import ShardStore

DIMS = Dims(frames=8, embed_dim=32, dino_dim=16, attn_hw=(4, 4), swav_dim=24, max_hands=2)
CLASSES = ["clap", "point", "wave"]


def _cid(sequence_id: str) -> str:
    return hashlib.sha256(sequence_id.encode()).hexdigest()


def _record(sequence_id: str, label: int, rng: np.random.Generator) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for name, (shape, dtype) in field_specs(DIMS).items():
        if shape and np.issubdtype(dtype, np.floating):
            rec[name] = rng.standard_normal(shape).astype(dtype)
    t = DIMS.frames
    rec.update(
        hand_count=rng.integers(0, DIMS.max_hands + 1, t).astype(np.uint8),
        frame_indices=np.arange(t, dtype=np.int32),
        valid=np.ones(t, np.uint8),
        labels=label,
        sequence_ids=sequence_id,
        content_ids=_cid(sequence_id),
        aug_index=0,
    )
    return rec


def meta(key: str) -> dict[str, Any]:
    return {"key": key, "dims": DIMS.to_json(), "class_names": CLASSES, "config": {"synthetic": True}}


def write_key_dir(key_dir: Path, per_class: int, shard_size: int = 16, seed: int = 0) -> dict[str, list[str]]:
    """Shards of ``per_class`` videos per class; returns split -> content ids (a 60/25/15 split)."""
    rng = np.random.default_rng(seed)
    store = ShardStore(key_dir)
    members: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    records = []
    for label, name in enumerate(CLASSES):
        for v in range(per_class):
            sid = f"{name}/v{v:04d}"
            records.append(_record(sid, label, rng))
            split = "test" if v % 20 < 3 else "val" if v % 20 < 8 else "train"
            members[split].append(_cid(sid))
    for start in range(0, len(records), shard_size):
        store.write_shard(records[start : start + shard_size], DIMS, meta(key_dir.name))
    return members


def save_members(path: Path, members: dict[str, list[str]]) -> None:
    path.write_text(json.dumps(members))


def assemble_job(key_dir: str, members_json: str) -> None:
    """What `extract` does after its last shard, as a job a test can kill at a random moment."""
    members = json.loads(Path(members_json).read_text())
    assemble_splits(Path(key_dir), members, CLASSES, meta(Path(key_dir).name))
