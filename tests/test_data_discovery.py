"""Discovery: frame folders, video files and pre-split roots become the right videos, in the right order."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from core.errors import BadInputError, UserError
from data.discovery import discover, group_of
from data.frames import read_frames
from data.splits import assign_splits


def write_frame(path: Path, value: int, size: tuple[int, int] = (32, 24)) -> Path:
    """A flat frame whose brightness encodes its position, so order mistakes are visible in pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def write_video(path: Path, values: list[int], codec: str = "mpeg4") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for value in values:
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), value, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_frames_are_grouped_by_video_id_and_ordered_numerically(tmp_path):
    # Written in shuffled order with unpadded numbers: a name sort would put frame 10 before frame 2.
    for n in [3, 10, 0, 2, 11, 1, 9, 4, 5, 6, 7, 8]:
        write_frame(tmp_path / "wave" / f"clip_a_frame_{n}.png", value=n * 20)
    for n in range(3):
        write_frame(tmp_path / "wave" / f"clip_b_frame_{n:04d}.jpg", value=100)

    dataset = discover(tmp_path)

    videos = {video.video_id: video for video in dataset.videos}
    assert set(videos) == {"clip_a", "clip_b"}  # underscores inside the id are kept
    clip_a = videos["clip_a"]
    assert [p.name for p in clip_a.frames] == [f"clip_a_frame_{n}.png" for n in range(12)]
    assert clip_a.num_frames == 12 and videos["clip_b"].num_frames == 3
    pixels = read_frames(clip_a, np.arange(12))  # (12, 24, 32, 3)
    assert pixels[:, 0, 0, 0].tolist() == [n * 20 for n in range(12)]


def test_class_names_are_sorted_folder_names_with_stable_labels(tmp_path):
    for name in ["zoom", "clap", "wave"]:
        write_frame(tmp_path / name / "v1_frame_0.jpg", 10)
    dataset = discover(tmp_path)
    assert dataset.classes == ["clap", "wave", "zoom"]
    assert {v.class_name: v.label for v in dataset.videos} == {"clap": 0, "wave": 1, "zoom": 2}
    assert not dataset.presplit and all(v.split is None for v in dataset.videos)
    assert all(v.root == tmp_path for v in dataset.videos)


def test_hidden_and_system_files_are_ignored(tmp_path):
    write_frame(tmp_path / "wave" / "v1_frame_0.jpg", 10)
    (tmp_path / "wave" / ".DS_Store").write_bytes(b"\0junk")
    (tmp_path / "wave" / "Thumbs.db").write_bytes(b"junk")
    (tmp_path / "wave" / "._v1_frame_0.jpg").write_bytes(b"apple double")
    (tmp_path / ".git").mkdir()
    (tmp_path / "README.txt").write_text("loose files next to class folders are not data")
    dataset = discover(tmp_path)
    assert [v.key for v in dataset.videos] == ["wave/v1"] and dataset.skipped == []


@pytest.mark.parametrize(("extension", "codec"), [(".mp4", "mpeg4"), (".avi", "mpeg4"), (".webm", "libvpx")])
def test_video_files_are_videos_with_their_frame_count(tmp_path, extension, codec):
    # webm carries no frame count in its metadata, so this also covers counting decoded frames.
    values = [20 * i for i in range(9)]
    write_video(tmp_path / "wave" / f"take1{extension}", values, codec)
    write_frame(tmp_path / "clap" / "take1_frame_0.jpg", 10)

    dataset = discover(tmp_path)

    video = next(v for v in dataset.videos if v.class_name == "wave")
    assert video.video_id == "take1" and video.num_frames == 9 and video.frames == ()
    assert video.video_file == tmp_path / "wave" / f"take1{extension}"
    pixels = read_frames(video, np.array([0, 4, 4, 8]))  # (4, 48, 64, 3)
    assert pixels.shape == (4, 48, 64, 3) and pixels.dtype == np.uint8
    means = pixels.reshape(4, -1).mean(1)
    assert np.allclose(means, [0, 80, 80, 160], atol=8)


def test_presplit_roots_are_respected_and_classes_are_the_union(tmp_path):
    write_frame(tmp_path / "train" / "clap" / "a_frame_0.jpg", 1)
    write_frame(tmp_path / "train" / "wave" / "b_frame_0.jpg", 1)
    write_frame(tmp_path / "val" / "wave" / "c_frame_0.jpg", 1)
    write_frame(tmp_path / "test" / "zoom" / "d_frame_0.jpg", 1)  # a class seen only in test

    dataset = discover(tmp_path)

    assert dataset.presplit
    assert dataset.classes == ["clap", "wave", "zoom"]
    assert {v.key: (v.split, v.label) for v in dataset.videos} == {
        "clap/a": ("train", 0),
        "wave/b": ("train", 1),
        "wave/c": ("val", 1),
        "zoom/d": ("test", 2),
    }
    assert assign_splits(dataset.videos, val=0.5, test=0.5 - 1e-9, seed=3) == {
        "clap/a": "train",
        "wave/b": "train",
        "wave/c": "val",
        "zoom/d": "test",
    }


def test_split_folders_mixed_with_class_folders_is_an_error(tmp_path):
    write_frame(tmp_path / "train" / "clap" / "a_frame_0.jpg", 1)
    write_frame(tmp_path / "wave" / "b_frame_0.jpg", 1)
    with pytest.raises(BadInputError, match="wave"):
        discover(tmp_path)


def test_group_regex_names_the_subject(tmp_path):
    for video_id in ["s01_v001", "s01_v002", "s12_v003", "other"]:
        write_frame(tmp_path / "wave" / f"{video_id}_frame_0.jpg", 1)
    groups = {v.video_id: v.group for v in discover(tmp_path, group_regex=r"^(s\d+)_").videos}
    assert groups == {"s01_v001": "s01", "s01_v002": "s01", "s12_v003": "s12", "other": "other"}
    ungrouped = {v.video_id: v.group for v in discover(tmp_path).videos}
    assert ungrouped["s01_v001"] == "s01_v001"


def test_group_of_uses_first_group_else_whole_match():
    import re

    assert group_of("s03_v007", re.compile(r"^(s\d+)_")) == "s03"
    assert group_of("s03_v007", re.compile(r"^s\d+")) == "s03"
    assert group_of("x_v007", re.compile(r"^s\d+")) == "x_v007"
    assert group_of("s03_v007", None) == "s03_v007"


def test_invalid_group_regex_is_a_user_error(tmp_path):
    write_frame(tmp_path / "wave" / "a_frame_0.jpg", 1)
    with pytest.raises(UserError, match="group-regex"):
        discover(tmp_path, group_regex="(unclosed")


def test_odd_image_modes_are_converted_not_rejected(tmp_path):
    folder = tmp_path / "wave"
    folder.mkdir()
    Image.fromarray(np.full((24, 32), 77, np.uint8), mode="L").save(folder / "g_frame_0.png")
    Image.fromarray(np.full((24, 32, 4), 200, np.uint8), mode="RGBA").save(folder / "g_frame_1.png")
    Image.fromarray(np.full((24, 32), 65535, np.uint16)).save(folder / "g_frame_2.png")  # 16-bit
    Image.fromarray(np.full((24, 32), 32896, np.uint16)).save(folder / "g_frame_3.png")
    Image.fromarray(np.full((24, 32, 3), 51, np.uint8)).convert("P").save(folder / "g_frame_4.png")

    (video,) = discover(tmp_path).videos
    pixels = read_frames(video, np.arange(5))  # (5, 24, 32, 3)

    assert pixels.shape == (5, 24, 32, 3) and pixels.dtype == np.uint8
    assert pixels[:, 5, 5].tolist() == [[77] * 3, [200] * 3, [255] * 3, [128] * 3, [51] * 3]


def test_predict_takes_one_video_of_a_shared_frame_folder_by_its_id(tmp_path):
    """`predict DIR/<video_id>` (as `show` takes it) classifies that video alone, not the whole folder."""
    from data.inputs import predict_inputs

    for video_id, count in (("s01_v001", 3), ("s01_v002", 5)):
        for n in range(count):
            Image.new("RGB", (8, 8), (n, 0, 0)).save(tmp_path / f"{video_id}_frame_{n}.png")
    assert [v.video_id for v in predict_inputs(tmp_path)] == ["s01_v001", "s01_v002"]
    [one] = predict_inputs(tmp_path / "s01_v002")
    assert (one.video_id, one.num_frames, one.label) == ("s01_v002", 5, -1)
    assert [f.name for f in one.frames] == [f"s01_v002_frame_{n}.png" for n in range(5)]
    with pytest.raises(BadInputError, match=r"s01_v009: does not exist; .*FOLDER/<video_id>"):
        predict_inputs(tmp_path / "s01_v009")


def test_predict_on_an_nvgesture_recording_folder_reads_the_colour_video_only(tmp_path, capsys):
    """A recording folder holds sk_color.avi beside the depth and infrared videos: a colour model
    classifies the colour one, says what it left out, and still takes a depth video named by path."""
    from data.inputs import predict_inputs

    for stem in ("sk_color", "sk_depth", "duo_left"):
        write_video(tmp_path / f"{stem}.avi", [10, 20, 30])
    assert [v.video_id for v in predict_inputs(tmp_path)] == ["sk_color"]
    note = capsys.readouterr().err
    assert "left out duo_left.avi, sk_depth.avi" in note and "nvgesture" in note
    assert [v.video_id for v in predict_inputs(tmp_path / "sk_depth.avi")] == ["sk_depth"]
    (tmp_path / "sk_color.avi").unlink()  # a folder of depth videos alone: the user means them
    assert [v.video_id for v in predict_inputs(tmp_path)] == ["duo_left", "sk_depth"]


def test_predict_folder_video_id_opens_that_video_alone(tmp_path):
    """`predict videos/<video_id>` in a folder of thousands of videos (WLASL's) opens that one: a broken
    neighbour neither fails it nor is probed."""
    from data.inputs import predict_inputs

    write_video(tmp_path / "69241.mp4", [10, 20, 30, 40])
    write_video(tmp_path / "69242.mp4", [10, 20])
    (tmp_path / "69243.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    [one] = predict_inputs(tmp_path / "69241")
    assert (one.video_id, one.num_frames, one.video_file) == ("69241", 4, tmp_path / "69241.mp4")
    write_frame(tmp_path / "00a1b2.jpg", 9)  # a HaGRID image beside them, named by its id
    [image] = predict_inputs(tmp_path / "00a1b2")
    assert (image.video_id, image.num_frames, image.frames[0]) == ("00a1b2", 1, tmp_path / "00a1b2.jpg")


def test_predict_on_a_folder_of_clip_folders_takes_each_clip_in_natural_order(tmp_path):
    """Jester's 20bn-jester-v1/ or EgoGesture's Color/ (rgb1, rgb2, ...): every clip folder is an input;
    a subfolder without frames is named in one error."""
    from data.inputs import predict_inputs

    for clip, count in (("10", 2), ("2", 3), ("1", 4)):
        (tmp_path / "clips" / clip).mkdir(parents=True)
        for n in range(1, count + 1):
            write_frame(tmp_path / "clips" / clip / f"{n:05d}.jpg", n)
    (tmp_path / "clips" / "Thumbs.db").write_bytes(b"\x00")  # Windows' folder litter is no clip
    videos = predict_inputs(tmp_path / "clips")
    assert [(v.video_id, v.num_frames) for v in videos] == [("1", 4), ("2", 3), ("10", 2)]
    (tmp_path / "clips" / "notes").mkdir()
    with pytest.raises(BadInputError, match=r"clips/notes: holds no numbered frames"):
        predict_inputs(tmp_path / "clips")
