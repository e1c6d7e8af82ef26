"""A full disk during extraction or training: exit 2 with one line naming the file, nothing marked
complete, and the same command finishes once there is space.

Two ways in. RLIMIT_FSIZE in the child (with SIGXFSZ ignored) makes the kernel fail real writes
with EFBIG, so h5py and torch report it in their own words. Injected OSErrors cover ENOSPC and
EDQUOT, including the HDF5 form whose errno is only in the message text.
"""

from __future__ import annotations

import errno
import resource
import signal
import subprocess

import pytest

import cache.shards
from cache.reader import open_cache
from cache.verify import verify_cache
from core.errors import CacheError, UserError
from extract.run import run
from faults.harness import (
    TOTAL_DEMO_SEQUENCES,
    assert_same_arrays,
    assert_user_error_line,
    extract_argv,
    extract_config,
    manifest_of,
    pipeline_cmd,
    planned_work,
    shard_contents,
    split_arrays,
)

HDF5_ENOSPC = (
    "Can't synchronously write data (file write failed: time = Sun Jan  1 00:00:00 2026\n, filename = "
    "'{path}', file descriptor = 7, errno = 28, error message = 'No space left on device', buf = "
    "0x55d0, total write size = 4096, bytes this sub-write = 4096, bytes actually written = "
    "18446744073709551615, offset = 0)"
)


def _file_size_limit(limit: int):
    """preexec_fn: writes past ``limit`` bytes per file fail with EFBIG instead of raising SIGXFSZ."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _sizes(reference) -> tuple[int, int]:
    shards = [p.stat().st_size for p in (reference.key_dir / "shards").glob("*.h5")]
    return min(shards), max(shards)


def test_file_size_limit_at_the_first_shard(reference, tmp_path, request, reliability):
    smallest, _ = _sizes(reference)
    cache = tmp_path / "cache"
    key_dir = cache / reference.key
    # A real interpreter: before cache.guarded, this printed the error and then died of SIGSEGV in
    # HDF5's shutdown (exit -11), which only a process that really exits can show.
    proc = subprocess.run(
        pipeline_cmd(*extract_argv(reference.data, cache)),
        preexec_fn=_file_size_limit(smallest // 2),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = assert_user_error_line(proc.stderr, str(key_dir / "shards"), "File too large", "free space")
    assert "Exception ignored" not in proc.stderr
    assert manifest_of(key_dir) is None and shard_contents(key_dir) == {}
    assert not list((key_dir / "shards").glob("*.tmp")), "a partial shard was left behind"

    request.getfixturevalue("fast_encoders")
    again = run(extract_config(reference.data, cache))  # space again: the same extraction completes
    assert again.computed == TOTAL_DEMO_SEQUENCES
    assert verify_cache(key_dir) == []
    assert_same_arrays(reference.arrays, split_arrays(key_dir))
    reliability.record(
        "disk full",
        "file size limit (RLIMIT_FSIZE, EFBIG) hit by the first shard",
        1,
        [
            "a real `python pipeline.py` process exits 2 with one line naming the shard file (before the "
            "fix: that line, then SIGSEGV in HDF5's shutdown)",
            "no shard, tmp file or manifest left",
            "re-run with space completes byte-identically",
        ],
        message=line,
    )


def test_file_size_limit_during_split_assembly(zygote, reference, tmp_path, reliability):
    _, largest = _sizes(reference)
    train_h5 = (reference.key_dir / "train.h5").stat().st_size
    assert largest < train_h5, "the limit must let shards through and stop train.h5"
    cache = tmp_path / "cache"
    key_dir = cache / reference.key
    limit = (largest + train_h5) // 2
    out = zygote.run(extract_argv(reference.data, cache), log=tmp_path / "full.log", fsize=limit)
    assert out.status == 2, out.log[-3000:]
    assert_user_error_line(out.log, str(key_dir / "train.h5.tmp"), "File too large")
    assert manifest_of(key_dir)["complete"] is False
    with pytest.raises(CacheError, match="incomplete"):
        open_cache(key_dir)
    assert len(shard_contents(key_dir)) == TOTAL_DEMO_SEQUENCES // 2  # every finished shard is kept

    again = zygote.run(extract_argv(reference.data, cache), log=tmp_path / "again.log")
    assert again.status == 0, again.log[-3000:]
    assert planned_work(again.log) == 0  # nothing recomputed: only the assembly is redone
    assert verify_cache(key_dir) == []
    assert_same_arrays(reference.arrays, split_arrays(key_dir))
    reliability.record(
        "disk full",
        "file size limit (EFBIG) hit while writing train.h5 during split assembly",
        1,
        [
            "exit 2, one line naming train.h5.tmp",
            "manifest says incomplete and the reader refuses the cache",
            "all shards kept; re-run recomputes nothing and completes byte-identically",
        ],
    )


@pytest.mark.parametrize(
    "make_error",
    [
        pytest.param(lambda p: OSError(errno.ENOSPC, "No space left on device"), id="ENOSPC"),
        pytest.param(lambda p: OSError(errno.EDQUOT, "Disk quota exceeded"), id="EDQUOT"),
        pytest.param(lambda p: OSError(HDF5_ENOSPC.format(path=p)), id="hdf5-text-errno-None"),
    ],
)
def test_no_space_on_the_third_shard(
    make_error, reference, tmp_path, fast_encoders, monkeypatch, reliability
):
    real_publish = cache.shards.publish
    calls = []

    def publish(tmp, final):
        calls.append(final)
        if len(calls) == 3:
            raise make_error(tmp)
        real_publish(tmp, final)

    monkeypatch.setattr(cache.shards, "publish", publish)
    cfg = extract_config(reference.data, tmp_path / "cache")
    key_dir = tmp_path / "cache" / reference.key
    with pytest.raises(UserError) as error:
        run(cfg)
    message = str(error.value)
    assert "\n" not in message and str(key_dir / "shards") in message and "free space" in message
    # Shards of 2 sequences, written two behind the encoders (extract/shard_writer.py): the 3rd fails,
    # the 4th was already handed over and lands too; nothing is marked complete.
    assert len(shard_contents(key_dir)) == 3 and manifest_of(key_dir) is None
    assert not list((key_dir / "shards").glob("*.tmp"))

    monkeypatch.setattr(cache.shards, "publish", real_publish)
    result = run(cfg)
    assert result.computed == TOTAL_DEMO_SEQUENCES - 6 and result.reused == 6
    assert_same_arrays(reference.arrays, split_arrays(key_dir))
    if make_error(None).errno is None:  # record once, for the hardest form
        reliability.record(
            "disk full",
            "ENOSPC / EDQUOT on the 3rd shard (injected; also HDF5's form with errno only in the text)",
            3,
            [
                "one-line UserError naming the shard",
                "the other 3 finished shards kept (the one handed over after it too), no manifest",
                "re-run computes only the 12 missing sequences; byte-identical result",
            ],
        )


def test_disk_full_while_training_writes_a_checkpoint(zygote, tmp_path, reliability):
    from train_fixtures import write_synthetic_cache

    from train.checkpoint import load_checkpoint

    cache = write_synthetic_cache(tmp_path / "cache")
    argv = [
        "train",
        "--cache",
        str(cache),
        "--out",
        str(tmp_path / "runs"),
        "--epochs",
        "1",
        "--hidden",
        "32",
    ]
    out = zygote.run([*argv, "--name", "full"], log=tmp_path / "full.log", fsize=20_000)
    assert out.status == 2, out.log[-3000:]
    assert_user_error_line(out.log, str(tmp_path / "runs" / "full" / "best.pt"), "disk may be full")
    assert not (tmp_path / "runs" / "full" / "best.pt").exists()
    again = zygote.run([*argv, "--name", "again"], log=tmp_path / "again.log")
    assert again.status == 0, again.log[-3000:]
    load_checkpoint(tmp_path / "runs" / "again" / "best.pt")
    reliability.record(
        "disk full",
        "file size limit (EFBIG) while `train` writes best.pt (torch reports it as a RuntimeError)",
        1,
        ["exit 2, one line naming best.pt", "no torn best.pt", "re-run with space trains and saves"],
    )


def test_a_full_disk_no_layer_mapped_is_still_one_line(tmp_path, monkeypatch, capsys, reliability):
    """The CLI's last line of defence: an ENOSPC from a write nobody mapped (a report, a plot)."""
    import cache.inspect
    import pipeline

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.inspect, "cache_info", full)
    assert pipeline.main(["cache", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert_user_error_line(err, str(tmp_path), "No space left on device")
    reliability.record(
        "disk full",
        "ENOSPC from a write no layer mapped (injected into `cache info`)",
        1,
        ["`pipeline.main` exits 2 with one line naming the command's path"],
    )
