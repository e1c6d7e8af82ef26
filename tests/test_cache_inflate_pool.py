"""Streamed reads through the inflate thread pool give exactly the batches of one reader thread."""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from train_fixtures import write_synthetic_cache

from cache.reader import CacheDataset
from train.runtime import make_loader

CPU = torch.device("cpu")
STREAMS = ("embeddings", "dino_cls", "swav")


def _batches(path: Path, threads: int, seen: set[str]) -> list[dict[str, torch.Tensor]]:
    dataset = CacheDataset(path, STREAMS, preload=False, inflate_threads=threads)
    read = dataset._read

    def tracked(name: str, i: int) -> torch.Tensor:
        seen.add(threading.current_thread().name)
        return read(name, i)

    dataset._read = tracked  # which threads did the reads
    try:
        return [batch for _ in range(2) for batch in make_loader(dataset, 5, True, 3, 0, CPU)]
    finally:
        dataset.close()


def test_four_inflate_threads_give_the_batches_of_one(tmp_path: Path):
    key_dir = write_synthetic_cache(tmp_path, counts={"train": 23, "val": 1, "test": 1})
    one_seen: set[str] = set()
    pool_seen: set[str] = set()
    one = _batches(key_dir / "train.h5", 1, one_seen)
    pooled = _batches(key_dir / "train.h5", 4, pool_seen)
    assert len(pool_seen) > 1 and all(n.startswith("chunk-inflate") for n in pool_seen), pool_seen
    assert one_seen == {"batch-prefetch"}
    assert len(one) == len(pooled) == 10  # two epochs of ceil(23 / 5)
    for a, b in zip(one, pooled, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), name
