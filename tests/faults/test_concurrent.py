"""Two `extract` runs on one cache: the second refuses naming the holder, or waits with --wait-lock;
a lock left by a killed holder is taken over; the cache is never corrupted.

The first writer is SIGSTOPped while it holds the lock, so the overlap is certain however slow the
machine, and SIGKILLed while holding it for the stale-lock case.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from cache.verify import verify_cache
from faults.harness import (
    assert_same_arrays,
    assert_user_error_line,
    extract_argv,
    pipeline_cmd,
    planned_work,
    split_arrays,
    wait_until,
)


def _holder(key_dir: Path) -> int | None:
    try:
        return json.loads((key_dir / ".lock").read_text()).get("pid")
    except (OSError, ValueError):
        return None


def test_a_second_writer_refuses_or_waits(zygote, reference, tmp_path, reliability):
    cache = tmp_path / "cache"
    key_dir = cache / reference.key
    first = zygote.spawn(extract_argv(reference.data, cache), log=tmp_path / "first.log")
    wait_until(lambda: _holder(key_dir) == first.pid, 120, "the first writer to take the lock")
    first.signal(signal.SIGSTOP)
    try:
        # A real second process, started while the first holds the lock: refused, holder named.
        proc = subprocess.run(
            pipeline_cmd(*extract_argv(reference.data, cache)), capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 2, proc.stderr[-3000:]
        refusal = assert_user_error_line(proc.stderr, str(key_dir), "in use by", f"pid {first.pid}")
        # A third with --wait-lock waits for the holder, then finds everything done.
        waiter = zygote.spawn(extract_argv(reference.data, cache, "--wait-lock"), log=tmp_path / "waiter.log")
        wait_until(lambda: "waiting for cache" in waiter.log(), 120, "the waiter to report that it waits")
        assert f"pid {first.pid}" in waiter.log()
    finally:
        first.signal(signal.SIGCONT)
    done, waited = first.wait(), waiter.wait()
    assert done.status == 0, done.log[-3000:]
    assert waited.status == 0 and planned_work(waited.log) == 0, waited.log[-3000:]
    assert verify_cache(key_dir) == []
    assert_same_arrays(reference.arrays, split_arrays(key_dir))
    reliability.record(
        "concurrent writers",
        "a second `extract` on a cache whose lock is held",
        2,
        [
            "without --wait-lock: exit 2, one line naming the holder's pid and command",
            "with --wait-lock: waits, then reuses everything (0 computed)",
            "cache verifies and equals an uninterrupted run",
        ],
        message=refusal.removeprefix("error: "),
    )


def test_a_lock_left_by_a_killed_writer_is_taken_over(zygote, reference, tmp_path, reliability):
    cache = tmp_path / "cache"
    key_dir = cache / reference.key
    holder = zygote.spawn(extract_argv(reference.data, cache), log=tmp_path / "holder.log")
    wait_until(lambda: _holder(key_dir) == holder.pid, 120, "the writer to take the lock")
    holder.signal(signal.SIGKILL)
    assert holder.wait().killed
    assert _holder(key_dir) == holder.pid  # the dead holder's name is still in the lock file

    again = zygote.run(extract_argv(reference.data, cache), log=tmp_path / "again.log")
    assert again.status == 0, again.log[-3000:]
    note = next(ln for ln in again.log.splitlines() if ln.startswith("note: "))
    assert f"pid {holder.pid}" in note and "stale lock is cleared" in note
    assert _holder(key_dir) is None  # a clean exit leaves no holder behind
    assert verify_cache(key_dir) == []
    assert_same_arrays(reference.arrays, split_arrays(key_dir))
    reliability.record(
        "concurrent writers",
        "the lock holder is SIGKILLed; another `extract` starts",
        1,
        ["the stale lock is detected, reported in one note naming the dead pid, and cleared",
         "the run completes; cache equals an uninterrupted run"],
        message=note,
    )  # fmt: skip
