"""Reading videos: upright despite a display matrix, every common container, seeking that returns the
frames a decode from the start returns, several segments in one pass, only the wanted images opened."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import tiny_extract_argv
from PIL import Image
from video_fixtures import flat_frames, moving_frames, write_video

import data.frames
from data.discovery import discover
from data.frames import read_frames, read_segments
from data.sequence import Sequence, Video
from data.video import COUNTER, read_video
from extract.source import SequenceFrames

# Extension -> a codec its muxer takes. Rate 25 suits every one (MPEG-1/2 allow only standard rates).
CONTAINERS = {
    ".mkv": "mpeg4",
    ".m4v": "libx264",
    ".mpg": "mpeg1video",
    ".mpeg": "mpeg2video",
    ".wmv": "wmv2",
    ".flv": "flv",
    ".3gp": "mpeg4",
    ".ts": "mpeg2video",
    ".mts": "libx264",
    ".MP4": "mpeg4",  # any letter case
}


def video_of(path: Path, num_frames: int) -> Video:
    return Video("c", 0, path.stem, num_frames, path.parent, video_file=path)


@pytest.mark.skipif(
    not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
    reason="this PyAV cannot write a display matrix (VideoStream.set_display_rotation)",
)
@pytest.mark.parametrize("degrees", [90, -90])
def test_display_matrix_turns_frames_upright(tmp_path, degrees):
    # Quadrants of distinct colours: any wrong turn or flip moves them far.
    scene = np.zeros((48, 64, 3), np.uint8)
    scene[:24, :32] = (250, 30, 30)
    scene[:24, 32:] = (30, 250, 30)
    scene[24:, :32] = (30, 30, 250)
    scene[24:, 32:] = (240, 240, 40)
    upright = np.rot90(scene, degrees // 90).copy()  # (64, 48, 3): what the viewer should see
    high = {"crf": "4"}
    tagged = write_video(tmp_path / "phone.mp4", [scene] * 3, "libx264", rotation=degrees, options=high)
    encoded = write_video(tmp_path / "upright.mp4", [upright] * 3, "libx264", options=high)

    got = read_frames(video_of(tagged, 3), np.array([0, 2]))
    want = read_frames(video_of(encoded, 3), np.array([0, 2]))

    assert got.shape == want.shape == (2, 64, 48, 3)
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 6  # codec tolerance


def test_every_container_in_any_case_is_read_in_order(tmp_path):
    frames = flat_frames(6)
    for extension, codec in CONTAINERS.items():
        write_video(tmp_path / "wave" / f"take{extension.lstrip('.')}{extension}", frames, codec)

    dataset = discover(tmp_path)

    assert sorted(v.video_file.suffix for v in dataset.videos) == sorted(CONTAINERS)
    for video in dataset.videos:
        assert video.num_frames == 6, video.video_file
        pixels = read_frames(video, np.array([0, 3, 5]))  # (3, 32, 48, 3)
        assert np.allclose(pixels.reshape(3, -1).mean(1), [0, 30, 50], atol=4), video.video_file


def test_all_containers_and_a_mixed_size_folder_extract_end_to_end(tmp_path, capsys):
    """One extraction over every container plus a frame folder whose frames differ in size."""
    from pipeline import main

    data_root = tmp_path / "data"
    for n, (extension, codec) in enumerate(CONTAINERS.items()):
        write_video(data_root / ("clap", "wave")[n % 2] / f"v{n}{extension}", flat_frames(8), codec)
    for n in range(8):  # frames 0-3 at 48x32, 4-7 at 40x30 (as if partly re-exported)
        size = (48, 32) if n < 4 else (40, 30)
        Image.fromarray(np.full((size[1], size[0], 3), 20 * n, np.uint8)).save(
            data_root / "wave" / f"m_frame_{n}.png"
        )
    data.frames._WARNED_MIXED_SIZES.clear()

    code = main(tiny_extract_argv(data_root, tmp_path / "cache", frames=2, image_size=32))

    out, err = capsys.readouterr()
    assert code == 0
    assert f"extracting {len(CONTAINERS) + 1} of {len(CONTAINERS) + 1} sequences" in err
    warnings = [line for line in err.splitlines() if "differ in size" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {data_root / 'wave'}: "), err
    assert "skipped" not in err and out.strip().splitlines()[-1].startswith(str(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("name", "codec", "options"), [("bframes.mp4", "libx264", {"bf": "2"}), ("clock.ts", "libx264", None)]
)
def test_seeking_reads_the_frames_a_full_decode_reads_and_no_more(tmp_path, name, codec, options):
    # B-frames reorder packets; MPEG-TS streams start at a clock far from 0. GOP 10, 60 frames.
    gop, count = 10, 60
    path = write_video(tmp_path / name, moving_frames(count), codec, gop=gop, options=options)
    full = read_video(path, list(range(count)), count, seek=False)
    rng = np.random.default_rng(0)
    for _ in range(4):
        # Three segments of 3-6 frames, one always near the end, where decoding from 0 costs most.
        starts = sorted([*rng.choice(np.arange(0, 45), 2, replace=False).tolist(), 52])
        segments = [np.arange(a, a + int(rng.integers(3, 7))) for a in starts]
        wanted = sorted({int(i) for s in segments for i in s[::2]})
        COUNTER.reset()

        got = read_video(path, wanted, count)

        assert sorted(got) == wanted
        for i in wanted:
            assert np.array_equal(got[i], full[i]), (name, i)
        # Frame 0 fixes the clock; beyond it, each segment costs its span plus at most one GOP.
        budget = 1 + sum(len(s) + gop for s in segments)
        assert COUNTER.video_frames <= budget and COUNTER.seeks >= 1, (segments, COUNTER)


def test_segments_and_sequences_of_one_source_share_one_pass(tmp_path):
    path = write_video(tmp_path / "long.mp4", moving_frames(40), "mpeg4", gop=8)
    other = write_video(tmp_path / "other.mp4", moving_frames(5), "mpeg4")
    video, second = video_of(path, 40), video_of(other, 5)
    segments = [np.arange(2, 6), np.arange(20, 24), np.array([4, 4, 5, 30])]

    COUNTER.reset()
    clips = read_segments(path, segments, 40)
    assert COUNTER.opens == 1
    for clip, indices in zip(clips, segments, strict=True):
        assert np.array_equal(clip, read_frames(video, indices))

    # A batch of the extraction DataLoader: sequences of one source are read together.
    from data.augment import SequenceAugmenter

    ones = np.ones(4, np.uint8)
    sequences = [Sequence(video, s[:4], ones, 4, "train") for s in segments] + [
        Sequence(second, np.arange(4), ones, 4, "train")
    ]
    batch = SequenceFrames(sequences, SequenceAugmenter(16, flip=False), 0)
    COUNTER.reset()
    items = batch.__getitems__([0, 3, 1, 2])
    assert COUNTER.opens == 2
    assert [item["index"] for item in items] == [0, 3, 1, 2] and all("frames" in item for item in items)


def test_only_the_wanted_frames_of_a_folder_are_opened(tmp_path):
    frames = tuple(
        Image.fromarray(np.full((4, 4, 3), n % 250, np.uint8)).save(p) or p
        for n in range(300)
        for p in [tmp_path / f"{n:05d}.png"]
    )
    COUNTER.reset()
    clip = read_segments(frames, [np.array([3, 150, 150, 299])], len(frames))[0]
    assert COUNTER.images == 3
    assert clip[:, 0, 0, 0].tolist() == [3, 150, 150, 299 % 250]


def test_variable_frame_rate_falls_back_to_counting_frames(tmp_path):
    # Timestamps 40 or 80 ms apart at random: a seek by timestamp would name the wrong frames.
    path = tmp_path / "vfr.mkv"
    frames = moving_frames(40)
    gaps = np.random.default_rng(0).choice([40, 80], size=len(frames))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 5
        stream.codec_context.time_base = Fraction(1, 1000)
        for frame, pts in zip(frames, np.cumsum(gaps) - gaps[0], strict=True):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = int(pts), Fraction(1, 1000)
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    full = read_video(path, list(range(40)), 40, seek=False)
    wanted = [2, 25, 33, 39]

    got = read_video(path, wanted, 40)

    assert all(np.array_equal(got[i], full[i]) for i in wanted)
    for i in wanted:  # and they are the frames written there: each is nearest to its own original
        distances = [np.abs(got[i].astype(int) - f.astype(int)).mean() for f in frames]
        assert int(np.argmin(distances)) == i
