"""What `extract --fingerprint content` costs against the default size+mtime fingerprint.

Writes a synthetic corpus of frame-sized files (random bytes, JPEG-like sizes), then times the
fingerprint of every video three ways: ``stat`` (the default), ``content`` with an empty digest memo
(the first run: every file read and hashed) and ``content`` with the memo filled (later runs).
The page cache is not dropped (that needs root), so the cold-memo figure is hashing from memory:
on a corpus larger than RAM it is bounded by disk reads instead.

    python -m bench.fingerprint [--videos 200] [--frames 40] [--kb 30]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.machine import RESULTS, LoadMeter, cpu_name, write_result
from cache.fingerprint import video_fingerprint
from core.digests import MEMO_NAME, DigestMemo
from data.sequence import Video


def corpus(root: Path, videos: int, frames: int, kb: int) -> list[Video]:
    out = []
    for v in range(videos):
        folder = root / "wave"
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for f in range(frames):
            path = folder / f"v{v:04d}_frame_{f}.jpg"
            path.write_bytes(os.urandom(kb * 1024))
            files.append(path)
        out.append(Video("wave", 0, f"v{v:04d}", frames, root, frames=tuple(files)))
    return out


def timed(fn) -> dict[str, float]:
    with LoadMeter() as meter:
        fn()
    return meter.result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--kb", type=int, default=30, help="bytes per frame file, in KiB")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fingerprint-") as tmp:
        videos = corpus(Path(tmp) / "data", args.videos, args.frames, args.kb)
        memo_path = Path(tmp) / MEMO_NAME

        def content() -> None:
            memo = DigestMemo(memo_path)
            for v in videos:
                video_fingerprint(v, digests=memo)
            memo.save()

        stat = timed(lambda: [video_fingerprint(v) for v in videos])
        cold = timed(content)
        warm = timed(content)
        memo_bytes = memo_path.stat().st_size
    files = args.videos * args.frames
    result = {
        "benchmark": "fingerprint",
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "corpus": {"videos": args.videos, "files": files, "bytes_per_file": args.kb * 1024},
        "stat": stat,
        "content_first_run": cold,
        "content_memo_filled": warm,
        "per_file_us": {
            name: round(r["seconds"] / files * 1e6, 1)
            for name, r in (("stat", stat), ("content_first_run", cold), ("content_memo_filled", warm))
        },
        "hash_mb_per_s": round(files * args.kb / 1024 / cold["seconds"], 1),
        "memo_bytes_per_file": round(memo_bytes / files, 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(write_result(RESULTS / "fingerprint-cpu.json", result))
    print(result["per_file_us"], f"hash {result['hash_mb_per_s']} MB/s")


if __name__ == "__main__":
    main()
