"""Training across torchrun ranks: DDP, samplers, and metrics over the whole split.

What matches one process and what does not (README "Scaling out with torchrun"):

- ``--batch-size`` stays the *global* batch: each rank takes ``ceil(batch_size / world)`` sequences
  and DDP averages the gradients. Where ``world`` divides the batch, the optimiser steps as often per
  epoch as one process would, so ``--lr`` and the OneCycle schedule mean the same thing; otherwise the
  effective batch grows to ``share * world`` (rank 0 warns) and an epoch has fewer steps.
- Training order comes from ``DistributedSampler(seed)`` with ``set_epoch`` each epoch, not from
  the single-process generator, and it pads the split to a multiple of the world size by
  repeating a few sequences. So runs match one process statistically, not bit for bit.
- BatchNorm: on CUDA the heads' BatchNorm becomes SyncBatchNorm (statistics over the global
  batch); on CPU (gloo) each rank normalises its own slice of the batch. Running statistics are
  taken from rank 0 before every evaluation so every rank evaluates the weights best.pt stores.
- Validation never pads: rank r evaluates sequences r, r + W, ... and the outputs are gathered
  back into split order, so val metrics are those of one process over the whole split, up to
  float summation order. Training metrics are gathered too (they include the padded repeats).
- Feature statistics are computed once on rank 0 and broadcast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from core.ranks import Ranks
from train.loop import EvalOutputs

if TYPE_CHECKING:
    from train.arrays import DecodedCache
    from train.jobs import Job


class StridedSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` of a dataset: a split over ranks with no padding."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def per_rank_batch(batch_size: int, ranks: Ranks) -> int:
    """This rank's share of the global batch; warns when it does not divide evenly."""
    if not ranks.distributed:
        return batch_size
    share = -(-batch_size // ranks.world_size)
    if share * ranks.world_size != batch_size and ranks.is_main:
        print(
            f"warning: --batch-size {batch_size} does not divide over {ranks.world_size} ranks; "
            f"each takes {share}, so the effective batch is {share * ranks.world_size}",
            file=sys.stderr,
        )
    return share


def train_sampler(dataset: Dataset, ranks: Ranks, seed: int) -> Sampler | None:
    """A seeded DistributedSampler under torchrun; None (the loader's own shuffling) otherwise."""
    if not ranks.distributed:
        return None
    return DistributedSampler(dataset, ranks.world_size, ranks.rank, shuffle=True, seed=seed)


def eval_sampler(dataset: Dataset, ranks: Ranks) -> Sampler | None:
    if not ranks.distributed:
        return None
    return StridedSampler(len(dataset), ranks.rank, ranks.world_size)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reshuffle a DistributedSampler for this epoch (every rank the same permutation)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def wrap_model(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """DDP around ``model`` (SyncBatchNorm on CUDA) under torchrun; ``model`` itself otherwise.

    ``model`` keeps its identity: checkpoints and evaluation use it unwrapped.
    """
    if not ranks.distributed:
        return model
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces the BatchNorm children in place
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def sync_buffers(model: nn.Module, ranks: Ranks) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank."""
    if ranks.distributed:
        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def gather_epoch(
    y_true: np.ndarray, y_pred: np.ndarray, loss_sum: float, count: int
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """One epoch's training predictions and loss sum over all ranks (for train_one_epoch)."""
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (y_true, y_pred, loss_sum, count))
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        float(sum(p[2] for p in parts)),
        int(sum(p[3] for p in parts)),
    )


def _unstride(parts: list[np.ndarray]) -> np.ndarray:
    """Inverse of StridedSampler: rank r's k-th row goes back to row r + k * world."""
    world, total = len(parts), sum(len(p) for p in parts)
    out = np.empty((total, *parts[0].shape[1:]), dtype=parts[0].dtype)
    for r, part in enumerate(parts):
        if len(part):  # a rank with no rows may hold a differently shaped empty array
            out[r::world] = part
    return out


def gather_eval(out: EvalOutputs, ranks: Ranks) -> EvalOutputs:
    """Every rank's strided evaluation outputs, merged back into split order on every rank."""
    if not ranks.distributed:
        return out
    parts = ranks.all_gather(out)
    n = [len(p.y_true) for p in parts]
    total = sum(n)
    loss = sum(p.loss * k for p, k in zip(parts, n, strict=True) if k) / total if total else float("nan")
    merged = {
        f.name: _unstride([getattr(p, f.name) for p in parts])
        for f in fields(EvalOutputs)
        if f.name not in ("loss", "aux")
    }
    aux = {k: _unstride([p.aux.get(k, v[:0]) for p in parts]) for k, v in parts[0].aux.items()}
    return EvalOutputs(loss=loss, aux=aux, **merged)


def run_jobs_on_ranks(jobs: list[Job], decoded: DecodedCache, ranks: Ranks, parallel: int = 1) -> None:
    """``run_jobs`` for a sweep or folds whose command holds one process group across its runs.

    Under torchrun every rank trains every pending job together, in the same order. Rank 0 alone
    decides which jobs are pending and removes their half-written folders, and the other ranks wait for
    that: a rank removing folders on its own could delete the one rank 0 just made for the first run.
    """
    from train.jobs import pending_jobs, run_job, run_jobs

    if not ranks.distributed:
        run_jobs(jobs, decoded, parallel)
        return
    for i in ranks.from_main(lambda: pending_jobs(jobs)):
        run_job(decoded, jobs[i])
    ranks.all_gather(None)  # every rank's writes into the run folders are done before rank 0 reads them
