"""Extraction across torchrun ranks: who plans, who computes what, and one honest progress bar.

The scheme (README "Scaling out with torchrun"):

- Rank 0 alone discovers the dataset, takes the cache lock (``CacheLock``, an flock) and holds it
  for the whole job, indexes the shards and finds the missing sequences. The other ranks take no
  lock: they start writing only after rank 0 holds it (they wait for rank 0's deal) and finish
  before rank 0 releases it (rank 0 waits for every rank before assembling). To any other
  ``extract`` the whole job is one writer.
- The missing sequences are sorted by content id (itself a sha256, so a uniform hash) and dealt
  round-robin. Every sequence costs the same T frames through every encoder, so equal counts
  (within one) are equal work, and the deal depends only on *what* is missing, never on order
  or timing. Rank 0 scatters each rank its share; the others never read the dataset index.
- Every rank writes its own shards with the usual tmp + fsync + rename; shard names carry host
  and pid, so they never collide. A killed rank leaves its finished shards, and a re-run with any
  number of ranks recomputes only what no shard holds (content addressing).
- After all ranks report, rank 0 alone assembles the split files and the manifest.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import torch.distributed as dist
from tqdm import tqdm

from cache.shards import ShardRef, ShardStore
from core.errors import CacheError
from core.ranks import Ranks
from extract.plan import Plan, PlanItem

# NFS caches directory listings for up to ~60 s: wait that long for other nodes' shards to show.
VISIBILITY_WAIT_S = 90.0


@dataclass
class Job:
    """One rank's part of an extraction.

    ``plan`` is complete on rank 0; elsewhere it holds only this rank's items plus the key and
    class names (enough to encode and write shards).
    """

    plan: Plan
    key_dir: Path
    share: list[PlanItem]  # what this rank computes
    missing: int  # sequences missing over all ranks
    counts: list[int]  # share size per rank
    token: str  # names this job's progress counters


def deal(items: list[PlanItem], world_size: int) -> list[list[PlanItem]]:
    """Rank r's share of ``items``: sorted by content id (a sha256), then dealt round-robin."""
    ordered = sorted(items, key=lambda it: it.content_id)
    return [ordered[r::world_size] for r in range(world_size)]


def plan_job(ranks: Ranks, cache_dir: Path, prepare: Callable[[], tuple[Plan, list[PlanItem]]]) -> Job:
    """Rank 0 runs ``prepare() -> (plan, missing items)`` and deals; every rank gets its ``Job``.

    ``prepare`` runs on rank 0 only (it plans, locks and indexes); its errors reach every rank.
    A single process keeps plan order, exactly as before torchrun support.
    """

    def jobs() -> list[Job]:
        plan, missing = prepare()
        key_dir = Path(cache_dir) / plan.key
        shares = deal(missing, ranks.world_size) if ranks.distributed else [missing]
        counts = [len(s) for s in shares]
        token = f"extract/{plan.key}/{time.time_ns()}"
        out = [Job(plan, key_dir, shares[0], len(missing), counts, token)]
        for share in shares[1:]:
            # The other ranks need the key, the class names and their own sequences, not the dataset.
            light = replace(
                plan, dataset=replace(plan.dataset, videos=[], skipped=[]), assignment={}, items=share
            )
            out.append(Job(light, key_dir, share, len(missing), counts, token))
        return out

    return ranks.scatter_from_main(jobs)


def describe_deal(job: Job) -> str:
    """`` on 2 ranks (5, 4 each)`` for the start message; empty for a single process."""
    if len(job.counts) <= 1:
        return ""
    return f" on {len(job.counts)} ranks ({', '.join(map(str, job.counts))} each)"


def merge_ranks(ranks: Ranks, result: Any, started: float) -> None:
    """Sum ``computed``/``forward_calls`` and join ``skipped`` of every rank into rank 0's result.

    A collective, so it is also the barrier after which rank 0 may assemble.
    """
    parts = ranks.all_gather((result.computed, result.skipped, result.forward_calls))
    if not ranks.distributed or not ranks.is_main:
        return
    result.computed = sum(p[0] for p in parts)
    result.skipped = [msg for p in parts for msg in p[1]]
    result.forward_calls = sum(p[2] for p in parts)
    print(
        f"{ranks.world_size} ranks computed {result.computed} sequences "
        f"({', '.join(str(p[0]) for p in parts)} each) in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


class SharedProgress:
    """Frames encoded over all ranks, drawn as one bar on rank 0.

    Each rank adds its frames to a counter in torchrun's rendezvous store: an atomic add, not a
    collective, so no rank ever waits for another just to report. Rank 0 redraws from the counter
    after each of its own batches and, once its share is done, keeps polling until every rank
    has finished. Without the store (a group the caller initialised) rank 0 shows its own frames
    only, and says so.
    """

    def __init__(self, ranks: Ranks, total_frames: int, token: str, poll_s: float = 0.5) -> None:
        self.ranks = ranks
        self.poll_s = poll_s
        self.counter = None if ranks.store is None else dist.PrefixStore(token, ranks.store)
        if self.counter is None:
            desc, total = f"extract (rank 0 of {ranks.world_size})", None
        else:
            desc, total = f"extract ({ranks.world_size} ranks)", total_frames
        self.bar = tqdm(
            total=total,
            unit="frame",
            desc=desc,
            file=sys.stderr,
            dynamic_ncols=True,
            disable=not ranks.is_main,
        )

    def __enter__(self) -> SharedProgress:
        return self

    def update(self, frames: int) -> None:
        if self.counter is None:
            self.bar.update(frames)
            return
        done = self.counter.add("frames", frames)
        if self.ranks.is_main:
            self.bar.update(done - self.bar.n)

    def _wait_for_all(self) -> None:
        self.counter.add("ranks_done", 1)
        if not self.ranks.is_main:
            return
        while self.counter.add("ranks_done", 0) < self.ranks.world_size:
            self.bar.update(self.counter.add("frames", 0) - self.bar.n)
            time.sleep(self.poll_s)
        self.bar.update(self.counter.add("frames", 0) - self.bar.n)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None and self.counter is not None:
                self._wait_for_all()
        finally:
            self.bar.close()


def index_after_extraction(store: ShardStore, job: Job, written: int) -> dict[str, ShardRef]:
    """The shard index once it shows every sequence the ranks reported written.

    On one shared filesystem that is immediate. Another node's shards can take a while to appear
    over NFS; if they never do, the cache dir is not shared by all nodes, and assembling now would
    silently drop those sequences from the splits.
    """
    ids = {it.content_id for it in job.plan.items}  # rank 0 holds the full plan
    need = len(ids) - job.missing + written  # present before the job, plus what the ranks wrote
    deadline = time.monotonic() + VISIBILITY_WAIT_S
    while True:
        index = store.index()
        present = len(ids & index.keys())
        if present >= need or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    if present < need:
        raise CacheError(
            f"ranks reported {written} new sequences but {need - present} of them are not in {store.dir}; "
            "every node must see the same --cache-dir (a shared filesystem). Re-run the same command to "
            "finish"
        )
    return index
