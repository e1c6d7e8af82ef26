#!/usr/bin/env python
"""Where the encoders' time goes inside one extraction batch: torch.profiler around ``FrameEncoder``.

    python -m bench.profile --device cuda --preset full [--sequences 8] [--seq-len 32] [--batches 3]

The H100 run left two gaps that stage clocks cannot split (on CUDA they would synchronise the device at
every stage): the pipeline's encoders alone ran at 20 % MFU while each encoder alone at its best batch
reached 12-37 %, and 369 frames/s against the 463 the five encoders would give one after the other. This
step profiles the encoders alone, on pre-decoded random frames in the pipeline's batch, and writes what
a next change needs: how busy the device was (kernel time over wall time), device and host seconds per
stage (``FrameEncoder``'s stages are profiler ranges: each encoder role, "preprocess", "crops", ...),
each role's achieved TFLOP/s there, the kernel launches per frame, the host-device synchronisations per
batch, and the kernels that took the most time. Random weights find no hands; YOLO's box selection is
one batched greedy NMS whose work does not depend on how many hands there are (bench/nms.py times it on
outputs with hands). On CPU (``bench/device.sh --dry-run``) there are no device figures:
host seconds only. Writes bench/results/profile-<preset>-<device>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench.machine import RESULTS, LoadMeter, machine_info, quiet_threads, write_result

quiet_threads()  # before torch is imported

# Host-side calls that make the host wait for the device (each one empties the launch queue).
SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")
TOP_KERNELS = 12


def summarise_profile(
    averages: Any, stages: list[str], wall_s: float, frames: int, gflop: dict[str, float], device: str
) -> dict[str, Any]:
    """A profiler's ``key_averages()`` -> the figures this step writes (times in seconds).

    ``stages``: the range names to report (ranges may nest: a stream's stage holds the roles it runs, so
    their times are not to be summed); ``gflop``: GFLOP per frame by role, for the achieved rates."""
    from torch.autograd import DeviceType

    # A range is listed twice: its host side (device time = its kernels) and, on CUDA, its device-side
    # span (a user annotation). Kernels are listed both on their own and under the op that launched them.
    host = {e.key: e for e in averages if e.device_type == DeviceType.CPU}
    out_stages: dict[str, Any] = {}
    for name in stages:
        e = host.get(name)
        if e is None:
            continue
        row: dict[str, Any] = {"calls": e.count, "host_s": e.cpu_time_total / 1e6}
        if device == "cuda":
            row["device_s"] = e.device_time_total / 1e6
            if name in gflop and row["device_s"] > 0:
                row["achieved_tflop_per_s"] = gflop[name] * frames / row["device_s"] / 1e3
        out_stages[name] = row
    result: dict[str, Any] = {"wall_s": wall_s, "frames": frames, "stages": out_stages}
    if device != "cuda":
        return result
    kernels = [e for e in averages if e.device_type != DeviceType.CPU and not e.is_user_annotation]
    busy = sum(e.self_device_time_total for e in kernels) / 1e6  # kernels, copies, memsets
    top = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)[:TOP_KERNELS]
    result.update(
        {
            "device_busy_s": busy,
            "device_busy_share": busy / wall_s if wall_s > 0 else None,
            "kernel_launches_per_frame": sum(host[k].count for k in LAUNCHES if k in host) / frames,
            "syncs": {k: host[k].count for k in SYNCS if k in host},
            "top_kernels": [
                {"name": e.key[:120], "device_s": e.self_device_time_total / 1e6, "calls": e.count}
                for e in top
            ],
        }
    )
    return result


def profile_encoders(
    preset: str, device_name: str, sequences: int, seq_len: int, image_size: int, batches: int
) -> dict[str, Any]:
    """Build the preset's encoders (random weights), warm them up on one batch, profile ``batches`` more."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bench.flops import frame_gflop
    from extract.encode import FrameEncoder
    from extract.streams import StreamOptions, preset_models, running_models
    from models.encoders import create_encoder

    device = torch.device(device_name)
    encoders = {
        role: create_encoder(name, "random") for role, name in running_models(preset_models(preset)).items()
    }
    fe = FrameEncoder(encoders, device, StreamOptions())
    n = sequences * seq_len
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (n, image_size, image_size, 3), dtype=torch.uint8, generator=gen)
    if device.type == "cuda":
        frames = frames.pin_memory()  # as the loader hands them over
    gflop = frame_gflop(fe, frames[:1])["by_role"]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fe(frames, sequence_length=seq_len)  # warm-up: first kernels, cuDNN's algorithm choice
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(batches):
            fe(frames, sequence_length=seq_len)
        sync()
        wall = time.perf_counter() - start
    names = [*fe.encoders, "preprocess", "crops", "hand_fill", "landmarks", "outputs"]
    body = summarise_profile(prof.key_averages(), names, wall, n * batches, gflop, device.type)
    return {"gflop_per_frame_by_role": gflop, "batch_frames": n, "batches": batches, **body}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    p.add_argument("--preset", default="full")
    p.add_argument("--sequences", type=int, default=8, help="sequences per batch (CUDA's default batch)")
    p.add_argument("--seq-len", type=int, default=32, help="frames per sequence (T)")
    p.add_argument("--image-size", type=int, default=640, help="the decoded frames' side (--image-size)")
    p.add_argument("--batches", type=int, default=3, help="profiled batches, after one warm-up batch")
    p.add_argument("--out", type=Path, default=None, help="result file (default bench/results/...)")
    args = p.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench.profile: no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    out = args.out or RESULTS / f"profile-{args.preset}-{args.device}.json"
    with LoadMeter() as meter:
        body = profile_encoders(
            args.preset, args.device, args.sequences, args.seq_len, args.image_size, args.batches
        )
    result = {
        "machine": machine_info(args.device),
        "command": " ".join(["python -m bench.profile", *sys.argv[1:]]),
        "preset": args.preset,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **body,
        "load": meter.result,
    }
    print(write_result(out, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
