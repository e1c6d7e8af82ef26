"""Bad input: every case is a one-line BadInputError naming the file, or, with on_bad="skip", skipped
and counted."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data.discovery
from core.errors import BadInputError
from data.discovery import discover
from data.frames import read_frames


def write_frames(folder: Path, video_id: str, count: int, size=(32, 24), ext="jpg") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"{video_id}_frame_{n}.{ext}"
        Image.fromarray(np.full((size[1], size[0], 3), 10 * n, np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def root(tmp_path) -> Path:
    """Two good classes; each test adds one problem."""
    write_frames(tmp_path / "clap", "c1", 4)
    write_frames(tmp_path / "wave", "w1", 4)
    return tmp_path


def assert_one_line(error: pytest.ExceptionInfo, name: str) -> None:
    message = str(error.value)
    assert name in message and "\n" not in message


def expect_error_then_skip(root: Path, name: str) -> data.discovery.Dataset:
    """discover() names ``name`` in error mode; in skip mode it lists it once and carries on."""
    with pytest.raises(BadInputError) as error:
        discover(root)
    assert_one_line(error, name)
    dataset = discover(root, on_bad="skip")
    assert len(dataset.skipped) == 1 and name in dataset.skipped[0]
    return dataset


# ------------------------------------------------------------ caught at discovery


def test_zero_byte_frame(root):
    (root / "wave" / "w1_frame_4.jpg").write_bytes(b"")
    dataset = expect_error_then_skip(root, "w1_frame_4.jpg")
    assert {v.key: v.num_frames for v in dataset.videos} == {"clap/c1": 4, "wave/w1": 4}


def test_non_image_file_among_frames(root):
    (root / "wave" / "notes.txt").write_text("recorded on tuesday")
    dataset = expect_error_then_skip(root, "notes.txt")
    assert len(dataset.videos) == 2


def test_frame_name_not_matching_the_pattern(root):
    write_frames(root / "wave", "x", 1)
    (root / "wave" / "x_frame_0.jpg").rename(root / "wave" / "IMG_0001.jpg")
    expect_error_then_skip(root, "IMG_0001.jpg")


def test_duplicate_frame_numbers_drop_the_ambiguous_video(root):
    write_frames(root / "wave", "w2", 3)
    (root / "wave" / "w2_frame_01.jpg").write_bytes((root / "wave" / "w2_frame_1.jpg").read_bytes())
    with pytest.raises(BadInputError) as error:
        discover(root)
    assert_one_line(error, "w2_frame_1")
    assert "w2_frame_01.jpg" in str(error.value)
    dataset = discover(root, on_bad="skip")
    assert [v.key for v in dataset.videos] == ["clap/c1", "wave/w1"] and len(dataset.skipped) == 1


def test_empty_class_folder(root):
    (root / "zoom").mkdir()
    dataset = expect_error_then_skip(root, "zoom")
    assert dataset.classes == ["clap", "wave"]


def test_root_without_videos_fails_even_when_skipping(tmp_path):
    (tmp_path / "wave").mkdir()
    (tmp_path / "wave" / "readme.md").write_text("todo")
    for mode in ("error", "skip"):
        with pytest.raises(BadInputError) as error:
            discover(tmp_path, on_bad=mode)
        assert "\n" not in str(error.value)
    with pytest.raises(BadInputError, match="no videos found"):
        discover(tmp_path, on_bad="skip")


def test_root_that_does_not_exist_or_is_a_file(tmp_path):
    with pytest.raises(BadInputError, match="missing_dir.*does not exist"):
        discover(tmp_path / "missing_dir")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(BadInputError, match="file.txt"):
        discover(tmp_path / "file.txt")


def test_corrupt_video_file(root):
    (root / "wave" / "take.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(200))
    dataset = expect_error_then_skip(root, "take.mp4")
    assert len(dataset.videos) == 2


def test_truncated_video_file(root, tmp_path_factory):
    import av

    source = tmp_path_factory.mktemp("video") / "full.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i, np.uint8))):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    whole = source.read_bytes()
    (root / "wave" / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    expect_error_then_skip(root, "cut.mp4")


def test_folder_inside_a_class_folder(root):
    write_frames(root / "wave" / "session2", "w9", 2)
    expect_error_then_skip(root, "session2")


def test_symlink_loop_and_broken_symlink(root):
    os.symlink("loop", root / "wave" / "loop")
    expect_error_then_skip(root, "loop")
    os.remove(root / "wave" / "loop")
    os.symlink(root / "gone.jpg", root / "wave" / "w1_frame_9.jpg")
    expect_error_then_skip(root, "w1_frame_9.jpg")


def test_class_folder_that_links_back_to_the_root_does_not_recurse(root):
    os.symlink(root, root / "again")
    dataset = discover(root, on_bad="skip")  # its class folders are reported, never walked into
    assert {v.key for v in dataset.videos} == {"clap/c1", "wave/w1"} and dataset.skipped


def test_unlistable_folder(root, monkeypatch):
    # Tests run as root here, so chmod cannot provoke it; fake the OS answer instead.
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "wave":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(data.discovery.os, "scandir", scandir)
    with pytest.raises(BadInputError, match="wave.*Permission denied"):
        discover(root)
    assert [v.key for v in discover(root, on_bad="skip").videos] == ["clap/c1"]


def test_video_id_used_by_frames_and_a_video_file(root):
    (root / "wave" / "w1.mp4").write_bytes(b"not checked: the clash is found first")
    expect_error_then_skip(root, "w1.mp4")


# ------------------------------------------------------------ caught when frames are read


def only_video(root: Path):
    (video,) = [v for v in discover(root).videos if v.class_name == "wave"]
    return video


def test_truncated_frame(root):
    path = root / "wave" / "w1_frame_2.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(BadInputError) as error:
        read_frames(only_video(root), np.arange(4))
    assert_one_line(error, "w1_frame_2.jpg")
    assert "truncated or corrupt" in str(error.value)


def test_image_extension_with_garbage_inside(root):
    (root / "wave" / "w1_frame_1.jpg").write_text("this is not a jpeg")
    with pytest.raises(BadInputError) as error:
        read_frames(only_video(root), np.arange(4))
    assert_one_line(error, "w1_frame_1.jpg")


def test_zero_byte_frame_found_by_read_frames(root):
    video = only_video(root)
    video.frames[3].write_bytes(b"")  # emptied after discovery
    with pytest.raises(BadInputError, match="w1_frame_3.jpg.*0 bytes"):
        read_frames(video, np.arange(4))


def test_frame_deleted_after_discovery(root):
    video = only_video(root)
    video.frames[0].unlink()
    with pytest.raises(BadInputError, match="w1_frame_0.jpg.*cannot be read"):
        read_frames(video, np.arange(4))


def test_frames_of_mixed_sizes_are_resized_with_one_warning(root, capsys):
    import data.frames

    data.frames._WARNED_MIXED_SIZES.clear()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(root / "wave" / "w1_frame_2.jpg")
    video = only_video(root)
    first = read_frames(video, np.arange(4), image_size=16)
    again = read_frames(video, np.arange(4), image_size=16)
    assert first.shape == (4, 16, 16, 3) and np.array_equal(first, again)
    assert first[2].max() == 0 and first[3].min() > 0  # each frame resized in place, not dropped
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "w1_frame_2.jpg" in lines[0] and "64x48" in lines[0] and "32x24" in lines[0]


def png_claiming_size(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims a huge image: the shape of a decompression bomb."""
    Image.new("L", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(("width", "height"), [(8000, 6000), (30000, 30000)])
def test_huge_image_is_refused_before_decoding(root, width, height):
    png_claiming_size(root / "wave" / "w1_frame_1.png", width, height)
    (root / "wave" / "w1_frame_1.jpg").unlink()
    with pytest.raises(BadInputError) as error:
        read_frames(only_video(root), np.arange(4))
    assert_one_line(error, "w1_frame_1.png")
    assert "downscale" in str(error.value)


def test_corrupt_video_found_by_read_frames(root, tmp_path):
    from data.sequence import Video

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"garbage" * 50)
    video = Video("wave", 0, "broken", 10, tmp_path, video_file=broken)
    with pytest.raises(BadInputError) as error:
        read_frames(video, np.arange(3))
    assert_one_line(error, "broken.mp4")


def test_unknown_policy_is_a_programming_error(root):
    with pytest.raises(ValueError):
        discover(root, on_bad="ignore")


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("shard_size", 0),  # failed only when the first shard was written, after all the encoding
        ("workers", -1),
        ("batch_size", 0),
        ("attention_mass", "nan"),
        ("attention_mass", 1.5),
        ("crop_margin", -0.1),
    ],
)
def test_extract_options_out_of_range_are_one_line_before_any_work(
    tmp_path, capsys, monkeypatch, flag, value
):
    """Each made a traceback after encoding, or a cache of its own with a crop no share of attention
    gives; now one line naming the flag, before the dataset is read or an encoder built."""
    from conftest import tiny_extract_argv

    import pipeline

    def too_late(*args, **kwargs):
        raise AssertionError("options are checked before the dataset is read")

    monkeypatch.setattr("extract.run.make_plan", too_late)
    write_frames(tmp_path / "data" / "wave", "v1", 4)
    assert pipeline.main(tiny_extract_argv(tmp_path / "data", tmp_path / "cache", **{flag: value})) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--{flag.replace('_', '-')} must be" in err[0], err
