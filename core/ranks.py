"""torchrun's process group for both stages: one rank per process, set up from the environment.

Without torchrun (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``) nothing here touches
``torch.distributed``: the stages run exactly as one process. Under torchrun, collectives on
CPU objects (plans, metrics, statuses) go through gloo; DDP gradients on CUDA go through NCCL
(``cpu:gloo,cuda:nccl``). Extraction and training import this module; neither imports the
other's distributed code (DESIGN §1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from core.errors import UserError
from core.lifeline import die_with_parent

T = TypeVar("T")

# How long a collective may wait. Extraction's waits can be long and legitimate (rank 0 planning
# a big dataset, or waiting for the cache lock, while the others sit in a broadcast); training's
# are short, and a hung NCCL collective should surface sooner. A dead rank is torchrun's to
# detect (it tears the whole job down), not this timeout's.
EXTRACT_TIMEOUT = timedelta(hours=2)
TRAIN_TIMEOUT = timedelta(minutes=30)


def is_main_process() -> bool:
    """True for rank 0 of a torchrun job and for every plain (non-torchrun) process."""
    return int(os.environ.get("RANK", "0")) == 0


def torchrun_world() -> int:
    """How many ranks torchrun started for this job (1 for a plain process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def cores_per_rank() -> int:
    """The cores this process may use, shared evenly with the other ranks torchrun started on this node."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def bar_disable() -> bool | None:
    """tqdm's ``disable``: auto (TTY-dependent) on the main process, off on other ranks."""
    return None if is_main_process() else True


@dataclass
class Ranks:
    """This process's place in the job, and the few collectives the stages need."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    store: dist.Store | None = None  # torchrun's rendezvous store, for counters that need no collective

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: T | None) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj  # type: ignore[return-value]
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def scatter(self, objs: list[Any] | None) -> Any:
        """Rank 0's ``objs[r]`` on rank r (``objs`` is ignored elsewhere)."""
        if not self.distributed:
            return objs[0] if objs else None
        box: list[Any] = [None]
        dist.scatter_object_list(box, objs if self.is_main else None, src=0)
        return box[0]

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank. Also a barrier."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only, its result broadcast to every rank.

        When it raises, every rank raises (a UserError keeps its message), so no rank is left
        waiting in a collective for a result that never comes.
        """
        return self._relay(fn, scatter=False)

    def scatter_from_main(self, fn: Callable[[], list[T]]) -> T:
        """Like ``from_main``, but ``fn()`` returns one object per rank and rank r gets item r."""
        return self._relay(fn, scatter=True)

    def _relay(self, fn: Callable[[], Any], scatter: bool) -> Any:
        if not self.distributed:
            out = fn()
            return out[0] if scatter else out
        failure: BaseException | None = None
        sent: Any = None
        if self.is_main:
            try:
                out = fn()
                sent = [("ok", o) for o in out] if scatter else ("ok", out)
            except Exception as exc:  # relayed below, then re-raised unchanged on rank 0
                failure = exc
                status = ("user-error" if isinstance(exc, UserError) else "bug", str(exc))
                sent = [status] * self.world_size if scatter else status
        got = self.scatter(sent) if scatter else self.broadcast(sent)
        if failure is not None:
            raise failure
        if got[0] == "user-error":
            raise UserError(got[1])
        if got[0] == "bug":
            raise RuntimeError(f"rank 0 failed: {got[1]}")
        return got[1]


def _backend(device: str) -> str:
    wants_cuda = (device == "auto" or device.startswith("cuda")) and torch.cuda.is_available()
    return "cpu:gloo,cuda:nccl" if wants_cuda else "gloo"


# The group this process holds, while a ``process_group`` block is open: nested blocks (each run of a
# sweep or of folds inside the command's own block) reuse it rather than tearing it down between runs.
_HELD: Ranks | None = None
# Groups this process has set up so far. Each gets its own store prefix: a group set up after an earlier
# one was torn down must not meet the earlier group's keys (a rank would pass init on stale counters).
_GENERATION = 0


@contextmanager
def process_group(device: str = "auto", timeout: timedelta = TRAIN_TIMEOUT) -> Iterator[Ranks]:
    """The job's ``Ranks``: torchrun's group when ``WORLD_SIZE > 1``, else a single process.

    ``device`` is the stage's ``--device`` choice; it picks NCCL for CUDA tensors. Reentrant: inside
    an open block (a sweep's or folds' command holding the group across its runs) the same ``Ranks``
    is yielded and the group stays open; a group the caller initialised itself is used and left open.
    The outermost block waits for every rank before tearing the group down, so no rank leaves while
    another still expects it in a collective.
    """
    global _HELD, _GENERATION
    if torchrun_world() <= 1:
        yield Ranks()
        return
    if _HELD is not None:
        yield _HELD
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if "TORCHELASTIC_RUN_ID" in os.environ:
        die_with_parent()  # a rank whose torchrun agent was killed -9 would otherwise live on
    if dist.is_initialized():
        yield Ranks(dist.get_rank(), dist.get_world_size(), local_rank)
        return
    backend = _backend(device)
    if "nccl" in backend:
        if local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                "use --nproc_per_node <= the number of GPUs per node"
            )
        torch.cuda.set_device(local_rank)
    # Our own rendezvous (what init_process_group does inside) keeps a handle on the store.
    store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
    store.set_timeout(timeout)
    generation, _GENERATION = _GENERATION, _GENERATION + 1
    suffix = f"/{generation}" if generation else ""  # the first group keeps the names it always had
    dist.init_process_group(
        backend,
        store=dist.PrefixStore(f"default_pg{suffix}", store),
        rank=rank,
        world_size=world,
        timeout=timeout,
    )
    _HELD = Ranks(rank, world, local_rank, dist.PrefixStore(f"gesture{suffix}", store))
    try:
        yield _HELD
        dist.barrier()  # only on success: a rank that raised leaves, and torchrun ends the others
    finally:
        _HELD = None
        dist.destroy_process_group()
