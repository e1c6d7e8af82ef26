#!/usr/bin/env python
"""Discovery at corpus scale: list a Jester-like tree of >= 1 million frame files, cold and warm.

    python -m bench.discover [--clips 28000] [--frames-per-clip 36] [--out bench/results/discover-cpu.json]

Writes ``20bn-jester-v1/<id>/00001.jpg ...`` as empty files (listing never reads a frame) with the label
CSVs, in a temporary folder deleted afterwards, then times ``data.sequences.read_samples`` (the jester
format: one ``os.scandir`` per clip folder, names only) twice with the same listing memo:

- cold: no memo yet, every clip folder is listed;
- warm: the tree is unchanged, so every folder's mtime matches the memo and nothing is listed again.

Also timed, for the record: the content fingerprints ``extract`` then computes (one ``stat`` per frame
file: the size + mtime proxy of the bytes), which the listing memo does not cover.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import RESULTS, LoadMeter, machine_info, quiet_threads, write_result  # noqa: E402

quiet_threads()

from cache.fingerprint import video_fingerprint  # noqa: E402
from data.config import DataConfig  # noqa: E402
from data.sequences import read_samples  # noqa: E402

LABELS = ["Swiping Left", "Swiping Right", "Thumb Up", "Thumb Down", "Stop Sign"]


def write_tree(root: Path, clips: int, frames: int) -> int:
    """A Jester-like tree of empty frame files; returns how many frame files it wrote."""
    root.mkdir(parents=True)
    (root / "jester-v1-labels.csv").write_text("\n".join(LABELS) + "\n")
    train, val = [], []
    for clip in range(1, clips + 1):
        folder = root / "20bn-jester-v1" / str(clip)
        folder.mkdir(parents=True)
        for n in range(1, frames + 1):
            os.close(os.open(folder / f"{n:05d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
        (val if clip % 10 == 0 else train).append(f"{clip};{LABELS[clip % len(LABELS)]}")
    (root / "jester-v1-train.csv").write_text("\n".join(train) + "\n")
    (root / "jester-v1-validation.csv").write_text("\n".join(val) + "\n")
    return clips * frames


def timed_read(root: Path, memo: Path) -> tuple[float, dict[str, float], object]:
    with LoadMeter() as load:
        start = time.perf_counter()
        dataset = read_samples(DataConfig(data=root, format="jester"), memo_path=memo)
        seconds = time.perf_counter() - start
    return seconds, load.result, dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--clips", type=int, default=28_000)
    parser.add_argument("--frames-per-clip", type=int, default=36)
    parser.add_argument("--out", type=Path, default=RESULTS / "discover-cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="discover-bench-") as tmp:
        root = Path(tmp) / "jester"
        started = time.perf_counter()
        files = write_tree(root, args.clips, args.frames_per_clip)
        write_s = time.perf_counter() - started
        memo = Path(tmp) / "memo" / "listing.pkl"
        cold_s, cold_load, dataset = timed_read(root, memo)
        warm_s, warm_load, again = timed_read(root, memo)
        assert [v.key for v in again.videos] == [v.key for v in dataset.videos]
        assert sum(v.num_frames for v in dataset.videos) == files
        with LoadMeter() as fp_load:
            start = time.perf_counter()
            sources: dict = {}
            for video in dataset.videos:
                video_fingerprint(video, sources)
            fingerprint_s = time.perf_counter() - start
    result = {
        "machine": machine_info("cpu"),
        "clips": args.clips,
        "frame_files": files,
        "write_tree_s": round(write_s, 2),
        "cold_s": round(cold_s, 3),
        "warm_s": round(warm_s, 3),
        "cold_frame_files_per_s": round(files / cold_s),
        "warm_frame_files_per_s": round(files / warm_s),
        "warm_over_cold": round(warm_s / cold_s, 4),
        "fingerprint_s": round(fingerprint_s, 3),
        "load": {"cold": cold_load, "warm": warm_load, "fingerprint": fp_load.result},
        "note": "cold = no listing memo (the OS page cache holds the freshly written tree); "
        "warm = unchanged tree, memo valid",
    }
    print(write_result(args.out, result))
    print(
        f"{files} frame files: cold {cold_s:.2f} s ({files / cold_s:,.0f} files/s), warm {warm_s:.3f} s "
        f"({warm_s / cold_s:.1%} of cold); fingerprints {fingerprint_s:.2f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
