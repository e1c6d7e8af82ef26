"""kill -9 in the middle of an extraction: the re-run finishes and the arrays equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT, tiny_extract_argv, tiny_extract_config

from cache.verify import verify_cache
from extract.run import run


def _cli(data: Path, cache: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "pipeline.py"),
        *tiny_extract_argv(data, cache, shard_size=4, batch_size=1),
    ]


def _kill_after(cmd: list[str], cache: Path, shards: int) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``shards`` finished shard files exist."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(cache.glob("*/shards/*.h5"))) >= shards:
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


@pytest.mark.parametrize("shards_before_kill", [1, 3])
def test_kill_9_then_rerun_matches_an_uninterrupted_run(small_demo, tmp_path, shards_before_kill):
    data = tmp_path / "data"
    shutil.copytree(small_demo, data)
    reference = run(tiny_extract_config(data, tmp_path / "ref", batch_size=1))

    cache = tmp_path / "killed"
    _kill_after(_cli(data, cache), cache, shards_before_kill)
    [key_dir] = list(cache.iterdir())
    assert (
        not (key_dir / "manifest.json").exists()
        or '"complete": true' not in (key_dir / "manifest.json").read_text()
    )

    resumed = run(tiny_extract_config(data, cache, batch_size=1))
    assert resumed.key_dir.name == reference.key_dir.name
    assert resumed.reused >= 4 * shards_before_kill  # finished shards are not recomputed
    assert resumed.computed + resumed.reused == 18
    assert verify_cache(resumed.key_dir) == []
    for split in ("train", "val", "test"):
        with (
            h5py.File(reference.key_dir / f"{split}.h5") as a,
            h5py.File(resumed.key_dir / f"{split}.h5") as b,
        ):
            assert set(a) == set(b)
            for name in a:
                np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=f"{split}/{name}")


def test_an_unreadable_shard_is_one_warning_line_per_run(small_demo, tmp_path, capsys):
    """A shard an earlier run left damaged is skipped and re-extracted; the user reads that once, as a
    `warning:` line, not as Python's two-line UserWarning with its source line, printed twice per run."""
    import pipeline

    argv = tiny_extract_argv(small_demo, tmp_path / "cache", shard_size=4)
    assert pipeline.main(argv) == 0
    shard = sorted((tmp_path / "cache").glob("*/shards/*.h5"))[0]
    shard.write_bytes(b"not an HDF5 file")
    capsys.readouterr()
    assert pipeline.main(argv) == 0
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "unreadable shard skipped" in line]
    assert len(said) == 1 and said[0].startswith(f"warning: {shard}"), err
    assert "UserWarning" not in err


def test_rerun_over_an_earlier_runs_damaged_shard_chunk_names_it_and_does_not_mark_complete(
    small_demo, tmp_path, capsys
):
    """Re-running extract to rebuild deleted split files copied an earlier run's shard chunks raw: a
    damaged chunk went into a cache marked complete (exit 0). It is now one line naming the shard."""
    from faults.harness import flip_bytes_in_chunk

    import pipeline

    argv = tiny_extract_argv(small_demo, tmp_path / "cache", shard_size=4)
    assert pipeline.main(argv) == 0
    key_dir = next((tmp_path / "cache").glob("*/shards")).parent
    shard = sorted((key_dir / "shards").glob("*.h5"))[0]
    flip_bytes_in_chunk(shard, "embeddings", 0)
    for split in ("train", "val", "test"):
        (key_dir / f"{split}.h5").unlink(missing_ok=True)
    capsys.readouterr()
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {shard}: damaged shard") and "re-run" in err[-1], err
    assert json.loads((key_dir / "manifest.json").read_text())["complete"] is False


def _edit_frames(key_json: Path) -> None:
    recorded = json.loads(key_json.read_text())
    recorded["dims"]["frames"] += 1
    key_json.write_text(json.dumps(recorded))


@pytest.mark.parametrize(
    "damage, said",
    [(Path.unlink, "unreadable"), (_edit_frames, "its dims differ from those shard-")],
    ids=["lost", "edited"],
)
def test_a_lost_or_edited_key_json_is_rebuilt_from_the_shards_not_blamed_on_them(
    small_demo, tmp_path, capsys, damage, said
):
    """key.json records the cache's layout; losing it made a complete cache's re-run say "delete the
    cache and re-run extract", throwing every encoded sequence away, and an edited one made assembly call
    a good shard damaged (and advise deleting it). The shards record the layout they were written with."""
    import pipeline

    argv = tiny_extract_argv(small_demo, tmp_path / "cache")
    assert pipeline.main(argv) == 0
    key_json = next((tmp_path / "cache").glob("*/key.json"))
    recorded = json.loads(key_json.read_text())
    damage(key_json)
    for split in ("train", "val", "test"):  # assembly runs again, over the stored sequences
        (key_json.parent / f"{split}.h5").unlink()
    capsys.readouterr()
    assert pipeline.main(argv) == 0
    err = capsys.readouterr().err
    assert "0 computed" in err and f"note: {key_json}: {said}" in err and "rebuilt it from shard-" in err
    assert json.loads(key_json.read_text()) == recorded
    assert verify_cache(key_json.parent) == []
