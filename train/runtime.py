"""Seeding, device, precision and data loading, chosen once and passed down (DESIGN §7).

Data reaches training only through the cache reader (DESIGN §1); this module is where
train opens it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cache.reader import CacheDataset, open_cache
from cache.schema import Dims
from core.errors import CacheError
from core.lifeline import die_with_parent
from train.derived import stored_fields, with_derived
from train.prefetch import ThreadPrefetcher

Loader = DataLoader | ThreadPrefetcher


def seed_everything(seed: int) -> None:
    """One seed for Python, NumPy and torch, plus deterministic kernels where torch has them.

    Same seed on the same machine → identical weights, batches, dropout masks and metrics.
    """
    # cuBLAS needs this before its first use to be deterministic; harmless on CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # warn_only: a few CUDA kernels have no deterministic variant; warn instead of failing.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def deterministic_run(seed: int) -> Iterator[None]:
    """``seed_everything`` for the duration of a run, then restore torch's global determinism flags.

    Training is usually the whole process, but as a library call it should not leave
    deterministic-only kernels switched on for the caller.
    """
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    seed_everything(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]


@dataclass
class Precision:
    """Autocast context factory and GradScaler for one device; AMP only on CUDA."""

    autocast: Callable[[], AbstractContextManager]
    scaler: torch.amp.GradScaler
    enabled: bool


def precision_for(device: torch.device) -> Precision:
    """float16 autocast + loss scaling on CUDA; plain float32 elsewhere (CPU AMP is slower here)."""
    if device.type == "cuda":
        return Precision(
            autocast=lambda: torch.autocast("cuda", dtype=torch.float16),
            scaler=torch.amp.GradScaler("cuda", enabled=True),
            enabled=True,
        )
    return Precision(
        autocast=contextlib.nullcontext,
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        enabled=False,
    )


def _seed_worker(worker_id: int) -> None:
    die_with_parent()  # forked by this process: a kill -9 of it must not leave the worker behind
    # Each worker derives its NumPy/random seed from torch's per-worker seed (itself from the
    # loader generator), so worker-side randomness is reproducible too.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    workers: int,
    device: torch.device,
    sampler: Sampler | None = None,
) -> Loader:
    """DataLoader whose shuffling depends only on ``seed`` (a dedicated generator).

    A ``sampler`` (a rank's share under torchrun) replaces ``shuffle``. ``workers=0`` reads
    in a background thread (train/prefetch.py): on few cores it beats worker processes.
    """
    gen = torch.Generator()
    gen.manual_seed(seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        generator=gen,
        worker_init_fn=_seed_worker if workers > 0 else None,
        pin_memory=device.type == "cuda",
        drop_last=False,
    )
    return ThreadPrefetcher(loader) if workers == 0 else loader


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.RAdam:
    """RAdam with decoupled weight decay, updating all parameters in one batch of kernels (``foreach``).

    PyTorch batches the update only on CUDA by default. On a CPU its per-tensor loop over the head's 54
    parameter tensors takes ~4.7 ms a step against ~3.4 ms batched: an epoch of a one-frame cache (HaGRID)
    is 10-15 % shorter, one of 32-frame sequences the same (``bench/train.py --frames``). Same arithmetic.
    """
    return torch.optim.RAdam(
        params, lr=lr, weight_decay=weight_decay, decoupled_weight_decay=True, foreach=True
    )


def retain_freed_memory() -> None:
    """Keep freed heap memory for reuse instead of returning it to the OS (glibc only).

    A training batch is tens of MiB; glibc serves blocks that large with a fresh mmap and
    unmaps them on free, so every step page-faults its whole batch and activations again.
    On the 2-core benchmark machine that was a third of an epoch (sys time); keeping the
    memory made in-memory epochs 1.3-1.5x faster. The heap then keeps up to 1 GiB of freed
    memory at its top instead of returning it to the OS.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, Windows, musl): their allocators behave differently
        return
    m_trim_threshold, m_top_pad, m_mmap_max, m_arena_max = -1, -2, -4, -8  # mallopt, <malloc.h>
    libc.mallopt(m_arena_max, 1)  # other threads' arenas are mmapped heaps that fault again too
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_top_pad, 64 << 20)


def available_memory_bytes() -> int | None:
    """Free physical memory, or None where the OS does not say (then preloading is trusted)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def open_manifest(cache_dir: Path) -> dict[str, Any]:
    """Run the reader's cheap checks (complete, schema, files) and return the manifest dict."""
    cache_dir = Path(cache_dir)
    info = open_cache(cache_dir)
    manifest = getattr(info, "manifest", None)
    if not isinstance(manifest, dict):
        manifest = json.loads((cache_dir / "manifest.json").read_text(encoding="utf-8"))
    return manifest


def split_count(manifest: dict[str, Any], split: str) -> int:
    return int(manifest.get("splits", {}).get(split, {}).get("count", 0))


def split_path(cache_dir: Path, manifest: dict[str, Any], split: str) -> Path:
    entry = manifest.get("splits", {}).get(split)
    if entry is None:
        raise CacheError(f"cache {cache_dir} has no '{split}' split in manifest.json; re-run extract")
    return Path(cache_dir) / entry.get("file", f"{split}.h5")


def split_dataset(
    cache_dir: Path, manifest: dict[str, Any], split: str, fields: tuple[str, ...], preload: bool
) -> Dataset:
    """The reader Dataset of one split; preloads only when the decoded arrays fit in memory.

    Derived fields (a hand track) are read as the stored fields they come from and computed once per
    sequence (train/derived.py)."""
    stored = stored_fields(fields, manifest["dims"]["fields"])
    if preload and not _fits_in_memory(manifest, split, stored):
        print(f"warning: {split} split too large to preload; reading from disk", file=sys.stderr)
        preload = False
    return with_derived(CacheDataset(split_path(cache_dir, manifest, split), stored, preload=preload), fields)


def _fits_in_memory(manifest: dict[str, Any], split: str, fields: tuple[str, ...]) -> bool:
    """Decoded float32 size of the split's requested fields vs half the free memory.

    Field sizes come from the cache's recorded layout. Under torchrun every rank on a node preloads its
    own copy, so they share that half.
    """
    dims = Dims.from_json(manifest["dims"])
    per_frame = {f.name: int(np.prod(f.shape, dtype=np.int64)) for f in dims.fields}
    need = split_count(manifest, split) * dims.frames * sum(per_frame.get(f, 0) for f in fields) * 4
    free = available_memory_bytes()
    ranks_here = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return free is None or need <= free // 2 // ranks_here
