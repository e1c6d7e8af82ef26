"""Windows labelled by overlap, subject-disjoint and official splits, and subjects in `cache info`."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from corpus_replicas import IPN_A, IPN_B, frame, ipn

from cache.subjects import subject_lines
from core.errors import UserError
from data.config import DataConfig
from data.sequences import read_samples
from data.splits import resolve_splits


def test_windows_take_the_label_covering_most_and_background_elsewhere(tmp_path):
    ipn(tmp_path)  # IPN_A: 12 frames, G01 on 0-3, G02 on 5-11; IPN_B: 9 frames, G01 on 1-4
    dataset = read_samples(DataConfig(data=tmp_path, windows="4:2"))
    got = {(v.video_id, v.start, v.end): v.class_name for v in dataset.videos}
    assert got == {
        (IPN_A, 0, 3): "G01",
        (IPN_A, 2, 5): "G01",  # G01 covers 2 of 4 frames, G02 only 1: half is enough
        (IPN_A, 4, 7): "G02",
        (IPN_A, 6, 9): "G02",
        (IPN_A, 8, 11): "G02",
        (IPN_B, 0, 3): "G01",
        (IPN_B, 2, 5): "G01",
        (IPN_B, 4, 7): "no_gesture",  # G01 covers 1 of 4
        (IPN_B, 5, 8): "no_gesture",  # the last window ends flush with the recording
    }
    assert dataset.classes == ["G01", "G02", "no_gesture"]
    assert f"G02/{IPN_A}@4-7" in {v.key for v in dataset.videos}  # the frame range is part of the id


def test_windows_background_label_is_a_flag_and_windows_need_segments(tmp_path):
    ipn(tmp_path / "ipn")
    dataset = read_samples(DataConfig(data=tmp_path / "ipn", windows="4:2", background_label="idle"))
    assert "idle" in dataset.classes and "no_gesture" not in dataset.classes
    assert not any("also a class" in note for note in dataset.notes)
    # a background label that is also an annotated class merges the two: allowed (a corpus' own
    # no-gesture class), and said
    merged = read_samples(DataConfig(data=tmp_path / "ipn", windows="4:2", background_label="G01"))
    assert any("'G01', which is also a class of the annotations" in note for note in merged.notes)
    frame(tmp_path / "plain" / "wave" / "v1_frame_0.jpg", 1)
    with pytest.raises(UserError, match="segment-annotated"):
        read_samples(DataConfig(data=tmp_path / "plain", windows="4:2"))


def test_recordings_shorter_than_the_window_become_one_window_and_one_note_says_how_many(tmp_path):
    ipn(tmp_path)  # IPN_A: 12 frames, IPN_B: 9
    dataset = read_samples(DataConfig(data=tmp_path, windows="10:5"))
    assert [(v.start, v.end) for v in dataset.videos if v.video_id == IPN_B] == [(0, 8)]  # all of it
    short = [note for note in dataset.notes if "shorter than" in note]
    assert short == [
        "windows 10:5: 1 of 2 recording(s) are shorter than the 10-frame window (9 frames); each became "
        "one window over its whole length, so its frames are sampled over less time than a full window's"
    ]
    fits = read_samples(DataConfig(data=tmp_path, windows="9:5"))  # as long as the window: nothing to say
    assert not any("shorter than" in note for note in fits.notes)


def _subject_manifest(root: Path, splits: dict[str, str] | None) -> Path:
    """6 subjects x 4 samples (2 per class), one 3-frame folder each."""
    rows = ["path,label,subject,split"]
    for s in range(6):
        for k in range(4):
            folder = f"s{s}_{k}"
            for n in range(3):
                frame(root / folder / f"{n:03d}.jpg", 40 * s + 10 * k + n)
            split = (splits or {}).get(f"s{s}", "")
            rows.append(f"{folder},{'ab'[k % 2]},s{s},{split}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    return root / "m.csv"


def _subjects_per_split(dataset, assignment) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for video in dataset.videos:
        out[video.subject].add(assignment[video.key])
    return out


def test_random_split_keeps_each_subject_in_one_split(tmp_path):
    cfg = DataConfig(data=tmp_path, manifest=_subject_manifest(tmp_path, None), val=0.3, test=0.3, seed=1)
    dataset = read_samples(cfg)
    placed = _subjects_per_split(dataset, resolve_splits(dataset, cfg))
    assert all(len(splits) == 1 for splits in placed.values()), placed
    assert {s for splits in placed.values() for s in splits} == {"train", "val", "test"}


def test_official_split_without_val_takes_val_from_train_by_subject_and_keeps_test(tmp_path):
    splits = {"s0": "train", "s1": "train", "s2": "train", "s3": "train", "s4": "test", "s5": "test"}
    cfg = DataConfig(data=tmp_path, manifest=_subject_manifest(tmp_path, splits), val=0.25)
    dataset = read_samples(cfg)
    assignment = resolve_splits(dataset, cfg)
    placed = _subjects_per_split(dataset, assignment)
    assert placed["s4"] == placed["s5"] == {"test"}  # the official test part is untouched
    assert all(len(s) == 1 for s in placed.values()) and sum(s == {"val"} for s in placed.values()) >= 1
    assert all(placed[f"s{i}"] <= {"train", "val"} for i in range(4))
    random = resolve_splits(dataset, DataConfig(data=tmp_path, split="random", val=0.25, test=0.25))
    assert set(random.values()) == {"train", "val", "test"}  # --split random ignores the given split
    with pytest.raises(UserError, match="ships no official split"):
        plain = DataConfig(data=tmp_path, manifest=_subject_manifest(tmp_path / "p", None), split="official")
        resolve_splits(read_samples(plain), plain)


def test_cache_info_counts_subjects_per_split_and_warns_when_one_is_in_two(tmp_path):
    payload = {
        "format": "gesture-splits/1",
        "assignment": {"a/1": "train", "a/2": "val", "b/3": "train", "b/4": "test"},
        "subjects": {"a/1": "p1", "a/2": "p1", "b/3": "p2", "b/4": "p3"},
    }
    (tmp_path / "splits.json").write_text(json.dumps(payload))
    lines = subject_lines(tmp_path)
    assert lines[0].split() == ["subjects:", "train=2", "val=1", "test=1"]
    assert (
        len(lines) == 2 and "1 subject(s) in more than one split" in lines[1] and "p1 (train+val)" in lines[1]
    )
    del payload["subjects"]["a/2"]
    (tmp_path / "splits.json").write_text(json.dumps(payload))
    assert len(subject_lines(tmp_path)) == 1


def test_extract_warns_before_encoding_when_an_official_split_leaves_a_class_out_of_training(tmp_path):
    """IPN's lists are the official split; a class only in the test list can never be learnt."""
    from data.summary import split_lines

    ipn(tmp_path)
    header = "video,label,id,t_start,t_end,frames\n"
    (tmp_path / "Annot_TrainList.txt").write_text(header + f"{IPN_A},G01,3,1,4,4\n{IPN_B},G01,3,2,5,4\n")
    (tmp_path / "Annot_TestList.txt").write_text(header + f"{IPN_A},G02,4,6,12,7\n")
    cfg = DataConfig(data=tmp_path, format="ipn", val=0.0)
    dataset = read_samples(cfg)
    lines = split_lines(dataset, resolve_splits(dataset, cfg))
    assert lines[0] == "split: train 2, val 0, test 1 samples, 2 classes"
    assert len(lines) == 2 and "1 class(es) have no training sample: G02 (val 0, test 1)" in lines[1]
    both = header + f"{IPN_A},G01,3,1,4,4\n{IPN_B},G02,3,2,5,4\n"
    (tmp_path / "Annot_TrainList.txt").write_text(both)
    dataset = read_samples(cfg)
    assert len(split_lines(dataset, resolve_splits(dataset, cfg))) == 1  # every class trains: no warning
