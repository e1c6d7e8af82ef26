"""The background-thread loader: same batches in the same order, errors surface, no stray thread."""

from __future__ import annotations

import threading

import pytest
import torch
from torch.utils.data import Dataset

from core.errors import CacheError
from train.prefetch import ThreadPrefetcher
from train.runtime import make_loader

CPU = torch.device("cpu")


class Numbers(Dataset):
    def __init__(self, n: int, bad: int | None = None) -> None:
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i == self.bad:
            raise CacheError(f"train.h5: cannot read embeddings[{i}]")
        return {"x": torch.full((3,), float(i)), "label": torch.tensor(i)}


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "batch-prefetch"]


def test_batches_and_order_are_those_of_the_plain_loader():
    threaded = make_loader(Numbers(23), 4, True, 7, 0, CPU)
    plain = make_loader(Numbers(23), 4, True, 7, 1, CPU)  # a worker process: no prefetch thread
    assert isinstance(threaded, ThreadPrefetcher) and len(threaded) == len(plain) == 6
    for _ in range(2):  # and again next epoch: the generator moves on identically
        got, want = list(threaded), list(plain)
        assert [b["label"].tolist() for b in got] == [b["label"].tolist() for b in want]
        assert sorted(sum((b["label"].tolist() for b in got), [])) == list(range(23))
    assert not _prefetch_threads()


def test_a_read_error_reaches_the_training_loop_after_the_good_batches():
    loader = make_loader(Numbers(12, bad=9), 4, False, 0, 0, CPU)
    seen = []
    with pytest.raises(CacheError, match=r"embeddings\[9\]"):
        for batch in loader:
            seen.append(batch["label"].tolist())
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert not _prefetch_threads()


def test_stopping_early_releases_the_reader_thread():
    loader = ThreadPrefetcher(make_loader(Numbers(400), 1, False, 0, 1, CPU), depth=1)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert not _prefetch_threads()
    assert loader.batch_size == 1 and len(loader.dataset) == 400  # the wrapped loader's attributes
