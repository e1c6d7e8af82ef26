#!/usr/bin/env python
"""Picking hand boxes from YOLO's outputs: ultralytics' per-image NMS against the batched greedy one.

    python -m bench.nms [--device cpu|cuda] [--batch 128] [--out bench/results/nms-cpu.json]

Random weights find no hands, so every other device step leaves YOLO's box selection with nothing to do,
while a real detector on real clips puts hands in most frames. This step feeds both selections YOLOv8's
outputs at 640 (8,400 anchors) for a batch in which every frame but one holds 1-3 hands, each a cluster of
confident jittered boxes, and times, in one process:

- **per image** (what ``YoloHands`` did before): ultralytics' ``non_max_suppression(agnostic=True)``, a
  Python loop with a boolean-mask filter, a torchvision NMS call and host-device waits per frame, then the
  kept rows packed into the (B, K, 6) output frame by frame;
- **batched** (what it does now): ``models.encoders.hands.greedy_nms``, K rounds over the whole batch.

Both must keep the same boxes (checked here too). Seconds per batch, the median of ``--rounds``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.machine import RESULTS, machine_info, quiet_threads, write_result

quiet_threads()  # before torch is imported

import torch  # noqa: E402

ANCHORS_640 = 8400  # YOLOv8's anchor points at 640: 80² + 40² + 20²


def hand_like_predictions(
    batch: int, classes: int = 1, anchors: int = ANCHORS_640, seed: int = 0
) -> torch.Tensor:
    """(B, 4 + nc, A) YOLO outputs (xywh in pixels of 640, class scores) as a hand detector's look: faint
    background anchors below the 0.25 threshold, and in frame b (b % 4) hands, each 25 jittered boxes of
    which some overlap past the 0.7 IoU threshold and some not; the last frame is empty."""
    g = torch.Generator().manual_seed(seed)
    p = torch.zeros(batch, 4 + classes, anchors)
    p[:, :2] = torch.rand(batch, 2, anchors, generator=g) * 640
    p[:, 2:4] = torch.rand(batch, 2, anchors, generator=g) * 60 + 4
    p[:, 4:] = torch.rand(batch, classes, anchors, generator=g) * 0.2
    for b in range(batch - 1):
        for _ in range(b % 4):
            centre, size = torch.rand(2, generator=g) * 500 + 70, torch.rand(2, generator=g) * 100 + 30
            at = torch.randperm(anchors, generator=g)[:25]
            p[b, :2, at] = centre[:, None] + torch.randn(2, 25, generator=g) * 6
            p[b, 2:4, at] = size[:, None] * (1 + 0.15 * torch.randn(2, 25, generator=g))
            p[b, 4:, at] = torch.rand(classes, 25, generator=g) * 0.9
    return p


def per_image(p: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The selection ``YoloHands`` ran before the batched one: ultralytics' NMS, packed frame by frame."""
    from ultralytics.utils.nms import non_max_suppression

    detections = non_max_suppression(p, 0.25, 0.7, agnostic=True, max_det=keep)
    boxes = torch.zeros(p.shape[0], keep, 6, dtype=torch.float32, device=p.device)
    count = torch.zeros(p.shape[0], dtype=torch.int64, device=p.device)
    for i, det in enumerate(detections):
        n = min(det.shape[0], keep)
        boxes[i, :n] = det[:n, :6].float()
        count[i] = n
    return boxes, count


def batched(p: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    from models.encoders.hands import greedy_nms

    return greedy_nms(p, 0.25, 0.7, keep)


def _seconds(fn: Any, p: torch.Tensor, keep: int, rounds: int) -> float:
    fn(p, keep)  # warm-up: first kernel launches, lazy imports
    times = []
    for _ in range(rounds):
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)
        start = time.perf_counter()
        fn(p, keep)
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(device: str, batch: int, keep: int, rounds: int) -> dict[str, Any]:
    p = hand_like_predictions(batch).to(device)
    old, new = per_image(p, keep), batched(p, keep)
    same = torch.equal(old[1], new[1]) and torch.equal(old[0], new[0])
    per_image_s = _seconds(per_image, p, keep, rounds)
    batched_s = _seconds(batched, p, keep, rounds)
    return {
        "batch": batch,
        "anchors": p.shape[-1],
        "boxes_kept_per_frame": keep,
        "frames_with_hands": int((new[1] > 0).sum()),
        "same_boxes": same,
        "seconds_per_batch": {"per_image": per_image_s, "batched": batched_s},
        "per_image_over_batched": per_image_s / batched_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch", type=int, default=128, help="frames per call (YOLO's CUDA micro-batch)")
    p.add_argument("--keep", type=int, default=4, help="boxes kept per frame (--max-hands)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench.nms: no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    result = {
        "machine": machine_info(args.device),
        "command": " ".join(["python -m bench.nms", *sys.argv[1:]]),
        **measure(args.device, args.batch, args.keep, args.rounds),
    }
    print(write_result(args.out or RESULTS / f"nms-{args.device}.json", result))
    return 0 if result["same_boxes"] else 1


if __name__ == "__main__":
    sys.exit(main())
