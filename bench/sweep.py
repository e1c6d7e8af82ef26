#!/usr/bin/env python
"""Per-encoder throughput by micro-batch size (and, for YOLO, memory format): the evidence behind
``FrameEncoder.micro_batch`` and the channels_last choice.

    python -m bench.sweep --preset full [--frames 32] [--repeats 2]

Each role runs on already prepared inputs (its own input size), so this is the encoder's forward alone.
Writes bench/results/sweep-<preset>-<device>.json: ms/frame and GFLOP/s per setting, best of repeats.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from typing import Any

from bench.machine import RESULTS, LoadMeter, machine_info, quiet_threads, write_result

quiet_threads()

import torch  # noqa: E402

from bench.flops import counter  # noqa: E402
from extract.streams import preset_models, presets  # noqa: E402
from models.encoders import Encoder, create_encoder  # noqa: E402

SIZES = {"hands": (1, 2, 4, 8)}
DEFAULT_SIZES = (8, 16, 32, 64)  # the pipeline hands each view 64 frames per call


def _gflop_per_image(enc: Encoder, x: torch.Tensor) -> float:
    with torch.inference_mode(), counter() as fc:
        enc(x[:1])
    return fc.get_total_flops() / 1e9


def _per_frame(enc: Encoder, x: torch.Tensor, size: int, repeats: int) -> dict[str, float]:
    """Best wall and CPU milliseconds per frame over ``repeats``, and others' load meanwhile.

    CPU time of this process is the steadier number on a shared machine: a thread that waits for a
    core others hold costs wall time but no CPU time."""
    best: dict[str, float] = {}
    with torch.inference_mode():
        enc(x[:size])  # warm-up: kernels for this batch shape
        for _ in range(repeats):
            with LoadMeter() as meter:
                for chunk in x.split(size):
                    enc(chunk)
            wall, cpu = 1000 * meter.result["seconds"] / len(x), 1000 * meter.result["own_cpu_s"] / len(x)
            if cpu < best.get("cpu_ms_per_frame", float("inf")):
                best = {
                    "ms_per_frame": round(wall, 1),
                    "cpu_ms_per_frame": round(cpu, 1),
                    "other_processes_cores": meter.result["other_processes_cores"],
                }
    return best


def _contiguous_copy(enc: Encoder) -> Encoder:
    """The same encoder in the stock NCHW layout (what the pipeline ran before channels_last)."""
    plain = copy.deepcopy(enc)
    plain.model = plain.model.to(memory_format=torch.contiguous_format)
    return plain


def sweep_role(enc: Encoder, frames: int, repeats: int, sizes: tuple[int, ...]) -> dict[str, Any]:
    h, w = enc.preprocess.input_size
    x = enc.prepare(torch.rand(frames, 3, h, w, generator=torch.Generator().manual_seed(0)))
    gflop = _gflop_per_image(enc, x)
    variants = {"as_configured": (enc, x)}
    if enc.preprocess.channels_last:
        variants["contiguous"] = (_contiguous_copy(enc), x.contiguous())
    out: dict[str, Any] = {"gflop_per_image": gflop, "channels_last": enc.preprocess.channels_last}
    for label, (module, inputs) in variants.items():
        rows = {}
        # The stock layout only as a reference: its smallest and largest batch.
        for size in sizes if label == "as_configured" else (sizes[0], sizes[-1]):
            row = _per_frame(module, inputs, size, repeats)
            row["gflop_per_cpu_s"] = round(gflop / row["cpu_ms_per_frame"] * 1000, 1)
            rows[str(size)] = row
            print(enc.role, label, size, rows[str(size)], flush=True)
        out[label] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=presets(), default="full")
    p.add_argument("--frames", type=int, default=64, help="images per role (hands: at most 8)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--roles", default="hands,vit,cnn,dino,swav")
    p.add_argument("--sizes", default=None, help="comma-separated micro-batch sizes (default per role)")
    args = p.parse_args(argv)
    path = RESULTS / f"sweep-{args.preset}-cpu.json"
    result: dict[str, Any] = {"preset": args.preset, "device": "cpu", "machine": machine_info("cpu")}
    # Roles not swept this time keep their earlier rows: a sweep of one role is minutes long.
    roles = json.loads(path.read_text()).get("roles", {}) if path.exists() else {}
    for role in args.roles.split(","):
        enc = create_encoder(preset_models(args.preset)[role], "random", 0)
        sizes = SIZES.get(role, DEFAULT_SIZES)
        frames = min(args.frames, 8) if role == "hands" else max(args.frames, max(sizes))
        sizes = tuple(int(v) for v in args.sizes.split(",")) if args.sizes else sizes
        rows = sweep_role(enc, frames, args.repeats, tuple(s for s in sizes if s <= frames))
        rows["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for label in ("as_configured", "contiguous"):  # merge with earlier sizes of this role
            if label in rows:
                rows[label] = {**roles.get(role, {}).get(label, {}), **rows[label]}
        roles[role] = rows
    result["roles"] = roles
    print(write_result(path, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
