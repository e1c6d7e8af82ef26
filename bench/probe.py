#!/usr/bin/env python
"""Planning a corpus of video files again: frame counts probed cold, then kept while a file is unchanged.

    python -m bench.probe [--videos 400] [--frames 48] [--out bench/results/probe-cpu.json]

Writes a corpus of whole-video samples listed in a manifest (``samples.csv`` + ``videos/<id>.<ext>``;
every sample needs its video's length, as WLASL's and IPN's do) twice over: H.264 in MP4, whose container
states the frame count, and VP9 in WebM, whose container does not, so probing decodes each video whole.
For each it times ``data.sequences.read_samples`` with one listing memo, cold (every video opened) and
warm (unchanged: one ``stat`` per video), in one process. ``extract`` (every run, resumes included),
``show`` and the DINO attention plots of ``train``/``evaluate`` each read the corpus this way. A read
without the memo goes first, so neither timing pays for one-time imports and codec set-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import RESULTS, machine_info, quiet_threads, write_result  # noqa: E402

quiet_threads()

import av  # noqa: E402
import numpy as np  # noqa: E402

from data.config import DataConfig  # noqa: E402
from data.sequences import read_samples  # noqa: E402

CODECS = {"mp4": ("libx264", "mp4"), "webm": ("libvpx-vp9", "webm")}


def write_corpus(root: Path, videos: int, frames: int, kind: str) -> Path:
    """``videos`` videos of ``frames`` frames and the manifest listing them."""
    codec, suffix = CODECS[kind]
    lines = ["path,label,subject"]
    for n in range(videos):
        path = root / "videos" / f"{n:05d}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as container:
            stream = container.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
            for i in range(frames):  # a bar moving over grey: cheap to encode, real work to decode
                pixels = np.full((120, 160, 3), 96, np.uint8)
                pixels[:, (3 * i + n) % 150 :][:, :10] = 255
                container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            container.mux(stream.encode())
        lines.append(f"videos/{path.name},gloss{n % 20:02d},s{n % 7}")
    manifest = root / "samples.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def timed_read(root: Path, manifest: Path, memo: Path) -> tuple[float, int]:
    start = time.perf_counter()
    dataset = read_samples(DataConfig(data=root, manifest=manifest), memo_path=memo)
    return time.perf_counter() - start, dataset.num_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--videos", type=int, default=400)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--out", type=Path, default=RESULTS / "probe-cpu.json")
    args = parser.parse_args()
    result: dict = {
        "machine": machine_info("cpu"),
        "videos": args.videos,
        "frames_per_video": args.frames,
        "note": "cold = no memo (the videos just written, so in the OS page cache); "
        "warm = unchanged, memo valid",
    }
    for kind in CODECS:
        with tempfile.TemporaryDirectory(prefix="probe-bench-") as tmp:
            root = Path(tmp) / "corpus"
            manifest = write_corpus(root, args.videos, args.frames, kind)
            memo = Path(tmp) / "memo" / "listing.pkl"
            read_samples(DataConfig(data=root, manifest=manifest))  # one-time imports and codec set-up
            cold_s, cold_frames = timed_read(root, manifest, memo)
            warm_s, warm_frames = timed_read(root, manifest, memo)
        assert cold_frames == warm_frames == args.videos * args.frames, (cold_frames, warm_frames)
        result[kind] = {
            "cold_s": round(cold_s, 3),
            "warm_s": round(warm_s, 3),
            "cold_videos_per_s": round(args.videos / cold_s, 1),
            "warm_over_cold": round(warm_s / cold_s, 4),
        }
        print(f"{kind}: {args.videos} videos cold {cold_s:.2f} s, warm {warm_s:.3f} s", file=sys.stderr)
    print(write_result(args.out, result))


if __name__ == "__main__":
    main()
