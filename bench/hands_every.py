#!/usr/bin/env python
"""``--hands-every K``: what box fidelity it costs and what extraction speed it buys, in ONE process.

    python -m bench.hands_every [--preset full|tiny] [--every 1,2,4,8] [--seq-len 32] [--sequences 1]
                                [--rounds 1]

**Fidelity** runs the hands stream itself (``extract.streams.hands``: keyframe choice, tracking,
interpolation) over every video of the demo dataset, sampled to T frames as extraction samples them,
with the demo generator's TRUE hand box standing in for YOLO's detection on each keyframe. YOLO with
random weights finds no hands, and no hand weights can be fetched here, so this measures what the
interpolation alone loses against detecting every frame (perfectly): mean box IoU against the truth on
all frames and on the interpolated frames alone. A real detector's own errors come on top.

**Speed** is ``extract.run.run`` end to end (plan, decode workers, encoders, shard writes, assembly) on
640x480 demo JPEGs with random weights, once per K and once with ``--encoders hands=none``, all with the
same prebuilt encoders, as frames/s and as ratios against K = 1. Each mode gets a fresh worker server,
started and warmed before its clock: a CLI run starts the server first and has it ready by the time its
encoders are built, and here the encoders are built once, outside the clock. Writes
bench/results/hands-every-<preset>-cpu.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.machine import RESULTS, LoadMeter, machine_info, quiet_threads, write_result

quiet_threads()  # before torch is imported

FIDELITY_NOTE = (
    "Keyframes get the demo generator's TRUE box as the detection (random-weight YOLO finds no hands), "
    "so the IoU measures interpolation alone: what detecting every K-th frame loses against detecting "
    "every frame perfectly. A real detector's own misses and jitter come on top."
)


def _iou(a: Any, b: Any) -> Any:
    """(..., 4) x1 y1 x2 y2 pairs -> (...) intersection over union."""
    import numpy as np

    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:4], b[..., 2:4])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def fidelity(every: list[int], seq_len: int, videos_per_class: int, root: Path) -> dict[str, Any]:
    """Box IoU against the truth per K, through the hands stream with the true box as the detection."""
    import numpy as np
    import torch

    from data.demo import true_hand_boxes, write_demo_dataset
    from data.sampling import sample_indices
    from extract.streams import FrameBatch, StreamOptions, get_stream
    from models.encoders.base import HandOutput

    data = write_demo_dataset(root / "fidelity", videos_per_class=videos_per_class)
    truth_by_video = true_hand_boxes(data)
    videos = sorted(truth_by_video)
    truth = np.stack([truth_by_video[v][sample_indices(len(truth_by_video[v]), seq_len)[0]] for v in videos])
    flat = truth.reshape(-1, 4)  # (V*T, 4): frame i of the batch is flat[i]
    classes = np.array([v.split("/")[0] for v in videos]).repeat(seq_len)
    hands, max_hands = get_stream("hands"), 4

    def detect(role: str, images: torch.Tensor) -> HandOutput:
        """The truth for the frames asked about (each frame carries its batch index in its pixel)."""
        idx = images[:, 0, 0, 0].long().numpy()
        boxes = torch.zeros(len(idx), max_hands, 6)
        boxes[:, 0, :4], boxes[:, 0, 4] = torch.from_numpy(flat[idx]), 1.0
        asked.append(len(idx))
        return HandOutput(boxes=boxes, count=torch.ones(len(idx), dtype=torch.int64))

    frames = torch.arange(len(flat), dtype=torch.float64)[:, None, None, None]  # (V*T, 1, 1, 1)
    out: dict[str, Any] = {}
    for k in every:
        asked: list[int] = []
        batch = FrameBatch(
            frames, {}, {}, StreamOptions(hands_every=k), detect, lambda _: nullcontext(), None, seq_len
        )
        got = hands.run(batch)
        boxes, count = got["hand_boxes"].numpy(), got["hand_count"].numpy()
        iou = np.where(count > 0, _iou(boxes[:, 0, :4], flat), 0.0)  # (V*T,)
        between = ~got["hand_detected"][:, 0].numpy().astype(bool) if "hand_detected" in got else None
        row = {
            "mean_iou": float(iou.mean()),
            "min_iou": float(iou.min()),
            "p05_iou": float(np.percentile(iou, 5)),
            "detector_frames": int(sum(asked)),
            "detector_share": sum(asked) / len(flat),
            "mean_iou_by_class": {c: float(iou[classes == c].mean()) for c in sorted(set(classes))},
        }
        if between is not None and between.any():
            row["mean_iou_interpolated"] = float(iou[between].mean())
            row["min_iou_interpolated"] = float(iou[between].min())
        out[str(k)] = row
    return {
        "note": FIDELITY_NOTE,
        "videos": len(videos),
        "frames": len(flat),
        "frame_size": [160, 120],
        "per_k": out,
    }


def speed(
    every: list[int],
    preset: str,
    seq_len: int,
    sequences: int,
    root: Path,
    save: Any,
    rounds: int = 1,
    device: str = "cpu",
) -> dict[str, Any]:
    """frames/s of the real pipeline per K and with hands=none, same encoders, one process; the encoders
    are built once, outside every clock (bench/device.py runs this on CUDA too).

    ``rounds`` > 1 runs the modes again in reverse order, then forward, ...: a machine that drifts
    slower (or faster) during the run then weighs on every mode, not on the last ones, and each mode's
    best run counts. Also frames per CPU second of this process tree (workers included): on a shared
    machine the wall clock also counts the cycles other processes took, the CPU seconds do not.
    ``save(partial)`` is called after every run, so a run cut short still leaves its finished ones."""
    from bench.extract import _stop_worker_server, start_worker_server
    from bench.frames import extract_config, write_bench_dataset
    from bench.stages import instrumented_run
    from extract.run import run
    from extract.streams import preset_models, running_models
    from models.encoders import create_encoder

    data = write_bench_dataset(root, sequences, seq_len)
    cfg = extract_config(data, root / "cache", preset, "random", frames=seq_len, device=device)
    encoders = {
        role: create_encoder(name, "random", cfg.weights_seed)
        for role, name in running_models(preset_models(preset)).items()
    }
    modes: list[tuple[str, Any, dict[str, Any]]] = [
        (f"every_{k}", replace(cfg, hands_every=k), encoders) for k in every
    ]
    modes.append(
        (
            "hands_none",
            replace(cfg, encoders="hands=none"),
            {r: e for r, e in encoders.items() if r != "hands"},
        )
    )
    runs: dict[str, Any] = {}
    settings = {
        "batch_size": cfg.batch_size,
        "workers": cfg.workers,
        "image_size": cfg.dataset.image_size,
        "sequence_length": seq_len,
        "sequences": sequences,
        "frame_file_size": [640, 480],
        "rounds": rounds,
        "worker_server": "fresh per mode, warmed before the clock (a CLI run does during its model build)",
    }
    result: dict[str, Any] = {}
    if device != "cpu":  # the process's first CUDA work (context, kernel selection) on no mode's clock
        with instrumented_run(encoders, {}, False):
            run(replace(cfg, cache_dir=root / "warm-up"))
        _stop_worker_server()
    for r in range(rounds):
        order = list(enumerate(modes)) if r % 2 == 0 else list(enumerate(modes))[::-1]
        for i, (name, mode_cfg, mode_encoders) in order:
            stages: dict[str, float] = {}
            mode_cfg = replace(mode_cfg, cache_dir=root / f"cache-{r}-{i}")
            start_worker_server()  # ready, as a CLI run's is once its encoders are built
            # on CUDA the encoders are not clocked: each clock would synchronise the device
            with LoadMeter() as meter, instrumented_run(mode_encoders, stages, device != "cuda"):
                start = time.perf_counter()
                done = run(mode_cfg)
                seconds = time.perf_counter() - start
            _stop_worker_server()
            frames = done.computed * seq_len
            this = {
                "round": r,
                "s": seconds,
                "frames": frames,
                "frames_per_s": frames / seconds,
                "frames_per_cpu_s": frames / max(meter.result["own_cpu_s"], 1e-9),
                "stages_s": {k: round(v, 3) for k, v in sorted(stages.items())},
                "load": meter.result,
            }
            runs.setdefault(name, []).append(this)
            print(f"round {r} {name}: {frames / seconds:.3f} frames/s ({seconds:.1f} s)", file=sys.stderr)
            result = {**summarise(runs, f"every_{every[0]}"), "settings": settings}
            save(result)
    return result


def summarise(runs: dict[str, list[dict[str, Any]]], base_name: str) -> dict[str, Any]:
    """Each mode's best run and the speed-ups of the bests over ``base_name``'s, and the same for the
    median runs: on a host whose speed drifts by 20 % within minutes, the best run of a mode may be a
    fast spell the other modes never met, and the median of three or more rounds is the steadier ratio."""
    best = {n: max(rs, key=lambda x: x["frames_per_s"]) for n, rs in runs.items()}
    out: dict[str, Any] = {"runs": best, "all_runs": runs}
    if base_name not in best:
        return out
    for measure in ("frames_per_s", "frames_per_cpu_s"):
        base = best[base_name][measure]
        out[f"speedup_vs_every_1_{measure}"] = {n: b[measure] / base for n, b in best.items()}
    medians = {n: statistics.median(x["frames_per_s"] for x in rs) for n, rs in runs.items()}
    out["speedup_vs_every_1_median_frames_per_s"] = {n: m / medians[base_name] for n, m in medians.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=("full", "tiny"), default="full")
    p.add_argument("--every", default="1,2,4,8", help="the K values, comma-separated, 1 first")
    p.add_argument("--seq-len", type=int, default=32, help="frames per sequence (T)")
    p.add_argument("--sequences", type=int, default=1, help="sequences per speed run")
    p.add_argument("--rounds", type=int, default=1, help="speed rounds, alternating the mode order")
    p.add_argument("--speed-seq-len", type=int, default=None, help="T of the speed runs (default --seq-len)")
    p.add_argument("--videos-per-class", type=int, default=12, help="demo videos per class for fidelity")
    p.add_argument("--skip-speed", action="store_true", help="fidelity only (seconds, no encoders)")
    p.add_argument("--out", type=Path, default=None, help="result file (default bench/results/...)")
    args = p.parse_args(argv)
    every = [int(k) for k in args.every.split(",")]
    if every[0] != 1:
        print("--every: the first K must be 1 (the baseline the speed-ups are against)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-hands-every-"))
    result: dict[str, Any] = {
        "preset": args.preset,
        "weights": "random",
        "device": "cpu",
        "sequence_length": args.seq_len,
        "command": " ".join(
            ["python", "-m", "bench.hands_every", *(argv if argv is not None else sys.argv[1:])]
        ),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info("cpu"),
    }
    suffix = "" if not args.skip_speed else "-fidelity"
    path = args.out or RESULTS / f"hands-every-{args.preset}{suffix}-cpu.json"

    def save(partial: dict[str, Any]) -> None:
        write_result(path, {**result, "speed": partial})

    try:
        result["fidelity"] = fidelity(every, args.seq_len, args.videos_per_class, tmp)
        for k, row in result["fidelity"]["per_k"].items():
            print(f"K={k}: mean IoU {row['mean_iou']:.3f} (YOLO on {row['detector_share']:.0%} of frames)")
        write_result(path, result)
        if not args.skip_speed:
            speed_len = args.speed_seq_len or args.seq_len
            result["speed"] = speed(every, args.preset, speed_len, args.sequences, tmp, save, args.rounds)
            for stat in ("", "median_"):
                ratios = result["speed"][f"speedup_vs_every_1_{stat}frames_per_s"]
                print(
                    f"speed-up vs K=1, {stat or 'best_'}runs: "
                    + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(write_result(path, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
