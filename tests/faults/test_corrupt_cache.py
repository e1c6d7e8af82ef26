"""A damaged cache: `cache verify` names every fault by file and dataset and exits 2; `train` refuses it
before reading garbage; the repair `verify` recommends works.

Every case damages a copy of the reference extraction the way a failing disk, a bad copy or a
hand edit would.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from cache.verify import verify_cache
from extract.run import run
from faults.harness import (
    assert_same_arrays,
    assert_user_error_line,
    copy_cache,
    extract_config,
    flip_bytes_in_chunk,
    shard_contents,
    split_arrays,
)


@pytest.fixture
def key_dir(reference, tmp_path) -> Path:
    return copy_cache(reference.key_dir, tmp_path / "cache")


def _verify(zygote, key_dir: Path, tmp_path: Path) -> tuple[int, list[str], str]:
    out = zygote.run(["cache", "verify", str(key_dir)], log=tmp_path / "verify.log")
    faults = [ln[len("FAULT ") :] for ln in out.log.splitlines() if ln.startswith("FAULT ")]
    return out.status, faults, out.log


def _train(zygote, key_dir: Path, tmp_path: Path) -> tuple[int, str, Path]:
    runs = tmp_path / "runs"
    argv = ["train", "--cache", str(key_dir), "--out", str(runs), "--name", "r", "--epochs", "1"]
    out = zygote.run(argv, log=tmp_path / "train.log")
    return out.status, out.log, runs / "r"


def _edit_manifest(key_dir: Path, edit) -> None:
    path = key_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _set(path: Path, dataset: str, row: int, value) -> None:
    import h5py

    with h5py.File(path, "r+") as h5:
        h5[dataset][row] = value


def _truncate(path: Path, fraction: float) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(int(path.stat().st_size * fraction))


# name -> (damage, the fault verify must print, what train's one-line refusal must contain)
DAMAGE = {
    "truncated split file": (
        lambda d: _truncate(d / "val.h5", 0.5),
        "val.h5: cannot open",
        ["val.h5", "verify"],
    ),
    "flipped bytes inside a compressed chunk": (
        lambda d: flip_bytes_in_chunk(d / "train.h5", "embeddings", 3),
        "train.h5: embeddings: cannot read sequence(s) [3]",
        ["train.h5", "embeddings[", "verify"],
    ),
    "label out of range (uncompressed field)": (
        lambda d: _set(d / "train.h5", "labels", 0, 99),
        "train.h5: labels: label outside 0..5 in sequence(s) [0]",
        ["train.h5", "labels: value outside", "verify"],
    ),
    "manifest count edited": (
        lambda d: _edit_manifest(
            d, lambda m: m["splits"]["val"].update(count=m["splits"]["val"]["count"] + 1)
        ),
        "manifest.json: splits.val.count is",
        ["val.h5", "manifest.json says", "verify"],
    ),
    "manifest truncated (invalid JSON)": (
        lambda d: _truncate(d / "manifest.json", 0.5),
        "manifest.json:",
        ["manifest.json", "not valid JSON", "extract"],
    ),
    "manifest sequence ids edited": (
        lambda d: _edit_manifest(d, lambda m: m["splits"]["val"]["sequence_ids"].reverse()),
        "manifest.json: splits.val.sequence_ids do not match val.h5",
        None,  # a cheap check cannot see it; train reads ids from the split file itself
    ),
    "manifest points a split outside the cache": (
        lambda d: _edit_manifest(d, lambda m: m["splits"]["val"].update(file="../../val.h5")),
        "../../val.h5: file missing",
        ["manifest.json", "not a plain file name"],
    ),
    "manifest key edited": (
        lambda d: _edit_manifest(d, lambda m: m.update(key="0" * 16)),
        "attrs: key",
        ["belongs to cache key", "verify"],
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_names_the_fault_and_train_refuses(damage, zygote, key_dir, tmp_path, reliability):
    apply, fault, refusal = DAMAGE[damage]
    assert verify_cache(key_dir) == []
    apply(key_dir)
    status, faults, log = _verify(zygote, key_dir, tmp_path)
    assert status == 2, log
    assert any(fault in f for f in faults), faults
    assert_user_error_line(log, str(key_dir), "fault(s)", "extract")
    trained = None
    if refusal is not None:
        status, log, run_dir = _train(zygote, key_dir, tmp_path)
        assert status == 2, log[-3000:]
        trained = assert_user_error_line(log, *refusal)
        assert not (run_dir / "best.pt").exists()  # nothing was trained on garbage
    said = next(f for f in faults if fault in f)
    names = "file and dataset" if re.match(r"^\S+\.h5: \w+: ", said) else "file"
    held = [f"`cache verify` exits 2 with a FAULT line naming the {names}"]
    if trained:
        held.append("`train` exits 2 with one line pointing to verify / extract; no run is written")
    reliability.record(
        "corrupt cache",
        damage,
        1,
        held,
        verify_says=said,
        **({"train_says": trained.removeprefix("error: ")} if trained else {}),
    )


@pytest.mark.parametrize(
    "damage, delete",
    [
        ("flipped bytes inside a compressed chunk", ["train.h5"]),
        ("truncated split file", ["val.h5"]),
        ("manifest truncated (invalid JSON)", []),  # extract rebuilds it without being asked to delete it
    ],
)
def test_the_repair_verify_recommends_works(damage, delete, reference, key_dir, monkeypatch, reliability):
    DAMAGE[damage][0](key_dir)
    for name in delete:
        (key_dir / name).unlink()
    monkeypatch.setattr("extract.run.build_encoders", _no_encoders)
    result = run(extract_config(reference.data, key_dir.parent))
    assert result.computed == 0 and result.key_dir == key_dir
    assert verify_cache(key_dir) == []
    assert_same_arrays(reference.arrays, split_arrays(key_dir))
    reliability.record(
        "corrupt cache",
        f"repair after: {damage}",
        1,
        [f"{'deleting ' + ', '.join(delete) + ' and ' if delete else ''}re-running extract re-assembles "
         "from shards, computes nothing, and restores a byte-identical cache"],
    )  # fmt: skip


def _no_encoders(cfg):
    raise AssertionError("a repair that only re-assembles must not build an encoder")


def test_deleted_shard_is_harmless_to_readers_and_recomputed_by_extract(
    zygote, reference, key_dir, tmp_path, fast_encoders, reliability
):
    shards = shard_contents(key_dir)
    victim = sorted(shards)[3]
    os.remove(key_dir / "shards" / victim)
    status, faults, log = _verify(zygote, key_dir, tmp_path)
    # Split files are self-contained: the cache still verifies; the note says what a re-assembly costs.
    assert status == 0 and faults == [], log
    note = next(ln for ln in log.splitlines() if ln.startswith("NOTE "))
    assert f"{len(shards[victim])} sequence(s)" in note and "recomputes only those" in note
    result = run(extract_config(reference.data, key_dir.parent))
    assert result.computed == len(shards[victim])  # exactly that shard's sequences
    assert result.reused == len(reference.content_ids) - len(shards[victim])
    assert verify_cache(key_dir) == []
    assert_same_arrays(reference.arrays, split_arrays(key_dir))
    reliability.record(
        "corrupt cache",
        "a shard deleted after assembly",
        1,
        [
            "`cache verify` passes (split files are self-contained) and notes the missing sequences",
            f"re-running extract recomputes exactly that shard's {len(shards[victim])} sequences; "
            "byte-identical result",
        ],
    )


def test_a_damaged_shard_chunk_is_named_and_deleting_the_shard_repairs_it(
    zygote, reference, key_dir, tmp_path, fast_encoders, reliability
):
    """Split files are assembled by copying shard chunks: a damaged shard chunk would be copied into the
    next split files and back after they were deleted. verify names the shard, and its advice (delete the
    file named, re-run extract) recomputes that shard's sequences only."""
    shards = shard_contents(key_dir)
    victim = sorted(shards)[3]
    flip_bytes_in_chunk(key_dir / "shards" / victim, "embeddings", 0)
    status, faults, log = _verify(zygote, key_dir, tmp_path)
    assert status == 2 and len(faults) == 1 and f"shards/{victim}: embeddings" in faults[0], log
    assert "delete the damaged files named above" in log
    os.remove(key_dir / "shards" / victim)
    result = run(extract_config(reference.data, key_dir.parent))
    assert result.computed == len(shards[victim])
    assert verify_cache(key_dir) == []
    assert_same_arrays(reference.arrays, split_arrays(key_dir))
    reliability.record(
        "corrupt cache",
        "flipped bytes inside a compressed chunk of a shard (after assembly)",
        1,
        [
            "`cache verify` exits 2 with a FAULT line naming the shard and dataset: "
            + faults[0].replace(victim, "<shard>.h5").split(": Can't")[0],
            f"deleting that shard and re-running extract recomputes exactly its {len(shards[victim])} "
            "sequences; byte-identical result, and the cache verifies",
        ],
    )


@pytest.mark.parametrize(
    ("workers", "where"), [("1", "a DataLoader worker process"), ("0", "the background reader thread")]
)
def test_a_damaged_chunk_met_while_streaming_is_still_one_line(
    zygote, key_dir, tmp_path, reliability, workers, where
):
    """Without preload the chunk is decoded in a worker process (whose exception comes back wrapped
    in its traceback text) or in the prefetch thread (re-raised in the training loop); either
    way the CLI prints only the one line."""
    flip_bytes_in_chunk(key_dir / "train.h5", "embeddings", 2)
    argv = ["train", "--cache", str(key_dir), "--out", str(tmp_path / "runs"), "--epochs", "1"]
    out = zygote.run([*argv, "--workers", workers, "--no-preload"], log=tmp_path / "train.log")
    assert out.status == 2, out.log[-3000:]
    line = assert_user_error_line(out.log, "train.h5", "embeddings[2]", "verify")
    reliability.record(
        "corrupt cache",
        f"flipped bytes in a chunk read by {where} (`train --workers {workers} --no-preload`)",
        1,
        ["exit 2 with the reader's one-line message, not a traceback"],
        train_says=line.removeprefix("error: "),
    )
