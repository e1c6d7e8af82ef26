#!/usr/bin/env python
"""Training from the gzip HDF5 cache vs from memory, cache size on disk, and cache write throughput.

    python -m bench.train [--sequences 384] [--frames 32] [--epochs 2] [--workers 0] [--train-threads N]
                          [--device cpu]

Builds a realistic-size cache (T = 32 unless --frames, D = 768, DINO 384 with a 14 x 14 map, SwAV 2048) from
bench/synthetic.py features through the cache's own APIs (``ShardStore.write_shard``, then
``assemble_splits``), then times training epochs of the same model from the same seed twice: streaming
from disk (``CacheDataset(preload=False)``) and preloaded into memory (``preload=True``), both through
``train.runtime.make_loader`` as `pipeline.py train` builds it (``--workers 0``: the DataLoader runs in a
background thread). A third mode streams through ``--process-workers`` DataLoader worker processes, for
comparison. Allocator settings are the train command's (``retain_freed_memory``).
Writes bench/results/train-<device>.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import RESULTS, LoadMeter, machine_info, quiet_threads, write_result

quiet_threads()

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.synthetic import FeatureSynth, Sizes  # noqa: E402
from cache.assemble import assemble_splits  # noqa: E402
from cache.schema import Dims, field_specs  # noqa: E402
from cache.shards import ShardStore  # noqa: E402
from extract.channels import CHANNEL_NAMES  # noqa: E402
from models.heads.model import GestureModel, ModelArgs  # noqa: E402
from models.heads.normalize import feature_statistics  # noqa: E402
from train.loop import train_one_epoch  # noqa: E402
from train.runtime import (  # noqa: E402
    deterministic_run,
    make_loader,
    make_optimizer,
    open_manifest,
    precision_for,
    retain_freed_memory,
    split_dataset,
)

CLASSES = ("circle", "push", "swipe_down", "swipe_left", "swipe_right", "swipe_up")
SIZES = Sizes(frames=32)  # the full preset's encoder sizes
SHARD = 16  # sequences per shard, extraction's default
TARGETS = {"cache_over_memory_epoch": 1.10, "bytes_over_raw_float32": 0.45}


def raw_float32_bytes(dims: Dims) -> int:
    """One sequence with every float field as float32 and nothing compressed."""
    total = 0
    for shape, dtype in field_specs(dims).values():
        itemsize = 4 if np.issubdtype(dtype, np.floating) else dtype.itemsize
        total += int(np.prod(shape, dtype=np.int64)) * itemsize
    return total


def stored_bytes(record: dict[str, Any]) -> int:
    return sum(np.asarray(v).nbytes for v in record.values() if isinstance(v, np.ndarray))


def build_cache(key_dir: Path, sequences: int, seed: int, sizes: Sizes = SIZES) -> dict[str, Any]:
    """Write shards and assemble train.h5; return write timings and sizes."""
    dims = sizes.dims()
    synth = FeatureSynth(sizes, len(CLASSES), seed=seed)
    meta = {"class_names": list(CLASSES), "dims": dims.to_json(), "channel_layout": list(CHANNEL_NAMES)}
    store = ShardStore(key_dir)
    write_s, raw_bytes, ids = 0.0, 0, []
    for start in range(0, sequences, SHARD):
        labels = [i % len(CLASSES) for i in range(start, min(sequences, start + SHARD))]
        records = [synth.record(start + k, y, CLASSES[y]) for k, y in enumerate(labels)]  # untimed
        raw_bytes += sum(stored_bytes(r) for r in records)
        ids += [r["content_ids"] for r in records]
        t = time.perf_counter()
        store.write_shard(records, dims, meta)
        write_s += time.perf_counter() - t
    shard_bytes = sum(p.stat().st_size for p in store.shard_paths())
    t = time.perf_counter()
    assemble_splits(key_dir, {"train": ids, "val": [], "test": []}, list(CLASSES), meta)
    assemble_s = time.perf_counter() - t
    train = key_dir / "train.h5"
    with h5py.File(train, "r") as h5:
        per_field = {name: h5[name].id.get_storage_size() / sequences for name in h5}
    return {
        "write_s": write_s,
        "write_mb_per_s": raw_bytes / write_s / 1e6,
        "write_disk_mb_per_s": shard_bytes / write_s / 1e6,
        "assemble_s": assemble_s,
        "assemble_mb_per_s": train.stat().st_size / assemble_s / 1e6,
        "bytes_per_sequence": train.stat().st_size / sequences,
        "stored_dtype_bytes_per_sequence": raw_bytes / sequences,
        "field_bytes_per_sequence": per_field,
    }


def time_epochs(
    key_dir: Path,
    preload: bool,
    workers: int,
    epochs: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    inflate_threads: int | None = None,
    per_tensor_optimizer: bool = False,
) -> dict[str, Any]:
    """Seconds per training epoch of one fresh model (same seed -> same weights and batch order).

    ``inflate_threads``: the streamed reader's inflate pool size (None: the reader's default).
    ``per_tensor_optimizer``: RAdam's per-tensor loop (PyTorch's CPU default) in place of the product's
    batched update (``make_optimizer``), the baseline of that choice."""
    manifest = open_manifest(key_dir)
    args = ModelArgs.from_manifest(manifest, "all", 128, 0.2)
    fields = tuple(args.inputs)
    with deterministic_run(seed):
        dataset = split_dataset(key_dir, manifest, "train", fields, preload)
        dataset.inflate_threads = inflate_threads
        model = GestureModel(args)
        model.set_statistics(feature_statistics(make_loader(dataset, 64, False, seed, 0, device), fields))
        model = model.to(device)
        loader = make_loader(dataset, batch_size, True, seed, workers, device)
        if per_tensor_optimizer:
            optimizer = torch.optim.RAdam(
                model.parameters(), lr=3e-3, weight_decay=1e-4, decoupled_weight_decay=True, foreach=False
            )
        else:
            optimizer = make_optimizer(model.parameters(), 3e-3, 1e-4)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=3e-3, epochs=epochs, steps_per_epoch=len(loader)
        )
        precision, loss_fn = precision_for(device), nn.CrossEntropyLoss()
        seconds, losses = [], []
        with LoadMeter() as meter:
            for _ in range(epochs):
                start = time.perf_counter()
                metrics = train_one_epoch(model, loader, optimizer, scheduler, loss_fn, precision, device)
                seconds.append(time.perf_counter() - start)
                losses.append(metrics["loss"])
    return {
        "epoch_s": seconds,
        "loss": losses,
        "workers": workers,
        "preload": preload,
        "inflate_threads": dataset._threads(),
        "load": meter.result,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", type=int, default=384)
    p.add_argument(
        "--frames", type=int, default=32, help="T per sequence (1: a one-image corpus such as HaGRID)"
    )
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per mode (the best one counts)")
    p.add_argument("--workers", type=int, default=0, help="train --workers when streaming the cache")
    p.add_argument(
        "--process-workers", type=int, default=2, help="worker processes of the comparison mode (0: skip it)"
    )
    p.add_argument(
        "--inflate-threads",
        default="",
        help="also stream with these inflate pool sizes, comma-separated (e.g. 1,2,4); "
        "'cache' itself uses the reader's default",
    )
    p.add_argument(
        "--train-threads",
        type=int,
        default=0,
        help="torch threads of the training step (0: torch's default, every core); fewer leave cores spare "
        "for the streamed reader",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="memory/cache alternations (drift cancels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.train_threads:
        torch.set_num_threads(args.train_threads)
    retain_freed_memory()  # as `pipeline.py train` does
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        key_dir = tmp / "cache" / "bench"
        with LoadMeter() as meter:
            sizes = build_cache(key_dir, args.sequences, args.seed, Sizes(frames=args.frames))
        # mode -> DataLoader workers, inflate threads
        modes: dict[str, tuple[int, int | None]] = {
            "memory": (0, None),
            "memory_per_tensor_optimizer": (0, None),
            "cache": (args.workers, None),
        }
        for n in filter(None, args.inflate_threads.split(",")):
            modes[f"cache_inflate_{int(n)}"] = (args.workers, int(n))
        if args.process_workers > 0:
            modes["cache_process_workers"] = (args.process_workers, None)
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for _ in range(args.rounds):  # alternate, so a busy spell on the shared machine hits all
            for mode, (workers, threads) in modes.items():
                runs[mode].append(
                    time_epochs(
                        key_dir,
                        mode.startswith("memory"),
                        workers,
                        args.epochs,
                        args.batch_size,
                        args.seed,
                        device,
                        threads,
                        per_tensor_optimizer=mode == "memory_per_tensor_optimizer",
                    )
                )
                print(mode, runs[mode][-1]["epoch_s"], runs[mode][-1]["load"], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    epoch = {mode: min(min(r["epoch_s"]) for r in rs) for mode, rs in runs.items()}
    dims = Sizes(frames=args.frames).dims()
    raw = raw_float32_bytes(dims)
    ratios = {
        "cache_over_memory_epoch": epoch["cache"] / epoch["memory"],
        "bytes_over_raw_float32": sizes["bytes_per_sequence"] / raw,
    }
    # not a target: what the batched optimiser update saves per epoch (memory, so reads don't blur it)
    optimizer_ratio = epoch["memory"] / epoch["memory_per_tensor_optimizer"]
    inflate = {
        mode.removeprefix("cache_inflate_"): epoch[mode] / epoch["memory"]
        for mode in epoch
        if mode.startswith("cache_inflate_")
    }
    same_losses = all(
        [r["loss"] for r in runs["memory"]] == [r["loss"] for r in rs]
        for mode, rs in runs.items()
        if mode != "memory_per_tensor_optimizer"  # same arithmetic, other rounding
    )
    result = {
        "device": args.device,
        "machine": machine_info(args.device),
        "command": " ".join(["python", "-m", "bench.train", *(argv if argv is not None else sys.argv[1:])]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sequences": args.sequences,
        "dims": dims.to_json(),
        "batch_size": args.batch_size,
        "workers_cache": args.workers,
        "process_workers": args.process_workers,
        "cpu_count": os.cpu_count(),
        "train_threads": torch.get_num_threads(),
        "spare_cores": max(0, (os.cpu_count() or 1) - torch.get_num_threads()),
        "epoch_s": epoch,
        "runs": runs,
        "same_losses_cache_and_memory": same_losses,
        "raw_float32_bytes_per_sequence": raw,
        **sizes,
        "ratios": ratios,
        "cache_over_memory_epoch_by_inflate_threads": inflate,
        "cache_default_inflate_threads": runs["cache"][0]["inflate_threads"],
        "memory_epoch_batched_over_per_tensor_optimizer": optimizer_ratio,
        "targets": {
            k: {"value": v, "target": TARGETS[k], "holds": v <= TARGETS[k]} for k, v in ratios.items()
        },
        "load_build": meter.result,
        "features": "bench/synthetic.py (low-rank smooth latents; LayerNorm-like ViT, lognormal ReLU CNN)",
    }
    default = f"train-{args.device}.json" if args.frames == 32 else f"train_t{args.frames}-{args.device}.json"
    print(write_result(args.out or RESULTS / default, result))
    print(", ".join(f"epoch {mode} {s:.2f}s" for mode, s in epoch.items()), end="; ")
    print(f"{sizes['bytes_per_sequence']:.0f} bytes/sequence ({ratios['bytes_over_raw_float32']:.3f} of raw)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
