"""The benchmark's input: real JPEG files from the demo generator, and the exact frames the pipeline sees.

The dataset is pre-split (``train/`` and ``val/`` folders) so that a benchmark of n sequences gets exactly
n: with one augmented copy per training video, n // 2 training videos give a plain and an augmented
sequence each, and an odd n adds one validation video (never augmented). So decoding, the plain resize
and the full augmentation recipe are all on the measured path.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import torch

from data.config import DataConfig
from data.demo import CLASSES, MIN_FRAMES, write_demo_dataset
from extract.config import ExtractConfig
from extract.plan import make_augmenter, make_plan
from extract.source import SequenceFrames

FRAME_SIZE = (640, 480)  # (width, height) of the JPEG files, a common webcam size


def write_bench_dataset(root: Path, sequences: int, seq_len: int = 32, seed: int = 0) -> Path:
    """A pre-split demo dataset under ``root/data`` that yields ``sequences`` sequences (augment_copies=1)."""
    train, val = sequences // 2, sequences % 2
    needed = train + val
    # Video 0 of every class is shorter than 32 frames (padded); for long sequences prefer the others.
    per_class = math.ceil(needed / len(CLASSES)) + (1 if seq_len > MIN_FRAMES else 0)
    demo = write_demo_dataset(root / "demo", size=FRAME_SIZE, videos_per_class=per_class, seed=seed)
    videos = {(p.parent.name, p.name.split("_frame_")[0]) for p in demo.glob("*/*.jpg")}
    # Spread over classes first, and take the short (padded) videos only when the long ones run out.
    chosen = sorted(
        videos,
        key=lambda cv: (_index_in_class(cv[1], per_class) == 0, _index_in_class(cv[1], per_class), cv[0]),
    )
    chosen = chosen[:needed]
    data = root / "data"
    shutil.rmtree(data, ignore_errors=True)
    for i, (class_name, video_id) in enumerate(chosen):
        split = "train" if i < train else "val"
        folder = data / split / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for frame in demo.glob(f"{class_name}/{video_id}_frame_*.jpg"):
            shutil.copy2(frame, folder / frame.name)
    return data


def _index_in_class(video_id: str, per_class: int) -> int:
    """The demo numbers videos ``class_index * per_class + v + 1``; v == 0 is the short one."""
    return (int(video_id.split("_v")[1]) - 1) % per_class


def extract_config(data: Path, cache_dir: Path, preset: str, weights: str, **kw: object) -> ExtractConfig:
    """The pipeline's configuration for the benchmark: defaults except where the benchmark must choose,
    with the batch size and workers an extraction on its device would pick (recorded with the results)."""
    from core.device import resolve_device
    from extract.run import with_loader_defaults

    frames = int(kw.pop("frames", 32))
    image_size = int(kw.pop("image_size", 640))
    dataset = DataConfig(data=data, frames=frames, image_size=image_size, augment_copies=1)
    cfg = ExtractConfig(dataset=dataset, cache_dir=cache_dir, preset=preset, weights=weights, **kw)
    return with_loader_defaults(cfg, resolve_device(cfg.device))


def pipeline_frames(cfg: ExtractConfig) -> list[torch.Tensor]:
    """Every sequence's (T, S, S, 3) uint8 frames exactly as the pipeline's workers produce them, in
    the pipeline's order (decoded and augmented here, up front, outside any timing)."""
    plan = make_plan(cfg)
    source = SequenceFrames(
        [it.sequence for it in plan.items],
        make_augmenter(cfg, plan.dataset.classes),
        cfg.dataset.augment_seed,
    )
    return [source[i]["frames"] for i in range(len(source))]


def frame_paths(cfg: ExtractConfig) -> list[list[Path]]:
    """Per plan sequence, the JPEG file of each of its T frames (the naive loop reads these)."""
    plan = make_plan(cfg)
    return [[it.sequence.video.frames[int(i)] for i in it.sequence.indices] for it in plan.items]


def augment_seconds(cfg: ExtractConfig, seeds: int = 8) -> dict[str, float]:
    """Seconds to augment one decoded T-frame sequence, over ``seeds`` recipes (which transforms fire
    is random; ISONoise is the slowest), single-threaded as in a worker."""
    import cv2
    import numpy as np

    from data.frames import read_frames

    plan = make_plan(cfg)
    augmenter = make_augmenter(cfg, plan.dataset.classes)
    seq = plan.items[0].sequence
    frames = read_frames(seq.video, seq.indices)  # (T, H, W, 3) uint8
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # workers run OpenCV on one thread (extract.source.worker_init)
    try:
        times = []
        for seed in range(1, seeds + 1):
            start = time.perf_counter()
            augmenter(frames, seq.label, seed)
            times.append(time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)
    return {"min": min(times), "median": float(np.median(times)), "max": max(times), "seeds": seeds}
