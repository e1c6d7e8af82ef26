"""Batches prepared in a background thread while the model trains on the previous one.

With ``num_workers=0`` a DataLoader reads between steps, so every read adds to the epoch.
Worker processes hide it, but each batch then crosses process boundaries through shared
memory, which costs a copy and a page fault per 4 KiB on both sides; on a 2-core machine that
made a streamed epoch 1.5x the in-memory one. The cache's reads are ISA-L inflate and array
copies, which release the GIL (cache/chunks.py), so one thread overlaps them with the
training step at no transfer cost. Order, and therefore results, are exactly those of the
wrapped loader.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ThreadPrefetcher:
    """Iterate ``loader`` in a daemon thread, ``depth`` batches ahead; errors re-raise in the caller."""

    def __init__(self, loader: DataLoader, depth: int = 2) -> None:
        self.loader = loader
        self.depth = depth

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # dataset, sampler, batch_size, ... of the wrapped loader
        if name == "loader":  # not yet set (e.g. during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Any]:
        batches: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()

        def produce() -> None:
            try:
                for batch in self.loader:
                    while not stop.is_set():
                        try:
                            batches.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                item: Any = _DONE
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
                item = _Failed(exc)
            while not stop.is_set():
                try:
                    batches.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        thread = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
        thread.start()
        try:
            while (item := batches.get()) is not _DONE:
                if isinstance(item, _Failed):
                    raise item.exc
                yield item
        finally:  # also when the consumer stops early: release the producer
            stop.set()
            thread.join()
