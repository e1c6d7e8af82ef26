"""Extraction into the content-addressed cache: reuse, incremental growth, new keys, the CLI contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT, tiny_extract_argv, tiny_extract_config

import extract.run as extract_run
from cache.verify import verify_cache
from extract.run import run


def _arrays(key_dir: Path, split: str) -> dict[str, np.ndarray]:
    with h5py.File(key_dir / f"{split}.h5", "r") as f:
        return {name: f[name][()] for name in f}


@pytest.fixture()
def dataset(small_demo, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(small_demo, root)
    return root


def test_second_extract_reuses_everything_and_builds_no_encoder(dataset, tmp_path, monkeypatch):
    cfg = tiny_extract_config(dataset, tmp_path / "cache")
    first = run(cfg)
    assert first.computed == 18 and first.reused == 0 and first.forward_calls > 0
    assert verify_cache(first.key_dir) == []

    def no_encoders(_cfg):
        raise AssertionError("a reused cache must not build an encoder")

    monkeypatch.setattr(extract_run, "build_encoders", no_encoders)
    second = run(cfg)
    assert second.key_dir == first.key_dir
    assert (second.computed, second.reused, second.forward_calls) == (0, 18, 0)
    for split in ("train", "val"):
        a, b = _arrays(first.key_dir, split), _arrays(second.key_dir, split)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_adding_one_video_computes_one_sequence(dataset, tmp_path):
    cfg = tiny_extract_config(dataset, tmp_path / "cache")
    run(cfg)
    cls = sorted(p for p in dataset.iterdir() if p.is_dir())[0]
    src_id = sorted(p.name.split("_frame_")[0] for p in cls.iterdir())[0]
    for frame in cls.glob(f"{src_id}_frame_*"):
        shutil.copy(frame, cls / frame.name.replace(src_id, "s99_v999"))
    again = run(cfg)
    assert (again.computed, again.reused) == (1, 18)
    assert verify_cache(again.key_dir) == []


def test_changed_frame_reextracts_only_its_video(dataset, tmp_path):
    cfg = tiny_extract_config(dataset, tmp_path / "cache")
    run(cfg)
    frame = sorted(sorted(p for p in dataset.iterdir() if p.is_dir())[1].iterdir())[0]
    data = bytearray(frame.read_bytes())
    frame.write_bytes(bytes(data))  # same bytes, new mtime: the fingerprint must still notice
    again = run(cfg)
    assert (again.computed, again.reused) == (1, 17)


def test_changed_split_ratio_computes_nothing_and_reassembles(dataset, tmp_path):
    first = run(tiny_extract_config(dataset, tmp_path / "cache", val=0.34))
    before = _arrays(first.key_dir, "val")["sequence_ids"]
    second = run(tiny_extract_config(dataset, tmp_path / "cache", val=0.67, seed=7))
    assert second.key_dir == first.key_dir
    assert second.computed == 0 and second.forward_calls == 0
    after = _arrays(second.key_dir, "val")["sequence_ids"]
    assert len(after) > len(before)
    assert verify_cache(second.key_dir) == []


def test_a_second_corpus_with_the_same_settings_says_it_replaces_the_first_ones_splits(
    dataset, tmp_path, capsys, monkeypatch
):
    """The key is not of the dataset: another corpus extracted with the same settings lands in the same key
    directory and replaces its split files. That is said before encoding, and undone without encoding."""
    other = tmp_path / "other"
    shutil.copytree(dataset, other)
    shutil.rmtree(sorted(p for p in other.iterdir() if p.is_dir())[0])  # one class fewer
    first = run(tiny_extract_config(dataset, tmp_path / "cache"))
    assert "holds the split files" not in capsys.readouterr().err
    second = run(tiny_extract_config(other, tmp_path / "cache"))
    err = capsys.readouterr().err
    assert second.key_dir == first.key_dir and second.computed == 0
    [line] = [line for line in err.splitlines() if "holds the split files" in line]
    assert (
        line.startswith("warning:") and str(dataset) in line and str(other) in line and "--cache-dir" in line
    )
    back = run(tiny_extract_config(dataset, tmp_path / "cache"))
    assert back.computed == 0 and "holds the split files" in capsys.readouterr().err
    run(tiny_extract_config(dataset, tmp_path / "cache"))
    assert "holds the split files" not in capsys.readouterr().err  # the same corpus again: nothing to say
    # The same corpus named relative to another working folder: the manifest recorded where it is.
    run(tiny_extract_config(other, tmp_path / "cache"))
    monkeypatch.chdir(dataset.parent)
    run(tiny_extract_config(Path(dataset.name), tmp_path / "cache"))
    assert "holds the split files" in capsys.readouterr().err
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run(tiny_extract_config(dataset, tmp_path / "cache"))
    assert "holds the split files" not in capsys.readouterr().err


def test_changed_encoder_or_sampling_gives_a_new_key(dataset, tmp_path):
    base = run(tiny_extract_config(dataset, tmp_path / "cache")).key_dir
    other_seed = run(tiny_extract_config(dataset, tmp_path / "cache", weights_seed=1)).key_dir
    other_frames = run(tiny_extract_config(dataset, tmp_path / "cache", frames=6)).key_dir
    assert len({base, other_seed, other_frames}) == 3


def test_cli_prints_the_cache_dir_last_and_verify_passes(dataset, tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "pipeline.py"),
        *tiny_extract_argv(dataset, tmp_path / "cache", workers=1),
    ]
    # a first run on the machine: ultralytics (the hand detector's library) writes its settings file, and
    # says so on stdout unless told not to; stdout stays the key directory alone
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "ultralytics-settings")}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.strip().splitlines()
    key_dir = Path(line)
    assert key_dir.parent == tmp_path / "cache" and (key_dir / "manifest.json").exists()
    verify = subprocess.run(
        [sys.executable, str(ROOT / "pipeline.py"), "cache", "verify", str(key_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The CLI and the import API agree on the key.
    assert run(tiny_extract_config(dataset, tmp_path / "cache")).key_dir == key_dir


def test_missing_dataset_is_a_one_line_user_error(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "pipeline.py"),
        "extract",
        "--data",
        str(tmp_path / "nope"),
        "--preset",
        "tiny",
        "--weights",
        "random",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(tmp_path / "nope") in proc.stderr.strip().splitlines()[-1]


def test_missing_pretrained_weights_stop_the_run_with_exit_2(dataset, tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "pipeline.py"),
        "extract",
        "--data",
        str(dataset),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--preset",
        "full",
        "--weights",
        "pretrained",
    ]
    env = {
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TORCH_HOME": str(tmp_path / "th"),
        "PATH": "/usr/bin:/bin",
        "YOLO_CONFIG_DIR": str(tmp_path / "yolo"),
        "YOLO_OFFLINE": "1",
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and "--weights random" in last
