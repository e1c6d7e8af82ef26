#!/usr/bin/env python
"""A 12-run sweep as 12 separate `train` processes vs one `sweep`, and the memory of `--parallel 2`.

    python -m bench.sweep_cost [--sequences 1000] [--epochs 1] [--rounds 1]

Builds a cache of full-size synthetic sequences (T = 32, D = 768, DINO 384 with a 14 x 14 map, SwAV 2048;
bench/synthetic.py features, written through the cache's own ShardStore + assemble_splits), then, in one
run, alternates the two ways of training the same 12 configurations (lr x seed x streams):
- ``separate``: 12 ``pipeline.py train`` processes, one after the other;
- ``sweep``: one ``pipeline.py sweep`` process (the cache decoded once, runs in turn).
Reported per way: wall seconds, and bytes the processes read through read() syscalls (``rchar`` of
/proc/<pid>/io: the cache, plus Python's own imports, which are the same few MB per process).
Memory: peak over the process tree of the summed PSS (shared pages split between their users), where
the decoded arrays in /dev/shm count once at their whole size (their mapped pages are taken out of the
PSS sum), for one ``train`` process and for ``sweep --parallel 2`` over two runs (``--memory-only``
re-measures just this into an existing result). Writes bench/results/sweep_cost-cpu.json (sweep-*.json are
bench/sweep.py's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from bench.machine import RESULTS, LoadMeter, machine_info, quiet_threads, write_result  # noqa: E402

quiet_threads()

import psutil  # noqa: E402

from bench.synthetic import FeatureSynth, Sizes  # noqa: E402
from cache.assemble import assemble_splits  # noqa: E402
from cache.shards import ShardStore  # noqa: E402
from extract.channels import CHANNEL_NAMES  # noqa: E402

CLASSES = ("circle", "push", "swipe_down", "swipe_left", "swipe_right", "swipe_up")
SIZES = Sizes(frames=32)  # the full preset's encoder sizes
DIMS = SIZES.dims()
GRID = {"lr": ("1e-3", "3e-3", "1e-2"), "seed": ("0", "1"), "streams": ("all", "twelve")}
TARGET = 0.6  # sweep seconds / separate seconds
SHM = Path("/dev/shm")


def build_cache(key_dir: Path, sequences: int, seed: int) -> dict[str, int]:
    """Shards of synthetic sequences, assembled 80/15/5 into train/val/test; returns split counts."""
    synth = FeatureSynth(SIZES, len(CLASSES), seed=seed)
    meta = {
        "key": key_dir.name,
        "class_names": list(CLASSES),
        "dims": DIMS.to_json(),
        "channel_layout": list(CHANNEL_NAMES),
        "config": {"synthetic": True},
    }
    store = ShardStore(key_dir)
    members: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for start in range(0, sequences, 16):
        records = [
            synth.record(i, i % len(CLASSES), CLASSES[i % len(CLASSES)])
            for i in range(start, min(sequences, start + 16))
        ]
        store.write_shard(records, DIMS, meta)
        for r in records:
            k = int(str(r["sequence_ids"])[-5:]) % 20
            members["test" if k == 0 else "val" if k < 4 else "train"].append(str(r["content_ids"]))
    assemble_splits(key_dir, members, list(CLASSES), meta)
    return {s: len(m) for s, m in members.items()}


def combos() -> list[dict[str, str]]:
    import itertools

    return [dict(zip(GRID, v, strict=True)) for v in itertools.product(*GRID.values())]


class TreeMemory:
    """Peak of (summed PSS of a process and its children + decoded arrays in /dev/shm), sampled."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc, self.peak, self._stop = proc, 0, threading.Event()
        self.at_peak: dict[str, int] = {}  # where the peak's bytes were: per process, and the arrays
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> tuple[int, dict[str, int]]:
        """Σ PSS, with the decoded arrays' mapped pages swapped for the arrays' whole size (once)."""
        total, mapped, parts = 0, 0, {}
        for k, p in enumerate([self.proc, *self.proc.children(recursive=True)]):
            try:
                pss = p.memory_full_info().pss
                shared = sum(m.pss for m in p.memory_maps() if "gesture-decoded-" in m.path)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total, mapped = total + pss, mapped + shared
            parts[f"process {k} ({'main' if k == 0 else 'child'}) without the arrays"] = pss - shared
        shm = sum(
            f.stat().st_size for d in SHM.glob(f"gesture-decoded-{self.proc.pid}-*") for f in d.glob("*")
        )
        parts["decoded arrays in shared memory"] = shm
        return total - mapped + shm, parts

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                total, parts = self._sample()
                if total > self.peak:
                    self.peak, self.at_peak = total, parts
            except (psutil.NoSuchProcess, OSError):
                pass
            self._stop.wait(0.2)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_cli(args: list[str], io_file: Path, memory: bool = False) -> dict[str, Any]:
    """One pipeline.py process (through --child, which records its rchar); seconds, bytes, peak memory."""
    cmd = [sys.executable, "-m", "bench.sweep_cost", "--child", str(io_file), "--", *args]  # cwd: ROOT
    start = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if memory:
        with TreeMemory(proc) as mem:
            _, err = proc.communicate()
        peak, at_peak = mem.peak, mem.at_peak
    else:
        _, err = proc.communicate()
        peak, at_peak = None, None
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {err[-2000:]}")
    rows = [json.loads(line) for line in io_file.read_text().splitlines()]
    return {
        "seconds": seconds,
        "rchar": sum(r["rchar"] for r in rows),
        "cache_bytes_read": sum(r["cache"] for r in rows),
        "peak_bytes": peak,
        "at_peak": at_peak,
    }


def child(io_file: str, args: list[str]) -> int:
    """Run pipeline.main(args) here; at exit append its read() bytes and the cache bytes it read."""
    import atexit

    counted = {"cache": 0.0}
    _count_cache_reads(counted)

    def record() -> None:
        rchar = psutil.Process().io_counters().read_chars
        with open(io_file, "a") as fh:
            fh.write(json.dumps({"rchar": rchar, "cache": counted["cache"]}) + "\n")

    atexit.register(record)
    sys.argv = ["pipeline.py", *args]
    import pipeline

    return pipeline.main(args)


def _count_cache_reads(counted: dict[str, float]) -> None:
    """Count the stored (compressed) bytes of the chunks the reader paths fetch from split files:
    whole-field preloads (CacheDataset._read_whole) and per-sequence reads (cache.chunks.direct_reader,
    as the reader and the sweep's decoder call it; one sequence per chunk, so the mean chunk size)."""
    import cache.chunks
    import cache.reader
    import train.arrays

    whole = cache.reader.CacheDataset._read_whole

    def read_whole(self, h5, name):
        counted["cache"] += h5[name].id.get_storage_size()
        return whole(self, h5, name)

    def direct_reader(ds):
        per_chunk = ds.id.get_storage_size() / max(1, ds.shape[0])
        read = cache.chunks.direct_reader(ds) or ds.__getitem__

        def counting(i):
            counted["cache"] += per_chunk
            return read(i)

        return counting

    cache.reader.CacheDataset._read_whole = read_whole
    cache.reader.direct_reader = direct_reader
    train.arrays.direct_reader = direct_reader


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1], argv[3:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1, help="separate/sweep alternations (drift cancels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--memory-only", action="store_true", help="re-measure memory into the existing JSON")
    args = p.parse_args(argv)
    if args.memory_only:
        return memory_only(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    common = ["--epochs", str(args.epochs), "--device", "cpu", "--batch-size", "32"]
    try:
        key_dir = tmp / "cache" / "sweepbench"
        t = time.perf_counter()
        counts = build_cache(key_dir, args.sequences, args.seed)
        build_s = time.perf_counter() - t
        cache_bytes = sum(f.stat().st_size for f in key_dir.glob("*.h5"))
        print(f"cache: {counts}, {cache_bytes / 1e6:.0f} MB, built in {build_s:.0f} s", flush=True)
        ways: dict[str, list[dict[str, Any]]] = {"separate": [], "sweep": []}
        grid = " ".join(f"{k}={','.join(v)}" for k, v in GRID.items())
        for r in range(args.rounds):
            for way in ("separate", "sweep") if r % 2 == 0 else ("sweep", "separate"):
                out, io_file = tmp / f"runs-{way}-{r}", tmp / f"io-{way}-{r}.jsonl"
                with LoadMeter() as meter:
                    if way == "sweep":
                        res = run_cli(
                            [
                                "sweep",
                                "--cache",
                                str(key_dir),
                                "--out",
                                str(out),
                                "--name",
                                "s",
                                "--grid",
                                grid,
                                *common,
                            ],
                            io_file,
                        )
                    else:
                        per = [
                            run_cli(
                                [
                                    "train",
                                    "--cache",
                                    str(key_dir),
                                    "--out",
                                    str(out / "s"),
                                    "--name",
                                    _name(c),
                                    *_flags(c),
                                    *common,
                                ],
                                io_file,
                            )
                            for c in combos()
                        ]
                        res = {k: sum(x[k] for x in per) for k in ("seconds", "rchar", "cache_bytes_read")}
                ways[way].append({**res, "load": meter.result, "same_metrics_as_separate": None})
                print(
                    way,
                    f"{res['seconds']:.1f} s",
                    f"{res['rchar'] / 1e9:.2f} GB read",
                    meter.result,
                    flush=True,
                )
        same = all(
            (tmp / "runs-separate-0" / "s" / _name(c) / "metrics.csv").read_text()
            == (tmp / "runs-sweep-0" / "s" / _name(c) / "metrics.csv").read_text()
            for c in combos()
        )
        one, par = memory_phase(key_dir, tmp, common)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = {w: min(x["seconds"] for x in xs) for w, xs in ways.items()}
    ratio = seconds["sweep"] / seconds["separate"]
    result = {
        "device": "cpu",
        "machine": machine_info("cpu"),
        "command": " ".join(["python", "-m", "bench.sweep_cost", *argv]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sequences": args.sequences,
        "splits": counts,
        "dims": DIMS.to_json(),
        "epochs": args.epochs,
        "grid": grid,
        "runs": len(combos()),
        "cache_bytes": cache_bytes,
        "build_s": build_s,
        "ways": ways,
        "seconds": seconds,
        "rchar_bytes": {w: min(x["rchar"] for x in xs) for w, xs in ways.items()},
        "cache_bytes_read": {w: min(x["cache_bytes_read"] for x in xs) for w, xs in ways.items()},
        "same_metrics_csv": same,
        "peak_memory_bytes": {"one_train": one["peak_bytes"], "sweep_parallel_2": par["peak_bytes"]},
        "memory_at_peak": {"one_train": one["at_peak"], "sweep_parallel_2": par["at_peak"]},
        "parallel_2_seconds": par["seconds"],
        "ratios": {
            "sweep_over_separate_seconds": ratio,
            "parallel_2_over_one_train_memory": par["peak_bytes"] / one["peak_bytes"],
        },
        "targets": {
            "sweep_over_separate_seconds": {"value": ratio, "target": TARGET, "holds": ratio <= TARGET}
        },
        "cpu_count": os.cpu_count(),
    }
    print(write_result(args.out or RESULTS / "sweep_cost-cpu.json", result))
    print(
        f"separate {seconds['separate']:.0f} s, sweep {seconds['sweep']:.0f} s ({ratio:.2f}x); "
        f"memory parallel-2 / one run {result['ratios']['parallel_2_over_one_train_memory']:.2f}x"
    )
    return 0


def memory_phase(key_dir: Path, tmp: Path, common: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    one = run_cli(
        ["train", "--cache", str(key_dir), "--out", str(tmp / "mem"), "--name", "one", *common],
        tmp / "io-one.jsonl",
        memory=True,
    )
    par = run_cli(
        ["sweep", "--cache", str(key_dir), "--out", str(tmp / "mem"), "--name", "par"]
        + ["--grid", "seed=0,1", "--parallel", "2", *common],
        tmp / "io-par.jsonl",
        memory=True,
    )
    return one, par


def memory_only(args: argparse.Namespace) -> int:
    path = args.out or RESULTS / "sweep_cost-cpu.json"
    result = json.loads(path.read_text())
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        key_dir = tmp / "cache" / "sweepbench"
        build_cache(key_dir, result["sequences"], args.seed)
        common = ["--epochs", str(result["epochs"]), "--device", "cpu", "--batch-size", "32"]
        one, par = memory_phase(key_dir, tmp, common)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["peak_memory_bytes"] = {"one_train": one["peak_bytes"], "sweep_parallel_2": par["peak_bytes"]}
    result["memory_at_peak"] = {"one_train": one["at_peak"], "sweep_parallel_2": par["at_peak"]}
    result["parallel_2_seconds"] = par["seconds"]
    result["ratios"]["parallel_2_over_one_train_memory"] = par["peak_bytes"] / one["peak_bytes"]
    result["memory_measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print(write_result(path, result))
    print(f"memory parallel-2 / one run {result['ratios']['parallel_2_over_one_train_memory']:.2f}x")
    return 0


def _name(c: dict[str, str]) -> str:
    from train.sweep import run_name

    return run_name({"lr": float(c["lr"]), "seed": int(c["seed"]), "streams": c["streams"]})


def _flags(c: dict[str, str]) -> list[str]:
    return [x for k, v in c.items() for x in (f"--{k}", v)]


if __name__ == "__main__":
    sys.exit(main())
