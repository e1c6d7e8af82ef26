"""Bad annotations: one line naming the file and line, exit 2, or a counted skip under --on-bad-frame skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_extract_argv
from corpus_replicas import IPN_A, egogesture, hagrid, ipn, jester, manifest

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
    return "samples.csv:5", "start 6 > end 2"


def past_the_end(root: Path) -> tuple[str, str]:
    egogesture(root)
    _append(root / "labels-final-revised1" / "Subject01" / "Scene1" / "Group1.csv", "5,8,11")
    return "Group1.csv:3", "past the end"


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
    past_the_end,
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
