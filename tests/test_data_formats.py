"""Every dataset format parses a tiny replica of its corpus into exactly the samples the corpus means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from corpus_replicas import (
    IPN_A,
    IPN_B,
    egogesture,
    frame,
    hagrid,
    hagrid_v1,
    ipn,
    jester,
    manifest,
    nvgesture,
    video,
    wlasl,
)

from core.errors import BadInputError
from data.config import DataConfig
from data.formats.hagrid import annotation_arrays
from data.formats.hagrid_hands import HagridNotes
from data.frames import read_frames
from data.sequences import read_samples

WRITERS = {
    "jester": jester,
    "ipn": ipn,
    "egogesture": egogesture,
    "nvgesture": nvgesture,
    "hagrid": hagrid,
    "wlasl": wlasl,
}
CLASSES = {  # label index order: Jester's label file, numeric ids in number order, else names sorted
    "jester": ["Thumb Up", "Swiping Left"],
    "ipn": ["G01", "G02"],
    "egogesture": ["5", "12"],
    "nvgesture": ["1", "2"],
    "hagrid": ["call", "like"],
    "wlasl": ["book", "drink"],
}


def samples(dataset) -> dict:
    return {v.key: (v.class_name, v.start, v.end, v.subject, v.split) for v in dataset.videos}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_format_is_detected_and_parses_into_the_expected_samples(tmp_path, name, capsys):
    expected = WRITERS[name](tmp_path)
    dataset = read_samples(DataConfig(data=tmp_path))  # --format auto
    assert dataset.format == name and f"format: {name}" in capsys.readouterr().err
    assert samples(dataset) == expected
    assert dataset.classes == CLASSES[name]


def test_format_help_names_every_registered_format():
    """--format's help is written by hand (the parser imports no format module): a new format file must
    appear there, or users never learn its name."""
    from dataclasses import fields

    from data.formats import format_names

    help_text = next(f for f in fields(DataConfig) if f.name == "format").metadata["help"]
    assert [name for name in format_names() if name not in help_text] == []


def test_manifest_reads_videos_and_numerically_ordered_frame_folders(tmp_path):
    path, expected = manifest(tmp_path)
    dataset = read_samples(DataConfig(data=tmp_path, manifest=path))
    assert dataset.format == "manifest" and samples(dataset) == expected
    folder = next(v for v in dataset.videos if v.key == "wave/frames/take2")
    assert [p.name for p in folder.frames] == ["img_1.png", "img_2.png", "img_10.png", "img_11.png"]
    assert read_frames(folder, np.array([2]))[0, 0, -1, 0] == 10  # frame 'img_10' is the third


def test_segments_index_the_source_and_read_its_frames(tmp_path):
    ipn(tmp_path)
    dataset = read_samples(DataConfig(data=tmp_path))
    segment = next(v for v in dataset.videos if v.key == f"G02/{IPN_A}@5-11")
    assert segment.source_length == 12 and segment.frames[5].name == f"{IPN_A}_000006.jpg"
    pixels = read_frames(segment, np.array([5, 11]))  # source indices: frames 6 and 12 of the recording
    assert np.allclose(pixels[:, 0, -1, 0], [90, 180], atol=6)


def test_ipn_lists_where_its_annotation_archive_unpacks_them_are_found(tmp_path):
    """IPN Hand's annotation archive unpacks into ``annotations/``: --data at the corpus root finds the
    lists there, and an edit to them is seen by a kept parse."""
    expected = ipn(tmp_path)
    (tmp_path / "annotations").mkdir()
    notes = (tmp_path / "Annot_List.txt").rename(tmp_path / "annotations" / "Annot_List.txt")
    memo = tmp_path / "memo.pkl"
    dataset = read_samples(DataConfig(data=tmp_path), memo_path=memo)
    assert dataset.format == "ipn" and samples(dataset) == expected
    notes.write_text(notes.read_text().replace(",G02,", ",G03,"))
    assert f"G03/{IPN_A}@5-11" in samples(read_samples(DataConfig(data=tmp_path), memo_path=memo))


def test_jester_csvs_in_a_label_folder_are_found_and_its_test_csv_predicts(tmp_path):
    """The TSM code base keeps Jester's CSVs in ``label/`` beside ``20bn-jester-v1/``: --data at the root
    reads the same samples, an edit to a moved CSV is seen by a kept parse, and predict takes the test
    CSV from there."""
    from data.inputs import predict_inputs

    expected = jester(tmp_path)
    (tmp_path / "label").mkdir()
    for csv in tmp_path.glob("jester-v1-*.csv"):
        csv.rename(tmp_path / "label" / csv.name)
    memo = tmp_path / "memo.pkl"
    dataset = read_samples(DataConfig(data=tmp_path), memo_path=memo)
    assert dataset.format == "jester" and samples(dataset) == expected
    train = tmp_path / "label" / "jester-v1-train.csv"
    train.write_text(train.read_text().replace("2;Thumb Up", "2;Swiping Left"))
    assert "Swiping Left/2" in samples(read_samples(DataConfig(data=tmp_path), memo_path=memo))
    [clip] = predict_inputs(tmp_path / "label" / "jester-v1-test.csv")
    assert clip.num_frames == 3 and clip.frames[0] == tmp_path / "20bn-jester-v1" / "4" / "00001.jpg"


def test_ipn_reads_its_videos_where_there_are_no_frame_folders(tmp_path):
    """IPN Hand also ships its recordings as videos/<video>.avi: without frames/, the same segments are read
    from them (t_start..t_end counted from 1), and the frames are the segment's own."""
    import shutil

    expected = ipn(tmp_path)
    shutil.rmtree(tmp_path / "frames")
    for name, count in {IPN_A: 12, IPN_B: 9}.items():
        video(tmp_path / "videos" / f"{name}.avi", count)  # frame i has the value 20 * i
    dataset = read_samples(DataConfig(data=tmp_path))
    assert dataset.format == "ipn" and samples(dataset) == expected
    segment = next(v for v in dataset.videos if v.key == f"G02/{IPN_A}@5-11")
    assert (segment.start, segment.end) == (5, 11)  # of the source: t_start 6 .. t_end 12
    pixels = read_frames(segment, np.array([segment.start, segment.end]))  # (2, H, W, 3)
    assert np.allclose(pixels[:, 0, 0, 0], [100, 220], atol=8)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_annotations_saved_with_a_byte_order_mark_and_stray_system_files_read_the_same(tmp_path, name):
    """Windows editors save UTF-8 with a BOM, and file managers leave .DS_Store or desktop.ini in every
    folder they open: neither changes what a corpus holds."""
    expected = WRITERS[name](tmp_path)
    for path in [p for p in tmp_path.rglob("*") if p.suffix in (".json", ".csv", ".txt", ".lst")]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    for folder in [tmp_path, *(p for p in tmp_path.rglob("*") if p.is_dir())]:
        (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    dataset = read_samples(DataConfig(data=tmp_path))
    assert dataset.format == name and samples(dataset) == expected


def test_wlasl_subsets_count_glosses_whose_videos_are_all_missing(tmp_path):
    """WLASL100 is the index's first 100 glosses whether or not their links still work: ``--classes N``
    counts in the index, and a gloss without any video is left out and named, not replaced by gloss N+1."""
    import json

    wlasl(tmp_path)
    index = json.loads((tmp_path / "WLASL_v0.3.json").read_text())
    gone = {"video_id": "09999", "frame_start": 1, "frame_end": -1, "signer_id": 1, "split": "train"}
    index.insert(0, {"gloss": "gone", "instances": [gone]})
    (tmp_path / "WLASL_v0.3.json").write_text(json.dumps(index))
    assert read_samples(DataConfig(data=tmp_path)).classes == ["book", "drink"]
    subset = read_samples(DataConfig(data=tmp_path, classes="2"))
    assert subset.classes == ["book"] and {v.class_name for v in subset.videos} == {"book"}
    assert any("left out: gone" in note for note in subset.notes)


def test_egogesture_as_it_unpacks_lower_case_labels_and_frames_in_several_parts(tmp_path):
    """EgoGesture's label folders come spelt ``subject01``/``group1.csv`` while its frames sit in
    ``Subject01`` folders spread over the archive's parts (``images_320-240_1``, ``_2``, ...), and some
    label files end in empty ``,,`` rows: the same samples are read as from the tidy layout."""
    import shutil

    expected = egogesture(tmp_path)
    labels = tmp_path / "labels-final-revised1"
    for subject in sorted(labels.iterdir()):
        group = subject / "Scene1" / "Group1.csv"
        group.write_text(group.read_text() + ",,\n")
        group.rename(subject / "Scene1" / "group1.csv")
        subject.rename(labels / subject.name.lower())
    for part, subject in enumerate(sorted((tmp_path / "images").iterdir()), 1):
        shutil.move(subject, tmp_path / f"images_320-240_{part}" / subject.name)
    (tmp_path / "images").rmdir()
    dataset = read_samples(DataConfig(data=tmp_path))
    assert dataset.format == "egogesture" and samples(dataset) == expected


def test_hagrid_annotations_ride_on_the_sample(tmp_path):
    hagrid(tmp_path)
    video = next(v for v in read_samples(DataConfig(data=tmp_path)).videos if v.key == "call/a1")
    assert isinstance(video.annotations, HagridNotes)  # packed; read back as parsed
    assert video.annotations["labels"] == ["call", "no_gesture"]
    assert video.annotations["hand_landmarks"] == [[[0.15, 0.25]] * 21, []]
    assert video.annotations["united_label"] == ["call"]
    arrays = annotation_arrays(video, max_hands=3)
    assert arrays["annotated_count"] == 2
    assert np.allclose(arrays["annotated_boxes"][0], [0.1, 0.2, 0.4, 0.6])
    assert np.allclose(arrays["annotated_landmarks"][0, 20], [0.15, 0.25])
    assert arrays["annotated_landmarks_valid"].tolist() == [1, 0, 0]  # the second hand has no points
    assert not arrays["annotated_landmarks"][1].any() and not arrays["annotated_boxes"][2].any()


@pytest.mark.parametrize("download_script", [False, True])
def test_hagrid_v1_folders_are_read_and_images_not_unpacked_are_left_out_with_a_note(
    tmp_path, download_script
):
    """HaGRID v1 ships ann_train_val/ and ann_test/ for every class and one image archive per class: the
    images unpacked are the samples, and what was annotated but not unpacked is counted, not an error."""
    expected = hagrid_v1(tmp_path, download_script)
    dataset = read_samples(DataConfig(data=tmp_path))  # --format auto
    assert dataset.format == "hagrid" and samples(dataset) == expected
    assert dataset.classes == ["call", "like"]
    absent, partial = dataset.notes
    assert "dislike" in absent and "2 annotated" in absent
    assert "1 annotated image(s)" in partial and "call/a9" in partial


def test_wlasl_lists_instances_without_video_and_goes_on(tmp_path):
    expected = wlasl(tmp_path)
    dataset = read_samples(DataConfig(data=tmp_path))
    assert len(dataset.videos) == len(expected)
    assert any("1 instance(s) have no video" in note and "00002" in note for note in dataset.notes)


def test_format_can_be_forced_and_unknown_names_are_refused(tmp_path):
    ipn(tmp_path)
    assert read_samples(DataConfig(data=tmp_path, format="ipn")).format == "ipn"
    with pytest.raises(Exception, match="--format 'ipnn' is not known"):
        read_samples(DataConfig(data=tmp_path, format="ipnn"))


def test_listing_memo_reuses_an_unchanged_folder_and_relists_a_changed_one(tmp_path):
    from data.framelist import ListingMemo

    ipn(tmp_path)
    memo_path = tmp_path / "memo.pkl"
    folder = tmp_path / "frames" / IPN_A
    first = ListingMemo(memo_path)
    assert len(first.frames(folder)) == 12
    first.save()
    again = ListingMemo(memo_path)
    assert len(again.frames(folder)) == 12 and not again.changed
    (folder / f"{IPN_A}_000013.jpg").write_bytes((folder / f"{IPN_A}_000001.jpg").read_bytes())
    assert len(again.frames(folder)) == 13 and again.changed


def test_a_kept_parse_is_reused_only_while_annotations_and_folders_are_unchanged(tmp_path):
    ipn(tmp_path)
    memo = tmp_path / "memo.pkl"
    cfg = DataConfig(data=tmp_path)
    first = read_samples(cfg, memo_path=memo)
    assert samples(read_samples(cfg, memo_path=memo)) == samples(first)
    notes = tmp_path / "Annot_List.txt"
    notes.write_text(notes.read_text().replace(",G02,", ",G03,"))  # same size, new content
    assert f"G03/{IPN_A}@5-11" in samples(read_samples(cfg, memo_path=memo))
    for n in (13, 14):  # the recording grows: a segment may now reach frames it could not before
        frame(tmp_path / "frames" / IPN_A / f"{IPN_A}_{n:06d}.jpg", n)
    grown = next(v for v in read_samples(cfg, memo_path=memo).videos if v.video_id == IPN_A)
    assert grown.source_length == 14


def test_a_kept_hagrid_parse_skips_its_json_and_is_redone_when_images_or_annotations_change(
    tmp_path, monkeypatch
):
    """HaGRID's annotations are ~1.6 GB of JSON: an unchanged corpus is planned again without parsing them,
    while an image unpacked since, a class archive unpacked since, or an edited JSON is seen."""
    import data.formats.hagrid

    expected = hagrid_v1(tmp_path)
    memo, cfg = tmp_path / "memo.pkl", DataConfig(data=tmp_path)
    first = read_samples(cfg, memo_path=memo)
    parsed: list[int] = []
    loads = data.formats.hagrid.json.loads
    monkeypatch.setattr(data.formats.hagrid.json, "loads", lambda text: parsed.append(1) or loads(text))
    again = read_samples(cfg, memo_path=memo)
    assert samples(again) == samples(first) == expected and not parsed
    assert again.notes == first.notes  # the notes of what was left out are said again
    frame(tmp_path / "hagrid_30k" / "train_val_call" / "a9.jpg", 7)  # the missing image turns up
    assert "call/a9" in samples(read_samples(cfg, memo_path=memo)) and parsed
    frame(tmp_path / "hagrid_30k" / "train_val_dislike" / "d1.jpg", 9)  # dislike's archive unpacked
    assert "dislike/d1" in samples(read_samples(cfg, memo_path=memo))
    frame(tmp_path / "hagrid_dataset" / "dislike" / "d2.jpg", 11)  # into an image root new since
    assert {"call/a9", "dislike/d1", "dislike/d2"} <= set(samples(read_samples(cfg, memo_path=memo)))
    notes = tmp_path / "ann_test" / "call.json"
    notes.write_text(notes.read_text().replace('"u4"', '"u7"'))  # same size, new subject
    assert any(v.subject == "u7" for v in read_samples(cfg, memo_path=memo).videos)


def test_video_lengths_are_kept_while_the_file_is_unchanged_and_probed_again_when_it_changes(
    tmp_path, monkeypatch
):
    """Planning a corpus of videos again opens none of them; a video rewritten with another length is
    probed again, so its samples never keep a stale length; a video that fails to probe fails again."""
    import data.frames

    wlasl(tmp_path)
    memo, cfg = tmp_path / "memo.pkl", DataConfig(data=tmp_path)
    first = {v.key: v.num_frames for v in read_samples(cfg, memo_path=memo).videos}
    opened: list[str] = []
    probe = data.frames.probe_video
    monkeypatch.setattr(
        data.frames, "probe_video", lambda path: opened.append(Path(path).name) or probe(path)
    )
    assert {v.key: v.num_frames for v in read_samples(cfg, memo_path=memo).videos} == first and not opened
    video(tmp_path / "videos" / "00003.mp4", 5)  # re-encoded shorter: was 8 frames
    again = {v.key: v.num_frames for v in read_samples(cfg, memo_path=memo).videos}
    assert opened == ["00003.mp4"] and again == {**first, "drink/00003": 5}
    (tmp_path / "videos" / "00003.mp4").write_bytes(b"not a video")
    for _ in range(2):
        with pytest.raises(BadInputError, match="00003.mp4"):
            read_samples(cfg, memo_path=memo)


@pytest.mark.parametrize("name", ["ipn", "egogesture"])
def test_a_missing_frame_does_not_shift_the_segments_after_it(tmp_path, name):
    """IPN Hand and EgoGesture name frames by number and annotate by those numbers: a frame deleted from a
    recording (say, as corrupt) leaves every later segment on the frames its annotation names."""
    WRITERS[name](tmp_path)
    before = {v.key: v for v in read_samples(DataConfig(data=tmp_path, format=name)).videos}
    late = max(before.values(), key=lambda v: v.start)  # a segment that starts well into its recording
    named = [late.frames[i].name for i in range(late.start, late.end + 1)]
    gone = late.frames[late.start - 2]  # a frame before the segment
    gone.unlink()
    after = read_samples(DataConfig(data=tmp_path, format=name)).videos
    [moved] = [v for v in after if v.video_id == late.video_id and v.class_name == late.class_name]
    assert [moved.frames[i].name for i in range(moved.start, moved.end + 1)] == named
    assert moved.source_length == late.source_length - 1 and gone.name not in [f.name for f in moved.frames]


def test_predict_runs_over_the_jester_test_csv_and_numbered_folders(tmp_path):
    from data.inputs import predict_inputs

    jester(tmp_path)
    [clip] = predict_inputs(tmp_path / "jester-v1-test.csv")  # ids only: clip 4, 3 frames
    assert clip.num_frames == 3 and clip.frames[0] == tmp_path / "20bn-jester-v1" / "4" / "00001.jpg"
    [folder] = predict_inputs(tmp_path / "20bn-jester-v1" / "1")
    assert folder.num_frames == 5 and folder.label == -1
    (tmp_path / "ids.txt").write_text("1\n77\n")
    with pytest.raises(Exception, match=r"ids.txt:2: id '77' has no frame folder"):
        predict_inputs(tmp_path / "ids.txt")
    (tmp_path / "Annot_List.txt").write_text("video,label,id,t_start,t_end,frames\n1,a,1,1,3,3\n")  # IPN's
    with pytest.raises(Exception, match=r"Annot_List.txt:1: reads as an annotation table.*evaluate"):
        predict_inputs(tmp_path / "Annot_List.txt")


@pytest.mark.parametrize(
    ("names", "ordered"),
    [
        (["00003.jpg", "00001.jpg", "00002.jpg"], ["00001.jpg", "00002.jpg", "00003.jpg"]),
        (["00004.jpg", "00001.jpg", "00002.jpg"], ["00001.jpg", "00002.jpg", "00004.jpg"]),  # a gap
        (["00003.jpg", "00002b.jpg", "00001.jpg"], ["00001.jpg", "00002b.jpg", "00003.jpg"]),  # odd one in
        (
            ["00002.jpg", "00001.jpg", "0000a.jpg"],
            ["0000a.jpg", "00001.jpg", "00002.jpg"],
        ),  # "0000a" carries the number 0
        (
            ["frame-0003.jpg", "frame-0002.jpg", ".DS_Store", "notes.txt"],
            ["frame-0002.jpg", "frame-0003.jpg"],
        ),
    ],
)
def test_listing_orders_frames_by_number_and_ignores_other_files(tmp_path, names, ordered):
    from data.framelist import list_frames

    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_frames(tmp_path)] == ordered
