"""The demo dataset, and the path from a folder to sequences (build_sequences, summary, prepare)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from core.errors import BadInputError, UserError
from data.config import DataConfig
from data.demo import CLASSES, GROUP_REGEX, true_hand_boxes, write_demo_dataset
from data.discovery import discover
from data.frames import read_frames
from data.sequences import augmentation_seed, build_sequences, prepare_sequences
from data.splits import assign_splits
from data.summary import summarize


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "data", videos_per_class=4)


def digest(root) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return hashlib.sha256(
        b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)
    ).hexdigest()


def test_demo_layout_classes_subjects_and_lengths(demo):
    dataset = discover(demo, group_regex=GROUP_REGEX)
    assert dataset.classes == sorted(CLASSES) and len(CLASSES) >= 6
    assert {"swipe_left", "swipe_right", "swipe_up", "swipe_down", "circle", "push"} <= set(dataset.classes)
    assert Counter(v.class_name for v in dataset.videos) == {name: 4 for name in CLASSES}
    assert all(re.fullmatch(r"s\d\d_v\d\d\d", v.video_id) for v in dataset.videos)
    assert len({v.group for v in dataset.videos}) == 4  # pseudo-subjects s01..s04
    lengths = [v.num_frames for v in dataset.videos]
    assert min(lengths) >= 20 and max(lengths) <= 48
    assert all(any(v.num_frames < 32 for v in dataset.videos if v.class_name == c) for c in CLASSES)
    first = Image.open(dataset.videos[0].frames[0])
    assert first.format == "JPEG" and first.size == (160, 120)


def test_demo_is_deterministic_and_replaces_itself(demo, tmp_path):
    again = write_demo_dataset(tmp_path / "again", videos_per_class=4)
    assert digest(again) == digest(demo)
    write_demo_dataset(again, videos_per_class=2, seed=1)  # an old demo folder is simply replaced
    assert len(discover(again).videos) == 2 * len(CLASSES)


def test_demo_refuses_to_overwrite_other_folders(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="mine"):
        write_demo_dataset(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_demo_size_parameter(tmp_path):
    out = write_demo_dataset(tmp_path / "big", size=(96, 64), videos_per_class=1)
    video = discover(out).videos[0]
    assert read_frames(video, np.array([0])).shape == (1, 64, 96, 3)


def hand_track(frames: np.ndarray, colour: tuple[int, int, int]) -> list[tuple[float, float, int]]:
    """(x, y, area) of the pixels close to the hand's colour, per frame."""
    track = []
    for frame in frames.astype(int):
        ys, xs = np.nonzero(np.abs(frame - np.array(colour)).max(-1) < 45)
        track.append((xs.mean(), ys.mean(), len(xs)) if len(xs) else (np.nan, np.nan, 0))
    return track


def test_classes_differ_in_motion_and_in_hand_colour(demo):
    for video in discover(demo).videos:
        colour = CLASSES[video.class_name][1]
        frames = read_frames(
            video, np.array([0, video.num_frames // 2, video.num_frames - 1])
        )  # (3, H, W, 3)
        (x0, y0, a0), (xm, ym, _), (x1, y1, a1) = hand_track(frames, colour)
        moved = {
            "swipe_left": x1 < x0 - 40,
            "swipe_right": x1 > x0 + 40,
            "swipe_up": y1 < y0 - 30,
            "swipe_down": y1 > y0 + 30,
            "push": a1 > 2 * a0,  # the hand grows
            "circle": np.hypot(x1 - x0, y1 - y0) < 20 and np.hypot(xm - x0, ym - y0) > 30,
        }
        assert moved[video.class_name], video.key
        other_areas = [
            hand_track(frames[:1], c)[0][2] for n, (_, c) in CLASSES.items() if n != video.class_name
        ]
        assert a0 > 4 * max(other_areas), video.key


def test_build_sequences_augments_only_training_videos(demo):
    dataset = discover(demo)
    assignment = assign_splits(dataset.videos, val=0.25, test=0.0, seed=0)
    cfg = DataConfig(data=demo, frames=32, augment_copies=2)
    sequences = build_sequences(dataset, assignment, cfg)

    per_video = Counter(s.video.key for s in sequences)
    for video in dataset.videos:
        assert per_video[video.key] == (3 if assignment[video.key] == "train" else 1)
    assert len({s.sequence_id for s in sequences}) == len(sequences)
    assert {s.aug_index for s in sequences if s.split == "val"} == {0}
    short = next(s for s in sequences if s.video.num_frames < 32)
    assert short.indices.shape == (32,) and short.valid.sum() == short.length == short.video.num_frames

    copies = [s for s in sequences if s.video.key == sequences[0].video.key]
    seeds = [augmentation_seed(s, cfg.augment_seed) for s in copies]
    assert seeds[0] is None and None not in seeds[1:] and len(set(seeds[1:])) == 2
    assert seeds == [augmentation_seed(s, cfg.augment_seed) for s in copies]  # stable across calls
    assert augmentation_seed(copies[1], 1) != seeds[1]


def test_summary_lists_classes_counts_and_splits(demo):
    dataset = discover(demo)
    assignment = assign_splits(dataset.videos, val=0.25, test=0.25, seed=0)
    text = summarize(dataset, assignment)
    for name in CLASSES:
        row = next(line for line in text.splitlines() if line.startswith(name + " "))
        assert row.split()[1:2] == ["4"] and row.split()[3:] == ["2", "1", "1"]
    total = next(line for line in text.splitlines() if line.startswith("total"))
    assert total.split()[1:3] == [str(len(dataset.videos)), str(dataset.num_frames)]


def test_prepare_sequences_runs_the_whole_data_stage(demo, tmp_path):
    cfg = DataConfig(data=demo, frames=16, val=0.25, group_regex=GROUP_REGEX, split_file=tmp_path / "s.json")
    prepared = prepare_sequences(cfg)
    assert prepared.leakage.ok and (tmp_path / "s.json").exists()
    assert len(prepared.sequences) == len(prepared.dataset.videos)
    by_subject: dict[str, set[str]] = {}
    for video in prepared.dataset.videos:
        by_subject.setdefault(video.group, set()).add(prepared.assignment[video.key])
    assert all(len(splits) == 1 for splits in by_subject.values())
    with pytest.raises(UserError, match="--data"):
        prepare_sequences(DataConfig())


def test_video_missing_from_a_split_is_bad_input(demo):
    dataset = discover(demo)
    assignment = assign_splits(dataset.videos, val=0.25, test=0.0, seed=0)
    dropped = dataset.videos[0].key
    del assignment[dropped]
    with pytest.raises(BadInputError, match=dropped):
        build_sequences(dataset, assignment, DataConfig(data=demo))


def test_true_hand_boxes_enclose_the_drawn_hand(demo):
    """The generator's own boxes are the ground truth for box fidelity: they must sit on the drawn hand."""
    truth = true_hand_boxes(demo)
    for video in discover(demo).videos[::5]:
        boxes = truth[video.key]  # (frames, 4)
        assert boxes.shape == (video.num_frames, 4)
        picks = np.array([0, video.num_frames // 2, video.num_frames - 1])
        frames = read_frames(video, picks)  # (3, H, W, 3)
        height, width = frames.shape[1:3]
        colour = np.array(CLASSES[video.class_name][1])
        for frame, (x1, y1, x2, y2) in zip(frames.astype(int), boxes[picks], strict=True):
            ys, xs = np.nonzero(np.abs(frame - colour).max(-1) < 45)
            found = np.array(
                [xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height]
            )
            np.testing.assert_allclose(found, [x1, y1, x2, y2], atol=0.06, err_msg=video.key)
