"""Synthetic shards for the assembly faults: many sequences, so a kill can land inside assembly.

Written with the real ``ShardStore``; the job functions run inside forked children of the zygote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_cache_store import cid_of, make_record

from bench.synthetic import Sizes
from cache.assemble import assemble_splits
from cache.shards import ShardStore

DIMS = Sizes(frames=8, embed_dim=32, dino_dim=16, attn_hw=(4, 4), swav_dim=24, max_hands=2).dims()
CLASSES = ["clap", "point", "wave"]


def meta(key: str) -> dict[str, Any]:
    return {"key": key, "dims": DIMS.to_json(), "class_names": CLASSES, "config": {"synthetic": True}}


def write_key_dir(key_dir: Path, per_class: int, shard_size: int = 16, seed: int = 0) -> dict[str, list[str]]:
    """Shards of ``per_class`` videos per class; returns split -> content ids (a 60/25/15 split)."""
    store = ShardStore(key_dir)
    members: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    records = []
    for name in CLASSES:
        for v in range(per_class):
            sid = f"{name}/v{v:04d}"
            records.append(make_record(sid, CLASSES, seed, DIMS))
            split = "test" if v % 20 < 3 else "val" if v % 20 < 8 else "train"
            members[split].append(cid_of(sid))
    for start in range(0, len(records), shard_size):
        store.write_shard(records[start : start + shard_size], DIMS, meta(key_dir.name))
    return members


def save_members(path: Path, members: dict[str, list[str]]) -> None:
    path.write_text(json.dumps(members))


def assemble_job(key_dir: str, members_json: str) -> None:
    """What `extract` does after its last shard, as a job a test can kill at a random moment."""
    members = json.loads(Path(members_json).read_text())
    assemble_splits(Path(key_dir), members, CLASSES, meta(Path(key_dir).name))
