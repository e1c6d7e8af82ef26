"""--classes: a benchmark's subset of a corpus's classes, labelled densely in the corpus's own order."""

from __future__ import annotations

import json

import pytest
from corpus_replicas import ipn, video

from core.errors import UserError
from data.config import DataConfig
from data.sequences import read_samples


def _wlasl(root, glosses):
    """An index in WLASL's order (glosses by frequency, not by name), one 6-frame video per gloss."""
    index = []
    for n, gloss in enumerate(glosses, start=1):
        video(root / "videos" / f"{n:05d}.mp4", 6)
        instance = {"video_id": f"{n:05d}", "frame_start": 1, "frame_end": -1, "signer_id": n}
        index.append({"gloss": gloss, "instances": [instance]})
    (root / "WLASL_v0.3.json").write_text(json.dumps(index))


def test_the_first_n_classes_of_wlasl_are_its_most_frequent_glosses(tmp_path):
    """WLASL100 is the first 100 glosses of the index: --classes N keeps those, in that order."""
    _wlasl(tmp_path, ["go", "book", "drink", "all"])
    dataset = read_samples(DataConfig(data=tmp_path, classes="2"))
    assert dataset.classes == ["go", "book"]
    assert sorted((v.class_name, v.label) for v in dataset.videos) == [("book", 1), ("go", 0)]
    assert any("2 of 4" in note for note in dataset.notes)


def test_named_classes_are_kept_and_a_mistyped_one_is_named_with_the_nearest(tmp_path):
    _wlasl(tmp_path, ["go", "book", "drink"])
    dataset = read_samples(DataConfig(data=tmp_path, classes="drink,go"))
    assert dataset.classes == ["go", "drink"]  # the corpus's order, not the order asked in
    assert [(v.class_name, v.label) for v in dataset.videos] == [("go", 0), ("drink", 1)]
    with pytest.raises(UserError, match="'drnk' not a class.*nearest: drink"):
        read_samples(DataConfig(data=tmp_path, classes="drnk"))
    with pytest.raises(UserError, match="has 3 classes"):
        read_samples(DataConfig(data=tmp_path, classes="4"))


def test_windows_keep_their_background_class(tmp_path):
    """A window over a left-out gesture is labelled by it and dropped, not relabelled as background."""
    ipn(tmp_path)
    dataset = read_samples(DataConfig(data=tmp_path, windows="4:2", classes="G01"))
    assert dataset.classes == ["G01", "no_gesture"]
    assert {v.class_name for v in dataset.videos} == {"G01", "no_gesture"}
