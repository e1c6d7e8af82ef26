"""Decoding segments of a long recording: seeking to the keyframe before each segment vs decoding from
frame 0, and PyAV's decoder threading.

One recording of 3,000 frames (small, H.264 with B-frames, a keyframe every 30 frames) holds 40 gesture
segments of 20-60 frames; each is sampled to 32 frames as extraction samples a sequence. Modes:

- ``product``: ``data.video.read_video`` over all 40 segments at once (what one batch of segments of
  the recording costs): one open, seeks forward past what no segment wants;
- ``seek_per_segment``: the same reader called once per segment (a batch holding one segment);
- ``from_start_per_segment``: each segment decoded from frame 0 up to its last frame (the reader
  before issue 12, one call per sequence);
- ``from_start_one_pass``: one decode from frame 0 to the last wanted frame.

The check the issue sets: ``product`` decodes no more frames than the segments span plus one GOP each.

``--torchcodec`` also decodes the wanted frames with torchcodec (CUDA's NVDEC when a GPU is there, else its
CPU decoder) and records its time and how far its pixels are from PyAV's (codec tolerance: the two
convert YUV to RGB each their own way); without torchcodec (``pip install ".[gpu-decode]"``) the entry
says why it was skipped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import RESULTS, LoadMeter, machine_info, quiet_threads, write_result

quiet_threads()

import av  # noqa: E402
import numpy as np  # noqa: E402

from data.sampling import sample_indices  # noqa: E402
from data.video import COUNTER, read_video  # noqa: E402

THREAD_TYPES = ("NONE", "SLICE", "FRAME", "AUTO")


def write_recording(path: Path, frames: int, gop: int, size: tuple[int, int]) -> Path:
    """An H.264 MP4 whose every frame differs (a sweeping bar, a ramping tone), B-frames on."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"bf": "2", "sc_threshold": "0"}  # fixed GOP: the budget below is exact
        for i in range(frames):
            image = np.full((height, width, 3), (i * 37) % 200, np.uint8)
            image[(2 * i) % height, :, 1] = 255
            image[:, (3 * i) % width, 2] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_segments(frames: int, count: int, t: int, seed: int) -> list[tuple[int, int, np.ndarray]]:
    """``count`` disjoint (start, end, sampled indices) segments of 20-60 frames over the recording."""
    rng = np.random.default_rng(seed)
    slot = frames // count
    out = []
    for k in range(count):
        length = int(rng.integers(20, 61))
        start = k * slot + int(rng.integers(0, slot - length))
        indices = start + sample_indices(length, t)[0]
        out.append((start, start + length - 1, indices))
    return out


def timed(call: Any) -> dict[str, Any]:
    COUNTER.reset()
    start = time.perf_counter()
    frames = call()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "decoded_frames": COUNTER.video_frames,
        "seeks": COUNTER.seeks,
        "opens": COUNTER.opens,
        "frames": frames,
    }


def run_modes(path: Path, total: int, segments: list[tuple[int, int, np.ndarray]], thread_type: str) -> dict:
    union = sorted({int(i) for _, _, ix in segments for i in ix})

    def per_segment(seek: bool) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for _, _, ix in segments:
            out.update(read_video(path, np.unique(ix), total, seek=seek, thread_type=thread_type))
        return out

    return {
        "product": timed(lambda: read_video(path, union, total, thread_type=thread_type)),
        "seek_per_segment": timed(lambda: per_segment(True)),
        "from_start_per_segment": timed(lambda: per_segment(False)),
        "from_start_one_pass": timed(
            lambda: read_video(path, union, total, seek=False, thread_type=thread_type)
        ),
    }


def torchcodec_compare(path: Path, wanted: list[int], reference: dict[int, np.ndarray]) -> dict[str, Any]:
    """The product's torchcodec reader (``data.gpu_decode.read_video_gpu``: NVDEC on CUDA, else torchcodec's
    CPU decoder) on ``wanted`` against PyAV's frames: seconds and absolute pixel differences."""
    try:
        import torch
        from torchcodec.decoders import VideoDecoder

        VideoDecoder  # noqa: B018 - importing it loads torchcodec's FFmpeg libraries, or fails here
    except Exception as error:  # not installed, or its FFmpeg libraries are missing
        return {"skipped": f"torchcodec unavailable ({type(error).__name__}: {error}"[:300] + ")"}
    from data.gpu_decode import read_video_gpu

    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.perf_counter()
    got = read_video_gpu(path, wanted, device=device)
    seconds = time.perf_counter() - start
    frames = np.stack([got[i] for i in wanted])  # (N, H, W, 3) uint8
    diff = np.abs(frames.astype(np.int16) - np.stack([reference[i] for i in wanted]).astype(np.int16))
    return {
        "device": device,
        "seconds": seconds,
        "frames": len(wanted),
        "max_abs_diff": int(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "share_within_2_levels": float((diff <= 2).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--segments", type=int, default=40)
    p.add_argument("--gop", type=int, default=30)
    p.add_argument("--size", default="128x96", help="WIDTHxHEIGHT of the recording")
    p.add_argument("--t", type=int, default=32, help="frames sampled per segment")
    p.add_argument("--rounds", type=int, default=2, help="repeats per mode (the fastest counts)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--torchcodec", action="store_true", help="also time torchcodec and compare its pixels")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    segments = make_segments(args.frames, args.segments, args.t, args.seed)
    span = sum(end - start + 1 for start, end, _ in segments)
    budget = span + args.segments * args.gop
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        path = write_recording(Path(tmp) / "recording.mp4", args.frames, args.gop, (width, height))
        union = sorted({int(i) for _, _, ix in segments for i in ix})
        decoders = (
            {"torchcodec": torchcodec_compare(path, union, read_video(path, union, args.frames))}
            if args.torchcodec
            else {}
        )
        runs: dict[str, dict[str, dict[str, Any]]] = {}
        with LoadMeter() as meter:
            for thread_type in THREAD_TYPES:
                best: dict[str, dict[str, Any]] = {}
                for _ in range(args.rounds):
                    for mode, r in run_modes(path, args.frames, segments, thread_type).items():
                        if mode not in best or r["seconds"] < best[mode]["seconds"]:
                            best[mode] = r
                reference = best["from_start_one_pass"]["frames"]
                for r in best.values():
                    got = r.pop("frames")
                    r["same_frames_as_from_start"] = sorted(got) == sorted(reference) and all(
                        np.array_equal(got[i], reference[i]) for i in reference
                    )
                runs[thread_type] = best
                line = ", ".join(
                    f"{m} {r['decoded_frames']} frames {r['seconds']:.2f}s" for m, r in best.items()
                )
                print(f"{thread_type}: {line}", flush=True)
    product = runs["AUTO"]["product"]
    result = {
        "machine": machine_info(decoders.get("torchcodec", {}).get("device", "cpu")),
        "command": " ".join(["python", "-m", "bench.decode", *(argv if argv is not None else sys.argv[1:])]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "recording": {
            "frames": args.frames,
            "size": [width, height],
            "gop": args.gop,
            "codec": "h264, 2 B-frames",
        },
        "segments": args.segments,
        "frames_per_segment": args.t,
        "segments_span_frames": span,
        "budget_frames": budget,
        "product_within_budget": product["decoded_frames"] <= budget,
        "runs_by_thread_type": runs,
        **decoders,
        "load": meter.result,
    }
    print(write_result(args.out or RESULTS / "decode-cpu.json", result))
    from_start = runs["AUTO"]["from_start_per_segment"]["decoded_frames"]
    print(
        f"product decoded {product['decoded_frames']} frames (budget {budget} = span {span} + "
        f"{args.segments} GOPs); from start per segment {from_start}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
