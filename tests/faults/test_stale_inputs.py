"""Inputs that change after extraction: the re-run notices, re-extracts only that video, and never
serves the stale sequence."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cache.verify import verify_cache
from data.discovery import FRAME_NAME
from extract.run import run
from faults.harness import copy_cache, extract_config, split_arrays

VIDEO = "swipe_left/s02_v011"  # one of the small demo's 18 videos


def _rows(arrays: dict) -> dict[str, tuple[str, int]]:
    """sequence id -> (split file, row)."""
    return {raw.decode(): (name, i) for name, a in arrays.items() for i, raw in enumerate(a["sequence_ids"])}


def _frames(data: Path) -> list[Path]:
    cls, vid = VIDEO.split("/")
    found = [(int(m["number"]), p) for p in (data / cls).iterdir() if (m := FRAME_NAME.match(p.stem))]
    return [p for n, p in sorted(found) if p.stem.startswith(f"{vid}_frame_")]


def _touch_later(path: Path, like: Path) -> None:
    """An edit a second after extraction: some filesystems keep only coarse mtimes."""
    ns = like.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(ns, ns))


def _modify(data: Path, sampled: np.ndarray) -> str:
    frame = _frames(data)[int(sampled[len(sampled) // 2])]  # a frame the sequence really uses
    pixels = 255 - np.asarray(Image.open(frame).convert("RGB"))
    Image.fromarray(pixels).save(frame)
    _touch_later(frame, frame)
    return frame.name


def _add(data: Path, sampled: np.ndarray) -> str:
    frames = _frames(data)
    number = int(FRAME_NAME.match(frames[-1].stem)["number"]) + 1
    new = frames[-1].with_name(f"{VIDEO.split('/')[1]}_frame_{number}{frames[-1].suffix}")
    shutil.copy(frames[0], new)
    return new.name


def _delete(data: Path, sampled: np.ndarray) -> str:
    frame = _frames(data)[-1]
    frame.unlink()
    return frame.name


_WHAT = {_modify: "modified", _add: "added", _delete: "deleted"}


@pytest.mark.parametrize("change", [_modify, _add, _delete], ids=["modified", "added", "deleted"])
def test_a_changed_video_is_reextracted_alone(change, reference, tmp_path, fast_encoders, reliability):
    data = tmp_path / "data"
    shutil.copytree(reference.data, data)  # copy2: same mtimes, so the cache below is still valid
    key_dir = copy_cache(reference.key_dir, tmp_path / "cache")
    before = _rows(reference.arrays)
    file, row = before[VIDEO]
    old_cid = reference.arrays[file]["content_ids"][row]
    what = change(data, reference.arrays[file]["frame_indices"][row])

    result = run(extract_config(data, key_dir.parent))
    assert result.key_dir == key_dir
    assert result.computed == 1 and result.reused == len(before) - 1  # only that video
    after = split_arrays(key_dir)
    rows = _rows(after)
    assert rows.keys() == before.keys()
    new_file, new_row = rows[VIDEO]
    assert after[new_file]["content_ids"][new_row] != old_cid
    held = {c for a in after.values() for c in a["content_ids"]}
    assert old_cid not in held  # the stale sequence is not served
    assert not np.array_equal(
        after[new_file]["embeddings"][new_row], reference.arrays[file]["embeddings"][row]
    ), "the new sequence must come from the new frames"
    for sid, (f, i) in before.items():  # every other sequence is byte-for-byte the old one
        if sid != VIDEO:
            g, j = rows[sid]
            for name in after[g]:
                assert after[g][name][j].tobytes() == reference.arrays[f][name][i].tobytes(), (sid, name)
    assert verify_cache(key_dir) == []
    reliability.record(
        "stale inputs",
        f"a frame {_WHAT[change]} after extraction",
        1,
        [
            "re-run recomputes exactly that video's sequence (1 of 18)",
            "split files hold its new content id, never the stale one",
            "the other 17 sequences are byte-identical; verify passes",
        ],
        changed=what,
    )
