#!/usr/bin/env python
"""Extraction throughput: the naive per-image loop, the real pipeline, and the compute bound, in ONE process.

    python -m bench.extract --preset full|tiny [--frames 64] [--naive-frames 8] [--rounds 2] [--device cpu]

All three modes run the same encoder modules on the same demo JPEGs (640x480). ``pipeline`` is
``extract.run.run`` end to end (plan, decode + augment in DataLoader workers, encoders, shard writes,
split assembly) into a temporary cache; ``compute_bound`` is ``FrameEncoder`` alone on the very frames
the pipeline's workers produce, pre-decoded, in the pipeline's batches; ``naive`` is bench/naive.py.
``--rounds`` alternates the three modes and keeps each one's best round, so a slow spell of the shared
host does not land on one mode only. The matmul peak (fp32 on CPU, bf16 on CUDA, the encoders' own
dtypes) is sampled in the same process between modes; MFU is pipeline frames/s x GFLOP/frame / best
peak sample. Writes
bench/results/extract-<preset>-<device>.json.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.machine import (
    RESULTS,
    LoadMeter,
    machine_info,
    matmul_peak_gflops,
    mfu,
    peak_dtype,
    quiet_threads,
    write_result,
)

quiet_threads()  # before torch is imported

# Everything heavy is imported inside main(): every DataLoader worker re-runs the entry module before its
# first frame (extract.source.WORKER_PRELOAD), and a light one keeps their start-up what it is under
# pipeline.py.

if TYPE_CHECKING:
    import torch

    from bench.naive import NaiveExtractor
    from extract.encode import FrameEncoder

PRESET_NAMES = ("full", "tiny")
STAGES_NOTE = (
    "seconds over the run. decode/augment: summed over the DataLoader workers, overlapped with the "
    "encoders. data_wait_first_batch: main process waiting for the first sequence, worker start-up "
    "included; data_wait: every later wait. hands/vit/cnn/dino/swav: encoder forwards. preprocess: "
    "uint8 to float and each encoder's resize/normalise. crops: views, DINO box, SwAV roi_align. "
    "outputs: to NumPy. write: shard files. plan: discovery and keys. assemble: split files. On CUDA the "
    "encoder stages are not clocked (each clock would synchronise the device)."
)
# The CPU targets; on CUDA, the GPU issue's (MFU there against the bf16 peak: peak_dtype).
TARGETS = {
    "cpu": {"pipeline_over_compute_bound": 0.90, "pipeline_over_naive": 1.5, "mfu": 0.65},
    "cuda": {"pipeline_over_compute_bound": 0.85, "pipeline_over_naive": 10.0, "mfu": 0.40},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=PRESET_NAMES, default="full")
    p.add_argument("--weights", choices=("random", "pretrained"), default="random")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--frames", type=int, default=64, help="frames through pipeline and compute bound")
    p.add_argument("--naive-frames", type=int, default=None, help="frames through the naive loop")
    p.add_argument("--seq-len", type=int, default=32, help="frames per sequence (T)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per encoder batch")
    p.add_argument("--workers", type=int, default=None, help="decode/augment DataLoader workers")
    p.add_argument("--rounds", type=int, default=1, help="compute/pipeline alternations; best counts")
    p.add_argument("--skip-naive", action="store_true", help="leave the naive loop out (quick checks)")
    p.add_argument("--out", type=Path, default=None, help="result file (default bench/results/...)")
    return p.parse_args(argv)


def _preset(name: str) -> dict[str, str]:
    from extract.streams import preset_models, running_models

    return running_models(preset_models(name))


def _rate(frames: int, seconds: float) -> float:
    return frames / seconds if seconds > 0 else float("nan")


def measure_compute_bound(
    fe: FrameEncoder, sequences: list[torch.Tensor], batch_size: int, clocks: bool = True
) -> tuple[float, dict[str, float]]:
    """FrameEncoder on pre-decoded frames, batch_size sequences per call as in the pipeline.

    ``clocks=False`` (CUDA) times the whole only: per-stage clocks synchronise the device."""
    import torch

    fe.timings = {} if clocks else None
    start = time.perf_counter()
    for i in range(0, len(sequences), batch_size):
        fe(torch.cat(sequences[i : i + batch_size]))  # (n*T, S, S, 3)
    seconds = time.perf_counter() - start  # the outputs are on the host by now: the device is done
    timings, fe.timings = fe.timings or {}, None
    return seconds, timings


def measure_naive(naive: NaiveExtractor, paths: list[list[Path]], frames: int, out: Path) -> float:
    """The naive loop over the first ``frames`` frames, one output file per (partial) sequence."""
    naive.timings = {}
    flat = [p for seq in paths for p in seq][:frames]
    start = time.perf_counter()
    for k in range(0, len(flat), len(paths[0])):
        naive.sequence(flat[k : k + len(paths[0])], out / f"naive-{k}.h5")
    return time.perf_counter() - start


def _stop_worker_server() -> None:
    """Stop the DataLoader workers' forkserver (CPython's own tests use this private call)."""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()


def _no_op() -> None:
    """A worker that does nothing: starting one waits until the worker server has its imports."""


def start_worker_server() -> None:
    """Start a fresh worker server and wait for its imports (torch, OpenCV, albumentations), as a CLI
    run has them ready by the time its encoders are built (``extract.run`` starts the server first).

    For benchmarks whose encoders are built once outside the clock: without this, every timed run also
    pays the ~4-7 s server start that the CLI hides behind its model build."""
    from extract.source import worker_context

    _stop_worker_server()
    probe = worker_context().Process(target=_no_op)
    probe.start()  # returns once the server has forked it: its preload imports are done
    probe.join()


def sample_peak(samples: list[dict[str, Any]], label: str, device: str) -> None:
    """One matmul-peak sample with the load it ran under; the run's peak is the best sample, so a
    sample that others slowed down cannot inflate the MFU."""
    dtype = peak_dtype(device)
    n = 2048 if dtype == "float32" else 8192  # a 2048^3 bf16 matmul is too short to fill a GPU
    with LoadMeter() as meter:
        gflops = matmul_peak_gflops(device, n, repeats=12, dtype=dtype)
    samples.append(
        {
            "at": label,
            "dtype": dtype,
            "gflop_per_s": gflops,
            "other_processes_cores": meter.result["other_processes_cores"],
        }
    )


def _stage_table(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in sorted(timings.items())}


def main(argv: list[str] | None = None) -> int:
    import torch

    from bench.flops import attention_check, frame_gflop
    from bench.frames import (
        augment_seconds,
        extract_config,
        frame_paths,
        pipeline_frames,
        write_bench_dataset,
    )
    from bench.naive import NaiveExtractor
    from bench.stages import instrumented_run
    from extract.encode import FrameEncoder
    from extract.run import run
    from extract.streams import StreamOptions
    from models.encoders import create_encoder

    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    sequences = max(1, math.ceil(args.frames / args.seq_len))
    naive_frames = args.naive_frames or (8 if args.preset == "full" else sequences * args.seq_len)
    tmp = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    result: dict[str, Any] = {
        "preset": args.preset,
        "weights": args.weights,
        "device": args.device,
        "command": " ".join(["python", "-m", "bench.extract", *(argv if argv is not None else sys.argv[1:])]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    load: dict[str, dict[str, float]] = {}

    data = write_bench_dataset(tmp, sequences, args.seq_len)
    overrides = {
        k: v for k, v in (("batch_size", args.batch_size), ("workers", args.workers)) if v is not None
    }
    cfg = extract_config(
        data, tmp / "cache", args.preset, args.weights, frames=args.seq_len, device=args.device, **overrides
    )
    start = time.perf_counter()
    encoders = {
        role: create_encoder(name, args.weights, cfg.weights_seed)
        for role, name in _preset(args.preset).items()
    }
    build_s = time.perf_counter() - start
    fe = FrameEncoder(encoders, device, StreamOptions.from_config(cfg))
    seqs = pipeline_frames(cfg)  # (T, S, S, 3) uint8 each
    frames = sum(len(s) for s in seqs)

    machine = machine_info(args.device)  # before anything could change the thread count
    peaks: list[dict[str, Any]] = []
    sample_peak(peaks, "start", args.device)
    core_peak = matmul_peak_gflops(args.device, threads=1) if args.device == "cpu" else float("nan")
    flops = frame_gflop(fe, seqs[0][:1])
    checks = {role: attention_check(encoders[role]) for role in ("vit", "dino")}

    augment = augment_seconds(cfg)
    fe(seqs[0][:2])  # warm-up: lazy imports, thread pools, first kernels
    naive = None
    if not args.skip_naive:
        naive = NaiveExtractor(encoders, cfg.dataset.image_size, cfg.attention_mass, cfg.crop_margin)
        naive.frame(frame_paths(cfg)[0][0])  # warm-up: YOLO predictor set-up, first kernels
    modes = ("compute_bound", "pipeline") + (("naive",) if naive else ())
    rounds: list[dict[str, Any]] = []
    clocks = device.type != "cuda"  # per-encoder clocks would synchronise the GPU at every stage
    for r in range(args.rounds):  # alternate the modes, so a slow spell of the shared host hits all
        with LoadMeter() as meter:
            compute_s, compute_stages = measure_compute_bound(fe, seqs, cfg.batch_size, clocks)
        sample_peak(peaks, f"after compute bound {r + 1}", args.device)
        this = {"compute_bound": {"s": compute_s, "stages": compute_stages, "load": meter.result}}
        pipeline_stages: dict[str, float] = {}
        round_cfg = replace(cfg, cache_dir=tmp / f"cache-{r}")
        start_worker_server()  # ready, as a CLI run's is once its encoders are built (it starts it first)
        with LoadMeter() as meter, instrumented_run(encoders, pipeline_stages, clocks):
            start = time.perf_counter()
            extracted = run(round_cfg)
            this["pipeline"] = {
                "s": time.perf_counter() - start,
                "stages": pipeline_stages,
                "load": meter.result,
            }
        _stop_worker_server()  # every round starts a fresh server: no worker outlives its run
        sample_peak(peaks, f"after pipeline {r + 1}", args.device)
        if extracted.computed != len(seqs):
            raise RuntimeError(f"the pipeline computed {extracted.computed} sequences, not {len(seqs)}")
        if naive is not None:
            with LoadMeter() as meter:
                naive_s = measure_naive(naive, frame_paths(cfg), naive_frames, tmp)
            this["naive"] = {"s": naive_s, "stages": naive.timings, "load": meter.result}
        rounds.append(this)
    best = {mode: min((x[mode] for x in rounds), key=lambda m: m["s"]) for mode in modes}
    seconds = {
        mode: best[mode]["s"] if mode in best else float("nan")
        for mode in ("compute_bound", "pipeline", "naive")
    }
    compute_s, pipeline_s, naive_s = seconds["compute_bound"], seconds["pipeline"], seconds["naive"]
    compute_stages, pipeline_stages = best["compute_bound"]["stages"], best["pipeline"]["stages"]
    naive_stages = best["naive"]["stages"] if naive else {}
    load.update({mode: best[mode]["load"] for mode in modes})
    if naive is not None:
        naive.close()
    sample_peak(peaks, "end", args.device)

    fps = {
        "naive": _rate(naive_frames, naive_s),
        "pipeline": _rate(frames, pipeline_s),
        "compute_bound": _rate(frames, compute_s),
    }
    peak = max(p["gflop_per_s"] for p in peaks)
    frames_of = {"naive": naive_frames, "pipeline": frames, "compute_bound": frames}
    gflop = flops["total"]
    ratios = {
        "pipeline_over_naive": fps["pipeline"] / fps["naive"],
        "pipeline_over_compute_bound": fps["pipeline"] / fps["compute_bound"],
        "mfu": mfu(fps["pipeline"], gflop, peak),
    }
    result.update(
        machine=machine,
        frames=frames,
        frames_naive=naive_frames,
        sequence_length=args.seq_len,
        sequences=len(seqs),
        image_size=cfg.dataset.image_size,
        frame_file_size=[640, 480],
        settings={
            "batch_size": cfg.batch_size,
            "workers": cfg.workers,
            "shard_size": cfg.shard_size,
            "micro_batch": fe.micro_batch,
            "augment_copies": cfg.dataset.augment_copies,
            "worker_server": "warm",  # started before each pipeline round's clock (start_worker_server)
        },
        seconds={
            "naive": naive_s,
            "pipeline": pipeline_s,
            "compute_bound": compute_s,
            "model_build": build_s,
        },
        frames_per_s=fps,
        gflop_per_frame=gflop,
        gflop_per_frame_by_role=flops["by_role"],
        gflop_by_op=flops["by_op"],
        attention_flop_check=checks,
        peak_gflop_per_s=peak,
        peak_gflop_per_s_samples=peaks,
        achieved_gflop_per_s={k: v * gflop for k, v in fps.items()},
        mfu=ratios["mfu"],
        mfu_compute_bound=mfu(fps["compute_bound"], gflop, peak),
        # The machine is shared: wall-clock MFU also counts the cycles other processes took. Per CPU
        # second this process tree actually got (workers included), against one core's matmul peak:
        core_peak_gflop_per_s=core_peak,
        mfu_per_cpu_second={
            mode: mfu(frames_of[mode] / load[mode]["own_cpu_s"], gflop, core_peak)
            for mode in load
            if load[mode].get("own_cpu_s")
        },
        ratios=ratios,
        targets={
            k: {"value": ratios[k], "target": t, "holds": ratios[k] >= t}
            for k, t in TARGETS[device.type].items()
        },
        stages_s=_stage_table(pipeline_stages),
        stages_note=STAGES_NOTE,
        # One worker's seconds to augment a T-frame sequence, against the encoders' seconds for it.
        augment_s_per_sequence=augment,
        compute_s_per_sequence=compute_s / len(seqs),
        stages_compute_bound_s=_stage_table(compute_stages),
        stages_naive_s=_stage_table(naive_stages),
        rounds_s=[{mode: x[mode]["s"] for mode in x} for x in rounds],
        load=load,
    )
    shutil.rmtree(tmp, ignore_errors=True)
    path = write_result(args.out or RESULTS / f"extract-{args.preset}-{args.device}.json", result)
    print(
        f"frames/s naive {fps['naive']:.3f} pipeline {fps['pipeline']:.3f} compute {fps['compute_bound']:.3f}"
    )
    print(f"GFLOP/frame {gflop:.1f} peak {peak:.1f} GFLOP/s MFU {ratios['mfu']:.3f}")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
