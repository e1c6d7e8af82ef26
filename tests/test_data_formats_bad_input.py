"""Bad annotations: one line naming the file and line, exit 2, or a counted skip under --on-bad-frame skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_extract_argv
from corpus_replicas import IPN_A, egogesture, hagrid, ipn, jester, manifest, nvgesture, wlasl

import pipeline
from core.errors import BadInputError
from data.config import DataConfig
from data.sequences import read_samples


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


def malformed_line(root: Path) -> tuple[str, str]:
    ipn(root)
    _append(root / "Annot_List.txt", f"{IPN_A},G01,3")
    return "Annot_List.txt:5", "expected video,label"


def unknown_label(root: Path) -> tuple[str, str]:
    jester(root)
    _append(root / "jester-v1-train.csv", "2;Waving Hand")
    return "jester-v1-train.csv:3", "'Waving Hand' is not in"


def start_after_end(root: Path) -> tuple[str, str]:
    path, _ = manifest(root)
    _append(path, "clips/take1.mp4,wave,6,2,s1,")
    return "samples.csv:5", "starts after it ends (start 6, end 2, 0-based)"


def start_after_end_as_written(root: Path) -> tuple[str, str]:
    """A 1-based corpus's bounds are quoted as its line writes them, not as the 0-based indices."""
    ipn(root)
    _append(root / "Annot_List.txt", f"{IPN_A},G01,3,5,2,4")
    return "Annot_List.txt:5", "starts after it ends (t_start 5, t_end 2)"


def negative_start(root: Path) -> tuple[str, str]:
    nvgesture(root)
    lst = root / "nvgesture_train_correct_cvpr2016_v2.lst"
    _append(lst, "path:./Video_data/class_01/subject13_r0 color:sk_color:-1:5 label:1")
    return "cvpr2016_v2.lst:2", "starts before the first frame (color sk_color:-1:5"


def nvgesture_path_escapes(root: Path) -> tuple[str, str]:
    nvgesture(root)
    lst = root / "nvgesture_train_correct_cvpr2016_v2.lst"
    _append(lst, "path:../../elsewhere/subject1_r0 color:sk_color:1:5 label:1")
    return "cvpr2016_v2.lst:2", "leaves --data"


def same_clip_two_labels(root: Path) -> tuple[str, str]:
    """One Jester clip listed under two labels (here across train and validation) is a conflict."""
    jester(root)
    _append(root / "jester-v1-validation.csv", "1;Thumb Up")
    return "jester-v1-validation.csv:2", "already given at"


def slash_in_label(root: Path) -> tuple[str, str]:
    path, _ = manifest(root)
    _append(path, "clips/take1.mp4,wave/left,,,s1,")
    return "samples.csv:5", "label 'wave/left' holds '/'"


def slash_in_gloss(root: Path) -> tuple[str, str]:
    """Any format's label, not only a manifest's: a WLASL gloss spelled with '/' would split its ids."""
    wlasl(root)
    index = json.loads((root / "WLASL_v0.3.json").read_text())
    index[0]["gloss"] = "yes/no"
    (root / "WLASL_v0.3.json").write_text(json.dumps(index))
    return "entry 0 ('yes/no') instance 0", "label 'yes/no' holds '/'"


def not_a_video(root: Path) -> tuple[str, str]:
    path, _ = manifest(root)
    _append(path, "clips/notes.txt,wave,,,s1,")
    (root / "clips" / "notes.txt").write_text("not a video")
    return "samples.csv:5", "neither a frame folder nor a video file"


def past_the_end(root: Path) -> tuple[str, str]:
    egogesture(root)
    _append(root / "labels-final-revised1" / "Subject01" / "Scene1" / "Group1.csv", "5,8,11")
    return "Group1.csv:3", "past the end of"


def past_the_end_as_written(root: Path) -> tuple[str, str]:
    wlasl(root)
    index = json.loads((root / "WLASL_v0.3.json").read_text())
    index[0]["instances"][0]["frame_end"] = 40  # 00001.mp4 has 10 frames
    (root / "WLASL_v0.3.json").write_text(json.dumps(index))
    return "('book') instance 0", "(frame_start 2, frame_end 40; it has 10 frames)"


def id_without_folder(root: Path) -> tuple[str, str]:
    jester(root)
    _append(root / "jester-v1-validation.csv", "99;Thumb Up")
    return "jester-v1-validation.csv:2", "id '99' has no frame folder"


def json_wrong_shape(root: Path) -> tuple[str, str]:
    hagrid(root)
    path = root / "annotations" / "val" / "like.json"
    data = json.loads(path.read_text())
    data["b1"]["bboxes"] = [[0.1, 0.2]]
    path.write_text(json.dumps(data))
    return "like.json: image 'b1'", "'bboxes' is not a list of [x, y, w, h]"


def path_escapes(root: Path) -> tuple[str, str]:
    path, _ = manifest(root)
    _append(path, "../outside/take1.mp4,wave,,,s1,")
    return "samples.csv:5", "escapes --data"


def absolute_path(root: Path) -> tuple[str, str]:
    path, _ = manifest(root)
    _append(path, f"{root / 'clips' / 'take1.mp4'},wave,,,s1,")
    return "samples.csv:5", "escapes --data"


def nul_in_name(root: Path) -> tuple[str, str]:
    ipn(root)
    _append(root / "Annot_List.txt", "1CM1\x00_1_R_#9,G01,3,1,4,4")  # a damaged byte in the video name
    return "Annot_List.txt:5", "not a valid folder name"


CASES = [
    malformed_line,
    unknown_label,
    start_after_end,
    start_after_end_as_written,
    negative_start,
    nvgesture_path_escapes,
    same_clip_two_labels,
    not_a_video,
    slash_in_label,
    slash_in_gloss,
    past_the_end,
    past_the_end_as_written,
    id_without_folder,
    json_wrong_shape,
    path_escapes,
    absolute_path,
    nul_in_name,
]


def _argv(root: Path, cache: Path, **flags) -> list[str]:
    if (root / "samples.csv").exists():
        flags["manifest"] = root / "samples.csv"
    return tiny_extract_argv(root, cache, **flags)


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_annotation_is_one_line_naming_file_and_line(tmp_path, case, capsys):
    root = tmp_path / "data"
    where, what = case(root)
    assert pipeline.main(_argv(root, tmp_path / "cache")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and where in err[0] and what in err[0], err
    assert err[0].count(where) == 1 and err[0].count("--on-bad-frame skip") == 1, err  # said once
    assert "--on-bad-frame skip" in err[0], err  # the way past a bad line of a large corpus
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("*/manifest.json"))


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_annotation_is_a_counted_skip(tmp_path, case):
    root = tmp_path / "data"
    where, _ = case(root)
    extra = {"manifest": root / "samples.csv"} if (root / "samples.csv").exists() else {}
    dataset = read_samples(DataConfig(data=root, on_bad_frame="skip", **extra))
    assert len(dataset.skipped) == 1 and where in dataset.skipped[0]
    assert all(where not in v.video_id for v in dataset.videos)


def test_an_annotation_file_without_samples_is_named(tmp_path):
    """A manifest holding its header only (a truncated download, a filter that matched nothing) names
    the manifest, not the data folder, as the file to fix."""
    path, _ = manifest(tmp_path)
    path.write_text("path,label,start,end,subject,split\n")
    with pytest.raises(BadInputError, match=r"samples\.csv: no usable samples"):
        read_samples(DataConfig(data=tmp_path, manifest=path))
