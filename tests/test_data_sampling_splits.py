"""Sampling T frames, splitting videos into train/val/test, and catching leakage between splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import BadInputError, UserError
from data.config import DataConfig
from data.discovery import discover
from data.leakage import LeakageWarning, check_leakage, dhash
from data.sampling import sample_indices
from data.sequence import Video
from data.splits import (
    assign_splits,
    empty_split_note,
    load_splits,
    resolve_splits,
    reused_split_note,
    save_splits,
    split_params,
)

# ---------------------------------------------------------------- sampling


def test_long_video_gets_distinct_uniformly_spread_frames():
    indices, valid, length = sample_indices(100, 32)
    assert indices.shape == (32,) and indices.dtype == np.int32 and valid.dtype == np.uint8
    assert np.all(np.diff(indices) > 0)
    assert indices[0] <= 2 and indices[-1] >= 97  # spans the whole gesture
    assert np.all(np.abs(np.diff(indices) - 100 / 32) <= 1)  # evenly spaced
    assert valid.tolist() == [1] * 32 and length == 32
    # centred bins, floor((i + 0.5) * n / T)
    assert sample_indices(10, 4)[0].tolist() == [1, 3, 6, 8]


def test_short_video_repeats_frames_in_order_and_masks_repeats():
    indices, valid, length = sample_indices(20, 32)
    assert np.all(np.diff(indices) >= 0)
    assert sorted(set(indices.tolist())) == list(range(20))  # every frame is used
    assert length == 20 and valid.sum() == 20
    repeats = np.r_[False, indices[1:] == indices[:-1]]
    assert valid.tolist() == (~repeats).astype(int).tolist()
    assert max(Counter(indices.tolist()).values()) == 2  # repeats spread evenly, not piled at the end


def test_edge_lengths():
    assert sample_indices(32, 32)[0].tolist() == list(range(32))
    indices, valid, length = sample_indices(1, 5)
    assert indices.tolist() == [0] * 5 and valid.tolist() == [1, 0, 0, 0, 0] and length == 1
    assert np.array_equal(sample_indices(77, 32)[0], sample_indices(77, 32)[0])
    with pytest.raises(ValueError):
        sample_indices(0, 32)


# ---------------------------------------------------------------- splits


def make_videos(counts: dict[str, int], id_format: str = "v{i:03d}", split: str | None = None) -> list[Video]:
    classes = sorted(counts)
    return [
        Video(
            class_name=name,
            label=classes.index(name),
            video_id=id_format.format(i=i, name=name),
            num_frames=10,
            root=Path("/nowhere"),
            split=split,
        )
        for name in classes
        for i in range(counts[name])
    ]


def per_class(assignment: dict[str, str], split: str) -> Counter:
    return Counter(key.split("/")[0] for key, s in assignment.items() if s == split)


def test_stratified_split_is_per_class_and_deterministic():
    videos = make_videos({"a": 20, "b": 10, "c": 5, "d": 2, "e": 1})
    assignment = assign_splits(videos, val=0.2, test=0.1, seed=7)

    assert set(assignment) == {v.key for v in videos}
    val, test, train = (
        per_class(assignment, "val"),
        per_class(assignment, "test"),
        per_class(assignment, "train"),
    )
    assert val == {"a": 4, "b": 2, "c": 1, "d": 1}  # every class with >= 2 videos validates
    assert test["a"] == 2 and test["b"] == 1
    assert all(train[name] >= 1 for name in "abcde")  # no class loses all its training videos
    assert assignment == assign_splits(list(reversed(videos)), val=0.2, test=0.1, seed=7)
    assert assignment != assign_splits(videos, val=0.2, test=0.1, seed=8)


def test_no_val_or_test_when_ratios_are_zero():
    assignment = assign_splits(make_videos({"a": 6, "b": 6}), val=0.0, test=0.0, seed=0)
    assert set(assignment.values()) == {"train"}


def test_bad_ratios_are_a_user_error():
    with pytest.raises(UserError):
        assign_splits(make_videos({"a": 4}), val=0.6, test=0.5, seed=0)
    with pytest.raises(UserError):
        DataConfig(val=1.2)


@pytest.mark.parametrize("field, flag", [("seed", "--seed"), ("augment_seed", "--augment-seed")])
@pytest.mark.parametrize("value", [-1, 2**32])
def test_a_seed_numpy_cannot_take_is_a_user_error_naming_the_flag(field, flag, value):
    """extract --seed -1 ended in NumPy's traceback at the split, after the corpus was read."""
    with pytest.raises(UserError, match=f"^{flag} must be in 0 .. 2\\*\\*32 - 1, got {value}$"):
        DataConfig(**{field: value})


def test_grouped_split_keeps_each_subject_in_one_split():
    # 6 subjects x 3 classes x 2 takes; ids are reused per class ("s01_t0" exists in every class).
    videos = [
        Video(name, label, f"s{subject:02d}_t{take}", 10, Path("/x"))
        for label, name in enumerate("abc")
        for subject in range(6)
        for take in range(2)
    ]
    assignment = assign_splits(videos, val=0.2, test=0.2, seed=1, group_regex=r"^(s\d+)_")

    split_of_subject: dict[str, set[str]] = {}
    for video in videos:
        split_of_subject.setdefault(video.video_id[:3], set()).add(assignment[video.key])
    assert all(len(splits) == 1 for splits in split_of_subject.values())
    assert {s for splits in split_of_subject.values() for s in splits} == {"train", "val", "test"}
    assert all(per_class(assignment, "val")[name] >= 1 for name in "abc")


def test_grouped_split_still_validates_a_minority_class():
    # Class "c" never is a majority: without the repair step it would get no val video.
    videos = []
    for subject in range(5):
        for take in range(4):
            videos.append(Video("a", 0, f"s{subject}_a{take}", 10, Path("/x")))
        if subject < 3:
            videos.append(Video("c", 1, f"s{subject}_c", 10, Path("/x")))
    assignment = assign_splits(videos, val=0.2, test=0.0, seed=0, group_regex=r"^(s\d)_")
    assert per_class(assignment, "val")["c"] >= 1 and per_class(assignment, "train")["c"] >= 1
    subjects = {}
    for video in videos:
        subjects.setdefault(video.video_id[:2], set()).add(assignment[video.key])
    assert all(len(s) == 1 for s in subjects.values())


def test_ungrouped_split_does_not_tie_videos_with_the_same_id_in_different_classes():
    # Ids like "001" repeat in every class; they are different videos and split independently.
    videos = make_videos({"a": 10, "b": 10, "c": 10, "d": 10}, id_format="{i:03d}")
    assignment = assign_splits(videos, val=0.3, test=0.0, seed=0)
    by_id: dict[str, set[str]] = {}
    for key, split in assignment.items():
        by_id.setdefault(key.split("/")[1], set()).add(split)
    assert any(len(splits) > 1 for splits in by_id.values())


def test_presplit_videos_keep_their_split():
    videos = make_videos({"a": 3}, split="val") + make_videos({"b": 2}, split="train")
    assignment = assign_splits(videos, val=0.2, test=0.0, seed=0)
    assert per_class(assignment, "val") == {"a": 3} and per_class(assignment, "train") == {"b": 2}


def test_splits_roundtrip_through_json_with_params(tmp_path):
    assignment = assign_splits(make_videos({"a": 5, "b": 5}), val=0.2, test=0.0, seed=4)
    path = tmp_path / "sub" / "splits.json"
    save_splits(path, assignment, {"val": 0.2, "seed": 4})
    assert load_splits(path) == assignment
    payload = json.loads(path.read_text())
    assert payload["params"] == {"val": 0.2, "seed": 4} and payload["counts"]["val"] == 2


@pytest.mark.parametrize("content", ["{not json", '{"format": "other", "assignment": {}}', None])
def test_damaged_split_file_is_bad_input_naming_it(tmp_path, content):
    path = tmp_path / "splits.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BadInputError, match="splits.json"):
        load_splits(path)


def test_split_with_bad_value_is_rejected(tmp_path):
    path = tmp_path / "splits.json"
    save_splits(path, {"a/1": "train"}, {})
    path.write_text(path.read_text().replace('"train"', '"holdout"'))
    with pytest.raises(BadInputError, match="holdout"):
        load_splits(path)


def frames_dataset(root: Path, ids: dict[str, list[str]], size=(32, 24)) -> Path:
    rng = np.random.default_rng(0)
    for class_name, video_ids in ids.items():
        for video_id in video_ids:
            folder = root / class_name
            folder.mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            for n in range(4):
                Image.fromarray(image).save(folder / f"{video_id}_frame_{n}.png")
    return root


def test_split_file_is_written_once_then_reused(tmp_path):
    root = frames_dataset(
        tmp_path / "data", {"a": [f"v{i}" for i in range(6)], "b": [f"w{i}" for i in range(6)]}
    )
    dataset = discover(root)
    split_file = tmp_path / "splits.json"
    first = resolve_splits(dataset, DataConfig(data=root, seed=1, split_file=split_file))
    assert split_file.exists()
    # A different seed would give another split, but the saved one wins: said once, and recorded as made.
    again = DataConfig(data=root, seed=99, split_file=split_file)
    assert resolve_splits(dataset, again) == first
    assert reused_split_note(dataset, again) == (
        f"split: {split_file} fixes the split, so --seed 99 (it has 1) not applied; delete it to re-split"
    )
    assert split_params(dataset, again)["seed"] == 1
    assert reused_split_note(dataset, DataConfig(data=root, seed=1, split_file=split_file)) is None

    frames_dataset(root, {"a": ["new"]})
    with pytest.raises(BadInputError, match="splits.json"):
        resolve_splits(discover(root), DataConfig(data=root, split_file=split_file))


def test_a_test_fraction_too_small_classes_cannot_give_is_said_not_silently_empty(tmp_path):
    root = frames_dataset(tmp_path / "data", {"a": ["v0", "v1"], "b": ["w0", "w1"]})
    dataset = discover(root)
    cfg = DataConfig(data=root, val=0.3, test=0.3)
    assignment = resolve_splits(dataset, cfg)
    assert "test" not in assignment.values() and "val" in assignment.values()
    note = empty_split_note(dataset, cfg, assignment)
    assert note is not None and "--test 0.3 gave no test video" in note and "3 for test" in note
    assert "--val" not in note
    # Asked for none, or a class large enough to give one: nothing to say.
    assert empty_split_note(dataset, DataConfig(data=root, val=0.3, test=0.0), assignment) is None
    bigger = discover(frames_dataset(tmp_path / "big", {"a": [f"v{i}" for i in range(4)]}))
    big_cfg = DataConfig(data=bigger.root, val=0.3, test=0.3)
    assert empty_split_note(bigger, big_cfg, resolve_splits(bigger, big_cfg)) is None


# ---------------------------------------------------------------- leakage


def test_video_in_two_splits_is_an_error(tmp_path):
    root = tmp_path / "data"
    frames_dataset(root / "train", {"a": ["v1", "v2"]})
    frames_dataset(root / "val", {"a": ["v1"]})
    dataset = discover(root)
    assignment = assign_splits(dataset.videos, 0.2, 0.0, 0)
    with pytest.raises(BadInputError, match=r"a/v1.*train and val") as error:
        check_leakage(dataset.videos, assignment)
    assert "v1_frame_0.png" in str(error.value) and "\n" not in str(error.value)


def test_near_duplicate_frames_across_splits_warn(tmp_path):
    root = frames_dataset(tmp_path, {"a": ["orig", "other1"], "b": ["other2", "other3"]})
    # A copy of "orig" under another name, slightly altered (re-encoded as JPEG, brightened).
    for n in range(4):
        image = np.asarray(Image.open(root / "a" / f"orig_frame_{n}.png")).astype(int) + 3
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(
            root / "b" / f"copy_frame_{n}.jpg", quality=80
        )
    dataset = discover(root)
    assignment = {
        "a/orig": "train",
        "a/other1": "train",
        "b/other2": "train",
        "b/copy": "val",
        "b/other3": "val",
    }

    report = check_leakage(dataset.videos, assignment)
    assert len(report.warnings()) == 1 and "b/copy" in report.warnings()[0]
    with pytest.warns(LeakageWarning, match="b/copy"):
        check_leakage(dataset.videos, assignment, warn=True)

    assert [(p.key_a, p.key_b) for p in report.pairs] == [("a/orig", "b/copy")]
    assert report.pairs[0].distance <= report.threshold
    assert report.checked_videos == 5 and 0 < report.hashed_frames <= 5 * 3  # only a few frames hashed
    assert "possible leakage: 1 video pair" in report.message()


def test_distinct_and_flat_videos_do_not_warn(tmp_path, recwarn):
    root = frames_dataset(tmp_path, {"a": ["v1", "v2"], "b": ["w1", "w2"]})
    for class_name in ("a", "b"):  # black fade-in clips in both splits: alike, but not leakage
        for n in range(3):
            Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(root / class_name / f"black_frame_{n}.png")
    dataset = discover(root)
    assignment = {v.key: ("train" if v.class_name == "a" else "val") for v in dataset.videos}
    report = check_leakage(dataset.videos, assignment, warn=True)
    assert report.ok and report.warnings() == []
    assert not [w for w in recwarn if issubclass(w.category, LeakageWarning)]


def test_dhash_is_robust_to_small_changes_and_separates_different_images():
    rng = np.random.default_rng(0)
    gray = np.asarray(Image.fromarray(rng.integers(0, 255, (60, 80), dtype=np.uint8)).resize((80, 60)))
    brighter = np.clip(gray.astype(int) + 5, 0, 255).astype(np.uint8)
    other = rng.integers(0, 255, (60, 80), dtype=np.uint8)
    assert bin(dhash(gray) ^ dhash(brighter)).count("1") <= 2
    assert bin(dhash(gray) ^ dhash(other)).count("1") > 10
    assert dhash(np.zeros((60, 80), np.uint8)) is None
