"""The HDF5 watchdog: a metadata walk that never finishes becomes one line, never a hung job.

A stand-in helper that reads its request and then blocks plays the part of libhdf5 looping on a
damaged B-tree; pytest-timeout fails the test instead of letting it hang if the watchdog does not act.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faults.harness import empty_chunk_entry
from train_fixtures import write_synthetic_cache

import cache.watchdog as watchdog
import pipeline
from cache.reader import open_cache
from core.errors import CacheError

LIMIT_S = 1.0
BLOCKS = "import sys, time\nsys.stdin.readline()\ntime.sleep(3600)\n"
CRASHES = "import os, sys\nsys.stdin.readline()\nos.abort()\n"


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """Replace the probe script by ``source``; yields a setter. The helper of earlier tests is dropped."""

    def use(source: str) -> None:
        script = tmp_path / "stand_in.py"
        script.write_text(source)
        monkeypatch.setattr(watchdog, "PROBE_SCRIPT", script)
        monkeypatch.setattr(watchdog, "_helper", None)
        monkeypatch.setattr(watchdog, "_walked", set())
        monkeypatch.setenv(watchdog.ENV_LIMIT, str(LIMIT_S))

    yield use
    if watchdog._helper is not None:
        watchdog._helper.kill()
    watchdog._helper = None


@pytest.fixture
def key_dir(tmp_path) -> Path:
    return write_synthetic_cache(tmp_path / "cache", counts={"train": 3, "val": 3, "test": 0})


@pytest.mark.timeout(LIMIT_S + 30, method="signal")
def test_a_walk_that_never_finishes_becomes_one_line_and_the_helper_is_killed(stand_in, key_dir):
    stand_in(BLOCKS)
    with pytest.raises(watchdog.MetadataHangError) as err:
        open_cache(key_dir)
    assert str(err.value).startswith(f"{key_dir / 'train.h5'}: HDF5 metadata damaged (read did not finish)")
    assert "\n" not in str(err.value)
    assert watchdog._helper is None  # killed and dropped: the next probe starts a fresh one


@pytest.mark.timeout(LIMIT_S + 30, method="signal")
def test_cache_verify_reports_the_hanging_file_as_a_fault(stand_in, key_dir, capsys):
    stand_in(BLOCKS)
    rc = pipeline.main(["cache", "verify", str(key_dir)])
    out = capsys.readouterr()
    assert rc == 2 and "Traceback" not in out.err
    hung = [ln for ln in out.out.splitlines() if "HDF5 metadata damaged (read did not finish)" in ln]
    assert hung and all(ln.startswith("FAULT ") and ".h5" in ln for ln in hung), out.out


@pytest.mark.timeout(LIMIT_S + 30, method="signal")
def test_a_file_that_crashes_the_reader_is_refused_before_this_process_opens_it(stand_in, key_dir):
    stand_in(CRASHES)
    with pytest.raises(watchdog.MetadataHangError, match="crashed the reader"):
        open_cache(key_dir)


def test_the_real_walk_passes_a_healthy_cache(key_dir, monkeypatch):
    monkeypatch.setattr(watchdog, "_walked", set())
    assert open_cache(key_dir).counts == {"train": 3, "val": 3, "test": 0}
    assert len(watchdog._walked) == 3  # every split file walked once by the helper


def test_a_chunk_that_would_crash_libhdf5_is_refused_before_this_process_reads_it(key_dir, monkeypatch):
    """A stored size of 0 (one zeroed byte of a shard did it) crashes libhdf5 on read, not a raise."""
    monkeypatch.setattr(watchdog, "_walked", set())
    empty_chunk_entry(key_dir / "val.h5", "labels")
    with pytest.raises(watchdog.MetadataHangError) as caught:
        open_cache(key_dir)  # walks every split first; without the check, reading labels would crash
    message = str(caught.value)
    assert "\n" not in message and "val.h5" in message and "/labels: a chunk stored as 0 bytes" in message


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_limit_is_a_user_error(monkeypatch, key_dir, value):
    monkeypatch.setenv(watchdog.ENV_LIMIT, value)
    monkeypatch.setattr(watchdog, "_walked", set())
    with pytest.raises(CacheError, match=watchdog.ENV_LIMIT):
        open_cache(key_dir)
