"""Fault-injection plumbing: the warm process forker, CLI argument lists and cache comparisons.

Kept out of the test modules so that each test reads as "inject a fault, check what held".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from conftest import tiny_extract_argv

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPLIT_FILES = ("train.h5", "val.h5", "test.h5")
TOTAL_DEMO_SEQUENCES = 18  # small_demo: 6 classes x 3 videos, no augmented copies


def extract_argv(data: Path, cache: Path, *extra: str) -> list[str]:
    """The extraction every fault test runs; the kill test's reference uses exactly these flags."""
    return [*tiny_extract_argv(data, cache, shard_size=2, batch_size=2), *extra]


def pipeline_cmd(*argv: str) -> list[str]:
    """``python pipeline.py ARGV``: a real interpreter start, for the few checks that need one."""
    return [sys.executable, str(ROOT / "pipeline.py"), *argv]


@dataclass
class Outcome:
    """How a child process ended, and what it wrote."""

    pid: int
    status: int  # exit code, or -signum when killed by a signal
    killed: bool
    elapsed: float
    log: str

    @property
    def last_stderr_line(self) -> str:
        lines = [ln for ln in self.log.splitlines() if ln.strip()]
        return lines[-1] if lines else ""


class Child:
    """One forked run; ``wait()`` returns its Outcome."""

    def __init__(self, zygote: Zygote, pid: int, log: Path) -> None:
        self.zygote, self.pid, self.log_path = zygote, pid, log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        self.zygote.signal(self.pid, sig)

    def wait(self, timeout: float = 300.0) -> Outcome:
        res = self.zygote.result(self.pid, timeout)
        return Outcome(self.pid, res["status"], res["killed"], res["elapsed"], self.log())


class Zygote:
    """Client of ``zygote.py``: a warm interpreter that forks ``pipeline.main`` runs on request."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self._stderr = open(workdir / "zygote.log", "w")  # noqa: SIM115  (closed in close())
        # The zygote imports what pytest imports: the checkout (pyproject `pythonpath`) and tests/.
        path = os.pathsep.join(filter(None, (str(ROOT), str(HERE.parent), os.environ.get("PYTHONPATH"))))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faults.zygote"],
            env={**os.environ, "PYTHONPATH": path},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._cond = threading.Condition()
        self._pids: dict[int, int] = {}  # request id -> pid
        self._results: dict[int, dict[str, Any]] = {}  # pid -> exit report
        self._ready = False
        self.import_seconds = 0.0  # how long a cold interpreter takes to import the toolkit here
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_for(lambda: self._ready, 180, "the zygote to import the toolkit")

    def _read(self) -> None:
        for line in self.proc.stdout:
            msg = json.loads(line)
            with self._cond:
                if msg.get("ready"):
                    self._ready = True
                    self.import_seconds = float(msg["import_seconds"])
                elif "id" in msg:
                    self._pids[msg["id"]] = msg["pid"]
                else:
                    self._results[msg["pid"]] = msg
                self._cond.notify_all()

    def _wait_for(self, predicate, timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate() or self.proc.poll() is not None, timeout):
                raise TimeoutError(f"timed out waiting for {what}")
            if not predicate():
                log = (self.workdir / "zygote.log").read_text()[-3000:]
                raise RuntimeError(f"zygote exited while waiting for {what}:\n{log}")

    def _request(self, obj: dict[str, Any]) -> None:
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def spawn(
        self,
        argv: list[str] | None = None,
        *,
        call: str | None = None,
        args: list[Any] | None = None,
        log: Path,
        kill_after: float | None = None,
        fsize: int | None = None,
        env: dict[str, str] | None = None,
    ) -> Child:
        """Fork a run of ``pipeline.main(argv)`` (or ``call(*args)``); SIGKILL it ``kill_after`` s in."""
        self._next += 1
        rid = self._next
        req: dict[str, Any] = {"op": "spawn", "id": rid, "log": str(log), "kill_after": kill_after}
        req.update(fsize=fsize, env=env or {})
        if argv is not None:
            req["argv"] = [str(a) for a in argv]
        else:
            req.update(call=call, args=[str(a) for a in (args or [])])
        self._request(req)
        self._wait_for(lambda: rid in self._pids, 30, "a fork")
        return Child(self, self._pids[rid], log)

    def run(self, argv: list[str], log: Path, **kw: Any) -> Outcome:
        return self.spawn(argv, log=log, **kw).wait()

    def signal(self, pid: int, sig: int) -> None:
        self._request({"op": "signal", "pid": pid, "sig": int(sig)})

    def result(self, pid: int, timeout: float) -> dict[str, Any]:
        try:
            self._wait_for(lambda: pid in self._results, timeout, f"pid {pid} to exit")
        except TimeoutError:
            self.signal(pid, signal.SIGKILL)
            raise
        return self._results[pid]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------ reading caches


def split_arrays(key_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every dataset of the three split files, decoded: {file: {dataset: array}}."""
    out = {}
    for name in SPLIT_FILES:
        with h5py.File(key_dir / name, "r", locking=False) as h5:
            out[name] = {k: h5[k][()] for k in h5}
    return out


def assert_same_arrays(expected: dict, got: dict, context: str = "") -> None:
    """Byte-identical: same files, same datasets, same dtypes, shapes and bytes."""
    assert expected.keys() == got.keys(), context
    for name in expected:
        assert expected[name].keys() == got[name].keys(), f"{context} {name}"
        for ds, a in expected[name].items():
            b = got[name][ds]
            assert a.dtype == b.dtype and a.shape == b.shape, f"{context} {name}/{ds}"
            assert a.tobytes() == b.tobytes(), f"{context} {name}/{ds}: bytes differ"


def content_ids_of(arrays: dict) -> list[str]:
    return [raw.decode() for name in SPLIT_FILES for raw in arrays[name]["content_ids"]]


def shard_contents(key_dir: Path) -> dict[str, list[str]]:
    """Finished shard file name -> its content ids. Every finished shard must open."""
    out = {}
    for path in sorted((key_dir / "shards").glob("*.h5")) if (key_dir / "shards").is_dir() else []:
        with h5py.File(path, "r", locking=False) as h5:
            out[path.name] = [raw.decode() for raw in h5["content_ids"][...]]
    return out


def manifest_of(key_dir: Path) -> dict[str, Any] | None:
    path = key_dir / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


_TODO = re.compile(r"extracting (\d+) of (\d+) sequences")
_REUSED = re.compile(r"reused cache .*: all (\d+) sequences present")


def planned_work(log: str) -> int | None:
    """How many sequences a run set out to compute (its 'extracting N of M' line); None if not reached."""
    if m := _TODO.search(log):
        return int(m[1])
    if _REUSED.search(log):
        return 0
    return None


def copy_cache(key_dir: Path, dest_root: Path) -> Path:
    """A copy of one cache key directory under ``dest_root`` (same key name); shards included."""
    dest = dest_root / key_dir.name
    shutil.copytree(key_dir, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


def assert_user_error_line(text: str, *needles: str) -> str:
    """The CLI's stderr ends in one ``error:`` line naming ``needles``, with no traceback anywhere."""
    assert "Traceback" not in text, text[-3000:]
    errors = [ln for ln in text.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, text[-3000:]
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def flip_bytes_in_chunk(path: Path, dataset: str, row: int) -> None:
    """XOR 8 bytes in the middle of one compressed chunk, as a failing disk or a bad copy would."""
    with h5py.File(path, "r", locking=False) as h5:
        ds = h5[dataset]
        info = ds.id.get_chunk_info_by_coord((row, *([0] * (ds.ndim - 1))))
    fd = os.open(path, os.O_RDWR)
    try:
        middle = info.byte_offset + info.size // 2
        raw = os.pread(fd, 8, middle)
        os.pwrite(fd, bytes(b ^ 0xFF for b in raw), middle)
    finally:
        os.close(fd)


def empty_chunk_entry(path: Path, dataset: str) -> None:
    """Set the stored size of a 1-D field's first chunk to 0 in its B-tree (v1) index record.

    The record is ``size (u32) | filter mask (u32) | offsets (u64 per dim, plus one) | address (u64)``;
    one zeroed byte of a real shard did exactly this, and libhdf5 then crashes on reading the chunk.
    """
    with h5py.File(path, "r", locking=False) as h5:
        ds = h5[dataset]
        assert ds.ndim == 1, "the record layout below is that of a 1-D dataset"
        info = ds.id.get_chunk_info(0)
    record = struct.pack("<II", info.size, info.filter_mask) + bytes(16) + struct.pack("<Q", info.byte_offset)
    data = path.read_bytes()
    at = data.find(record)
    assert at >= 0 and data.find(record, at + 1) < 0, "chunk record not found once"
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, bytes(4), at)
    finally:
        os.close(fd)


def extract_config(data: Path, cache: Path, **overrides: Any):
    """The in-process twin of ``extract_argv``: the same ExtractConfig the CLI flags build."""
    from dataclasses import replace

    from conftest import tiny_extract_config

    data_keys = {"on_bad_frame", "image_size", "frames", "augment_copies"}
    cfg = tiny_extract_config(data, cache, **{k: v for k, v in overrides.items() if k in data_keys})
    rest = {k: v for k, v in overrides.items() if k not in data_keys}
    return replace(cfg, shard_size=2, batch_size=2, **rest)
