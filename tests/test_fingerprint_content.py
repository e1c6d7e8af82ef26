"""``--fingerprint content``: a frame rewritten with the same size and mtime is noticed, and only then.

Planning decides what is stale (a stored sequence is reused only when its content id matches), so
the test compares the content ids two plans give before and after the change.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import tiny_extract_config

from core.digests import MEMO_NAME, DigestMemo
from extract.plan import make_plan


def _ids(cfg) -> dict[str, str]:
    """video key -> content id of its first sequence."""
    out: dict[str, str] = {}
    for item in make_plan(cfg).items:
        out.setdefault(item.sequence.video.key, item.content_id)
    return out


def _rewrite_same_size_same_mtime(path: Path) -> None:
    """Change one byte in the middle of the file, then put its mtime back (a restore tool does this)."""
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


@pytest.fixture
def data(small_demo, tmp_path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(small_demo, copy)
    return copy


def test_content_fingerprint_sees_a_same_size_same_mtime_change_that_stat_misses(data, tmp_path):
    stat_cfg = tiny_extract_config(data, tmp_path / "cache")
    content_cfg = replace(stat_cfg, fingerprint="content")
    before_stat, before_content = _ids(stat_cfg), _ids(content_cfg)  # the second fills the digest memo
    frame = sorted(data.rglob("*_frame_*"))[0]
    video = f"{frame.parent.name}/{frame.name.split('_frame_')[0]}"
    _rewrite_same_size_same_mtime(frame)
    after_stat, after_content = _ids(stat_cfg), _ids(content_cfg)
    assert after_stat == before_stat  # missed: size and mtime are all stat mode looks at
    changed = {k for k in before_content if before_content[k] != after_content[k]}
    assert changed == {video}  # caught, and only that video becomes stale


def test_an_unchanged_file_is_hashed_once_and_a_damaged_memo_is_rebuilt(data, tmp_path):
    frames = sorted(data.rglob("*_frame_*"))
    memo_path = tmp_path / MEMO_NAME
    first = DigestMemo(memo_path)
    digests = [first.digest(f) for f in frames]
    first.save()
    again = DigestMemo(memo_path)
    assert [again.digest(f) for f in frames] == digests and again.hashed == 0
    memo_path.write_bytes(b"\xff\xfe not json")
    rebuilt = DigestMemo(memo_path)
    assert [rebuilt.digest(f) for f in frames] == digests and rebuilt.hashed == len(frames)


def test_a_copy_that_kept_the_bytes_but_not_the_mtimes_keeps_its_content_ids(data, tmp_path):
    cfg = replace(tiny_extract_config(data, tmp_path / "cache"), fingerprint="content")
    before = _ids(cfg)
    copy = tmp_path / "copy"
    shutil.copytree(data, copy, copy_function=shutil.copyfile)  # new mtimes, same bytes
    assert _ids(replace(cfg, dataset=replace(cfg.dataset, data=copy))) == before
