"""The bad-input corpus: every kind either succeeds (converted), stops with one line naming the file,
or, under ``--on-bad-frame skip``, is skipped and counted.

Each case starts from a tiny valid dataset (2 classes x 2 videos x 4 frames of 16x16) and adds one
problem. Extraction runs through the import API (``extract.run.run``) for speed, with the suite's
reused tiny encoders; a handful then go through the CLI to show exit 2 and no traceback.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data.frames
from cache.verify import verify_cache
from core.errors import UserError
from extract.run import run
from faults.harness import (
    assert_user_error_line,
    extract_argv,
    extract_config,
    manifest_of,
    split_arrays,
)


@dataclass
class Bad:
    """What a case planted: text the message must contain, and the video a skip drops (if any)."""

    needle: str
    drops: str | None = None


def _png(path: Path, value: int, size=(16, 16), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    ramp = (np.arange(w * h).reshape(h, w) + value) % 256  # not flat: every frame has structure
    if mode == "RGB":
        img = Image.fromarray(np.stack([ramp, 255 - ramp, ramp // 2], -1).astype(np.uint8))
    elif mode == "I;16":
        img = Image.fromarray((ramp * 257).astype(np.uint16))  # mode I;16
        assert img.mode == "I;16"
    else:
        img = Image.fromarray(ramp.astype(np.uint8), mode="L").convert(mode)
    img.save(path)
    return path


def _video(folder: Path, video_id: str, frames: int, value: int, **kw) -> list[Path]:
    return [_png(folder / f"{video_id}_frame_{n}.png", value + 7 * n, **kw) for n in range(frames)]


def _base(root: Path) -> Path:
    data = root / "data"
    for cls, value in (("clap", 10), ("wave", 120)):
        for v in (1, 2):
            _video(data / cls, f"{cls[0]}{v}", 4, value + 30 * v)
    return data


def _huge_png(path: Path, width: int = 20_000, height: int = 20_000) -> None:
    """A real, valid 1-bit PNG of width x height, written in ~100 KB by streaming compressed zero rows."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    comp = zlib.compressobj(9)
    rows = (b"\x00" + bytes((width + 7) // 8)) * 1000  # filter byte + a row of zero bits, x1000
    idat = b"".join(comp.compress(rows) for _ in range(height // 1000)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _mp4(path: Path, frames: int = 30) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for n in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 8 * n % 256, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


# ---------------------------------------------------------------- the corpus: data -> Bad


def corrupt_image(d: Path) -> Bad:
    p = d / "clap" / "c1_frame_2.png"
    p.write_bytes(os.urandom(300))
    return Bad(str(p), "clap/c1")


def truncated_image(d: Path) -> Bad:
    p = d / "clap" / "c1_frame_2.png"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return Bad(str(p), "clap/c1")


def zero_byte_image(d: Path) -> Bad:
    p = d / "clap" / "c1_frame_3.png"
    p.write_bytes(b"")
    return Bad(str(p))


def non_image_file(d: Path) -> Bad:
    p = d / "clap" / "notes.txt"
    p.write_text("not a frame")
    return Bad(str(p))


def empty_class_folder(d: Path) -> Bad:
    (d / "empty").mkdir()
    return Bad(str(d / "empty"))


def root_with_no_videos(d: Path) -> Bad:
    shutil.rmtree(d)
    d.mkdir()
    return Bad(str(d))


def mixed_frame_sizes(d: Path) -> Bad:
    # Each frame is resized to --image-size with one warning (issue 12): extracts, is not bad input.
    _png(d / "clap" / "c1_frame_1.png", 3, size=(20, 16))
    return Bad("clap/c1")


def grayscale_frames(d: Path) -> Bad:
    _video(d / "wave", "w3", 4, 50, mode="L")
    return Bad("wave/w3")


def rgba_frames(d: Path) -> Bad:
    _video(d / "wave", "w3", 4, 50, mode="RGBA")
    return Bad("wave/w3")


def sixteen_bit_frames(d: Path) -> Bad:
    frames = _video(d / "wave", "w3", 4, 50, mode="I;16")
    rgb = data.frames.load_image(frames[1])
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 16, 3) and rgb.std() > 10  # scaled, not clipped
    return Bad("wave/w3")


def frame_name_not_matching(d: Path) -> Bad:
    p = _png(d / "clap" / "c1-frame-9.png", 5)
    return Bad(str(p))


def duplicate_frame_numbers(d: Path) -> Bad:
    _png(d / "clap" / "c1_frame_01.png", 5)  # and c1_frame_1.png exists: which comes first?
    return Bad(str(d / "clap" / "c1_frame_1.png"), "clap/c1")


def root_that_does_not_exist(d: Path) -> Bad:
    shutil.rmtree(d)
    return Bad(str(d))


def corrupt_video_file(d: Path) -> Bad:
    p = d / "clap" / "v9.mp4"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    return Bad(str(p))


def truncated_video_file(d: Path) -> Bad:
    p = d / "clap" / "v9.mp4"
    _mp4(p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    return Bad(str(p), "clap/v9")


def one_frame_video(d: Path) -> Bad:
    _video(d / "wave", "w3", 1, 50)
    return Bad("wave/w3")


def five_thousand_frame_video(d: Path) -> Bad:
    first = _png(d / "wave" / "w3_frame_0.png", 50)
    for n in range(1, 5000):  # hard links: 5,000 real frame files in milliseconds
        os.link(first, d / "wave" / f"w3_frame_{n}.png")
    return Bad("wave/w3")


def unicode_and_spaces_in_paths(d: Path) -> Bad:
    _video(d / "wävé hand", "vïd 1 ✋", 4, 90)
    _video(d / "wävé hand", "vïd 2", 4, 95)
    return Bad("wävé hand/vïd 1 ✋")


def symlink_loop(d: Path) -> Bad:
    p = d / "clap" / "c9_frame_0.png"
    p.symlink_to(p)
    return Bad(str(p))


def broken_symlink(d: Path) -> Bad:
    p = d / "clap" / "c9_frame_0.png"
    p.symlink_to(d / "nowhere.png")
    return Bad(str(p))


def folder_inside_a_class_folder(d: Path) -> Bad:
    (d / "clap" / "extra").mkdir()
    return Bad(str(d / "clap" / "extra"))


def unreadable_file(d: Path) -> Bad:
    """Permissions: chmod 000, and, because tests run as root (who reads anyway), ``open`` of exactly
    this file raises PermissionError as the kernel would for another user; installed by the test."""
    p = d / "clap" / "c1_frame_2.png"
    os.chmod(p, 0)
    return Bad(str(p), "clap/c1")


def image_of_20000x20000_pixels(d: Path) -> Bad:
    p = d / "clap" / "c1_frame_2.png"
    _huge_png(p)
    assert p.stat().st_size < 1_000_000
    return Bad(str(p), "clap/c1")


def class_folder_named_like_a_split(d: Path) -> Bad:
    _video(d / "test", "t1", 4, 70)  # a gesture called "test" beside "clap" and "wave"
    return Bad(str(d))


def ids_too_long_for_the_cache(d: Path) -> Bad:
    folder = d / ("k" * 120)
    paths = _video(folder, "v" * 150, 2, 80)
    return Bad(str(paths[0]), f"{'k' * 120}/{'v' * 150}")


def file_name_not_utf8(d: Path) -> Bad:
    name = os.fsdecode(b"c\xff\xfe_frame_0.png")  # any bytes are a valid Linux file name
    _png(d / "clap" / name, 3)
    return Bad("not valid UTF-8")


# name -> (build, outcome): "ok" succeeds; "bad" errors, or is skipped and counted under skip;
# "fatal" errors in both modes (nothing sensible is left to extract).
CORPUS: dict[str, tuple[Callable[[Path], Bad], str]] = {
    f.__name__: (f, outcome)
    for f, outcome in [
        (corrupt_image, "bad"),
        (truncated_image, "bad"),
        (zero_byte_image, "bad"),
        (non_image_file, "bad"),
        (empty_class_folder, "bad"),
        (root_with_no_videos, "fatal"),
        (mixed_frame_sizes, "ok"),
        (grayscale_frames, "ok"),
        (rgba_frames, "ok"),
        (sixteen_bit_frames, "ok"),
        (frame_name_not_matching, "bad"),
        (duplicate_frame_numbers, "bad"),
        (root_that_does_not_exist, "fatal"),
        (corrupt_video_file, "bad"),
        (truncated_video_file, "bad"),
        (one_frame_video, "ok"),
        (five_thousand_frame_video, "ok"),
        (unicode_and_spaces_in_paths, "ok"),
        (symlink_loop, "bad"),
        (broken_symlink, "bad"),
        (folder_inside_a_class_folder, "bad"),
        (unreadable_file, "bad"),
        (image_of_20000x20000_pixels, "bad"),
        (class_folder_named_like_a_split, "fatal"),
        (ids_too_long_for_the_cache, "bad"),
        (file_name_not_utf8, "bad"),
    ]
}


def _deny(path: str, monkeypatch) -> None:
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)


def _sequence_ids(key_dir: Path) -> set[str]:
    return {raw.decode() for a in split_arrays(key_dir).values() for raw in a["sequence_ids"]}


def _decodes(monkeypatch, video: str) -> list[str]:
    """Record every frame decode (extraction's load_image and any PIL open) of ``video``'s files."""
    seen: list[str] = []
    real_load, real_open = data.frames.load_image, Image.open
    stem = video.split("/")[1] + "_frame_"

    def load_image(path):
        if Path(path).name.startswith(stem):
            seen.append(f"load {Path(path).name}")
        return real_load(path)

    def pil_open(fp, *args, **kwargs):
        if isinstance(fp, str | os.PathLike) and Path(fp).name.startswith(stem):
            seen.append(f"open {Path(fp).name}")
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(data.frames, "load_image", load_image)
    monkeypatch.setattr(Image, "open", pil_open)
    return seen


@pytest.mark.parametrize("kind", list(CORPUS))
def test_bad_input_corpus(kind, tmp_path, fast_encoders, monkeypatch, reliability):
    build, outcome = CORPUS[kind]
    root = _base(tmp_path)
    bad = build(root)
    if kind == "unreadable_file" and os.geteuid() == 0:
        _deny(bad.needle, monkeypatch)
    decodes = _decodes(monkeypatch, bad.needle) if kind == "five_thousand_frame_video" else None
    cache = tmp_path / "cache"
    cfg = extract_config(root, cache, image_size=32)
    if outcome == "ok":
        result = run(cfg)
        assert result.skipped == [] and verify_cache(result.key_dir) == []
        assert bad.needle in _sequence_ids(result.key_dir)
        held = f"extracts; {bad.needle} is in the cache"
        if decodes is not None:  # 8 frames for the sequence, 3 for the leakage check: never 5,000
            opened = [d for d in decodes if d.startswith("open")]
            assert sum(d.startswith("load") for d in decodes) <= 8 and len(opened) <= 11, decodes
            held += f"; {len(opened)} of its 5,000 frames opened (8 sampled + 3 for the leakage check)"
        if kind == "one_frame_video":
            arrays = split_arrays(result.key_dir)
            [valid] = [
                a["valid"][i]
                for a in arrays.values()
                for i, s in enumerate(a["sequence_ids"])
                if s == b"wave/w3"
            ]
            assert valid.sum() == 1  # one real frame, the rest marked as repeats
        reliability.record("bad input", kind.replace("_", " "), 1, [held])
        return

    with pytest.raises(UserError) as error:
        run(cfg)
    message = str(error.value)
    assert "\n" not in message and bad.needle in message, message
    manifest = manifest_of(cache / result_key(cache)) if cache.exists() else None
    assert manifest is None or manifest.get("complete") is not True
    held = ["one-line error naming the file"]
    skip_cfg = extract_config(root, tmp_path / "cache-skip", image_size=32, on_bad_frame="skip")
    if outcome == "fatal":
        with pytest.raises(UserError, match=".*"):
            run(skip_cfg)
        held.append("fatal under --on-bad-frame skip too (nothing valid to extract)")
    else:
        result = run(skip_cfg)
        hits = [s for s in result.skipped if bad.needle in s]
        assert len(result.skipped) == 1 and len(hits) == 1, result.skipped
        assert verify_cache(result.key_dir) == []
        if bad.drops:
            assert bad.drops not in _sequence_ids(result.key_dir)
        held.append("under --on-bad-frame skip: skipped, counted once, the rest extracted")
    # ultralytics replaces PIL.Image.open process-wide with a wrapper that pip-installs a plugin when a
    # file is not an image; frames must be opened past it (data.frames.open_image).
    extra = {"PIL.Image.open_is_from": Image.open.__module__} if kind == "corrupt_image" else {}
    reliability.record("bad input", kind.replace("_", " "), 2, held, message=message, **extra)


def result_key(cache: Path) -> str:
    keys = [p.name for p in cache.iterdir() if p.is_dir()]
    return keys[0] if keys else "none"


# ---------------------------------------------------------------- the same, through the CLI

CLI_CASES = [
    "corrupt_image",
    "image_of_20000x20000_pixels",
    "class_folder_named_like_a_split",
    "symlink_loop",
]


@pytest.mark.parametrize("kind", CLI_CASES)
def test_bad_input_through_the_cli(kind, zygote, tmp_path, reliability):
    build, outcome = CORPUS[kind]
    root = _base(tmp_path)
    bad = build(root)
    out = zygote.run(extract_argv(root, tmp_path / "cache", "--image-size", "32"), log=tmp_path / "e.log")
    assert out.status == 2, out.log[-3000:]
    line = assert_user_error_line(out.log, bad.needle)
    held = ["exit 2, one `error:` line naming the file, no traceback"]
    if outcome == "bad":
        argv = extract_argv(root, tmp_path / "cache", "--image-size", "32", "--on-bad-frame", "skip")
        skipped = zygote.run(argv, log=tmp_path / "skip.log")
        assert skipped.status == 0 and "Traceback" not in skipped.log, skipped.log[-3000:]
        assert "skipped 1 bad" in skipped.log and bad.needle in skipped.log
        held.append("with --on-bad-frame skip: exit 0 and `skipped 1 bad ...` naming it")
    reliability.record("bad input (CLI)", kind.replace("_", " "), 1 + (outcome == "bad"), held, message=line)


def test_a_missing_root_through_a_real_process(tmp_path, reliability):
    import subprocess

    from faults.harness import pipeline_cmd

    missing = tmp_path / "no such dir"
    proc = subprocess.run(
        pipeline_cmd(*extract_argv(missing, tmp_path / "cache")), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    line = assert_user_error_line(proc.stderr, str(missing))
    reliability.record(
        "bad input (CLI)",
        "root that does not exist (a real `python pipeline.py` process)",
        1,
        ["exit 2"],
        message=line,
    )


# ---------------------------------------------------------------- caches that are not ours to read


def _bump_schema(key_dir: Path) -> None:
    import h5py

    path = key_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = 99
    path.write_text(json.dumps(manifest))
    for split in ("train", "val", "test"):
        with h5py.File(key_dir / f"{split}.h5", "r+") as h5:
            h5.attrs["schema_version"] = "99"


def test_a_cache_from_a_newer_schema_is_refused(zygote, trained, tmp_path, reliability):
    key_dir = tmp_path / trained.cache.name
    shutil.copytree(trained.cache, key_dir)
    _bump_schema(key_dir)
    lines = {}
    for name, argv in {
        "train": ["train", "--cache", str(key_dir), "--out", str(tmp_path / "runs"), "--epochs", "1"],
        "evaluate": ["evaluate", "--checkpoint", str(trained.best), "--cache", str(key_dir)],
        "cache verify": ["cache", "verify", str(key_dir)],
    }.items():
        out = zygote.run(argv, log=tmp_path / f"{name}.log")
        assert out.status == 2, out.log[-3000:]
        lines[name] = assert_user_error_line(out.log, str(key_dir))
        assert "schema" in out.log
    assert "newer toolkit" in lines["train"] and "upgrade" in lines["train"]
    reliability.record(
        "bad input",
        "a cache written with a newer schema_version (manifest and attributes)",
        3,
        ["`train`, `evaluate` and `cache verify` exit 2 with one line; nothing is read"],
        message=lines["train"],
    )


def test_a_cache_of_another_encoder_set_is_refused_by_evaluate(zygote, trained, tmp_path, reliability):
    # The very cache the model trained on, with only the recorded encoders changed: same key, dims,
    # classes and layout, so nothing but the encoder comparison can refuse it.
    other = tmp_path / "other" / trained.cache.name
    shutil.copytree(trained.cache, other)
    manifest = json.loads((other / "manifest.json").read_text())
    other_vit = {"name": "vit_b16_hand_gestures", "weights": "random:7"}
    manifest["encoders"] = {**manifest["encoders"], "vit": other_vit}
    (other / "manifest.json").write_text(json.dumps(manifest))
    out = zygote.run(
        ["evaluate", "--checkpoint", str(trained.best), "--cache", str(other)], log=tmp_path / "e.log"
    )
    assert out.status == 2, out.log[-3000:]
    line = assert_user_error_line(out.log, str(other), str(trained.best), "does not match", "encoders")
    reliability.record(
        "bad input",
        "`evaluate` given a cache extracted with other encoders",
        1,
        ["exit 2, one line naming cache and checkpoint; the model never sees the features"],
        message=line,
    )
