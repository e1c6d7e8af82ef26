"""``--landmarks annotations``: HaGRID's annotated hand landmarks (v2 ``hand_landmarks``, v1
``landmarks``) into the landmarks stream, slotted by the leading hand (else by x), keyed by the annotation,
and trained on by the ST-GCN head at one frame per sample."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch
from conftest import tiny_extract_argv, tiny_extract_config
from corpus_replicas import frame

import pipeline
from cache.schema import decode_id
from cache.verify import verify_cache
from extract.run import run as extract

ONLY_LANDMARKS = "vit=none,cnn=none,dino=none,swav=none,hands=none"


def hand(x0: float, y0: float = 0.4) -> list[list[float]]:
    """21 annotated points that a test can recognise: x from x0 rightwards, y from y0 downwards."""
    return [[x0 + j / 256, y0 + j / 128] for j in range(21)]


def write_hagrid(root: Path, images: dict[tuple[str, str], dict[str, dict]]) -> None:
    """A HaGRID replica: (split, class) -> image id -> annotation, one tiny image per id."""
    for (split, label), entries in images.items():
        for i, image in enumerate(entries):
            frame(root / "hagrid_dataset" / label / f"{image}.jpg", 30 * i + 10)
        path = root / "annotations" / split / f"{label}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entries))


def entry(labels: list[str], marks: list[list], leading: str | None = None, user: str = "u1") -> dict:
    boxes = [[0.1, 0.1, 0.2, 0.2]] * len(labels)
    out = {"bboxes": boxes, "labels": labels, "user_id": user, "hand_landmarks": marks}
    return out if leading is None else {**out, "leading_hand": leading}


def stored(key_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """sequence id -> (landmarks (T, 2, 21, 3), landmark_valid (T, 2)) over every split file."""
    out = {}
    for split in ("train", "val", "test"):
        with h5py.File(key_dir / f"{split}.h5", "r") as h5:
            for i, sid in enumerate(h5["sequence_ids"][...]):
                out[decode_id(sid)] = (h5["landmarks"][i].astype(np.float32), h5["landmark_valid"][i])
    return out


def test_annotated_hands_go_to_the_leading_hand_slot_else_by_x_and_an_edit_recomputes_one(tmp_path):
    root = tmp_path / "hagrid"
    images = {
        ("train", "call"): {
            # leading_hand names the gesturing hand's slot, whatever side of the image it is on
            "a1": entry(["call", "no_gesture"], [hand(0.7), hand(0.2)], leading="left"),
            "a2": entry(["no_gesture", "call"], [hand(0.6), hand(0.1)], leading="right"),
        },
        ("train", "like"): {
            "b1": entry(["like", "like"], [hand(0.8), hand(0.3)]),  # HaGRIDv2 two-handed: by x
            "b2": entry(["like"], [hand(0.7)]),  # one hand, no leading_hand: the image half it is in
        },
        ("val", "call"): {"c1": entry(["call", "no_gesture"], [hand(0.3), []], leading="right")},
    }
    write_hagrid(root, images)
    expected = {  # sequence id -> (slot 0, slot 1): the annotated hand's x0, or None for an empty slot
        "call/a1": (0.7, 0.2),
        "call/a2": (0.6, 0.1),
        "like/b1": (0.3, 0.8),
        "like/b2": (None, 0.7),
        "call/c1": (None, 0.3),
    }
    cfg = tiny_extract_config(
        root, tmp_path / "cache", frames=1, landmarks="annotations", encoders=ONLY_LANDMARKS
    )
    first = extract(cfg)
    got = stored(first.key_dir)
    assert set(got) == set(expected)
    for sid, slots in expected.items():
        marks, valid = got[sid]
        assert marks.shape == (1, 2, 21, 3)
        assert valid[0].tolist() == [int(x is not None) for x in slots], sid
        for slot, x0 in enumerate(slots):
            want = np.zeros((21, 3)) if x0 is None else np.c_[np.asarray(hand(x0)), np.zeros(21)]
            np.testing.assert_allclose(marks[0, slot], want, atol=1e-3, err_msg=f"{sid} slot {slot}")

    # The annotation is the sample's content: moving one point in the JSON re-extracts that image only.
    path = root / "annotations" / "train" / "call.json"
    data = json.loads(path.read_text())
    data["a1"]["hand_landmarks"][0][8] = [0.5, 0.5]
    path.write_text(json.dumps(data))
    second = extract(cfg)
    assert (second.key_dir, second.computed, second.reused) == (first.key_dir, 1, len(expected) - 1)
    np.testing.assert_allclose(stored(second.key_dir)["call/a1"][0][0, 0, 8, :2], [0.5, 0.5], atol=1e-3)
    assert extract(cfg).computed == 0


def test_hagrid_v1_landmarks_are_read_as_v2s_and_a_corpus_without_any_is_warned_about(tmp_path, capsys):
    """HaGRID (v1) names the per-hand points ``landmarks``, HaGRIDv2 ``hand_landmarks``: both reach the
    stream alike. Annotations without a single landmarked hand would store nothing but absent landmarks,
    so the run says so once, before extracting."""

    def v1(labels: list[str], marks: list[list], leading: str) -> dict:
        out = entry(labels, marks, leading)
        return {**{k: v for k, v in out.items() if k != "hand_landmarks"}, "landmarks": marks}

    root = tmp_path / "v1"
    write_hagrid(root, {("train", "call"): {"a1": v1(["call", "no_gesture"], [hand(0.7), [[]]], "left")}})
    cfg = tiny_extract_config(
        root, tmp_path / "cache", frames=1, landmarks="annotations", encoders=ONLY_LANDMARKS
    )
    marks, valid = stored(extract(cfg).key_dir)["call/a1"]
    assert valid[0].tolist() == [1, 0]
    np.testing.assert_allclose(marks[0, 0, :, :2], hand(0.7), atol=1e-3)
    assert "warning: --landmarks annotations" not in capsys.readouterr().err

    bare = tmp_path / "bare"  # boxes and labels only, and a hand with too few points
    write_hagrid(
        bare,
        {
            ("train", "call"): {"a1": entry(["call"], []), "a2": entry(["call"], [hand(0.2)[:20]])},
            ("val", "call"): {"b1": {"bboxes": [[0.1, 0.1, 0.2, 0.2]], "labels": ["call"]}},
        },
    )
    argv = tiny_extract_argv(
        bare, tmp_path / "cache2", frames=1, landmarks="annotations", encoders=ONLY_LANDMARKS
    )
    assert pipeline.main(argv) == 0
    warned = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning: --landmarks")]
    assert len(warned) == 1 and "none of the 3 samples" in warned[0]


def test_a_format_without_annotated_landmarks_is_one_line_naming_the_flag(small_demo, tmp_path, capsys):
    argv = tiny_extract_argv(small_demo, tmp_path / "cache", landmarks="annotations", encoders=ONLY_LANDMARKS)
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("error: ")]) == 1
    assert err[-1].startswith("error: --landmarks annotations:") and "folders" in err[-1]
    assert "npz:DIR" in err[-1]  # what to do instead
    assert not list((tmp_path / "cache").glob("*/manifest.json"))


def test_hagrid_landmarks_extract_and_train_the_stgcn_at_one_frame(tmp_path, capsys):
    """Two classes told apart only by where the annotated hand is: the landmark head learns them at T=1."""
    root = tmp_path / "hagrid"
    rng = np.random.default_rng(0)
    images: dict[tuple[str, str], dict[str, dict]] = {}
    for split, count in (("train", 8), ("val", 4)):
        for label, side in (("call", 0.15), ("like", 0.65)):
            images[(split, label)] = {
                f"{label[0]}{split[0]}{i}": entry(
                    [label], [hand(side + rng.uniform(0, 0.1), rng.uniform(0.2, 0.5))], user=f"{split}{i}"
                )
                for i in range(count)
            }
    write_hagrid(root, images)
    argv = tiny_extract_argv(
        root, tmp_path / "cache", frames=1, format="hagrid", landmarks="annotations", encoders=ONLY_LANDMARKS
    )
    assert pipeline.main(argv) == 0
    key_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    with h5py.File(key_dir / "train.h5", "r") as h5:
        assert h5["landmarks"].shape == (16, 1, 2, 21, 3) and h5["landmark_valid"][...].sum() == 16
    assert verify_cache(key_dir) == []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train = ["train", "--cache", str(key_dir), "--out", str(tmp_path / "runs"), "--name", "lm"]
        train += ["--streams", "landmarks", "--epochs", "6", "--batch-size", "4", "--lr", "3e-3"]
        train += ["--hidden", "8", "--device", "cpu", "--patience", "0", "--seed", "0"]
        assert pipeline.main(train) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "runs" / "lm" / "run.json").read_text())
    assert report["best"]["value"] >= 0.99  # the val images' hands sit where their class's do


def test_a_leading_hand_other_than_left_or_right_is_one_line_naming_the_file_and_image(tmp_path, capsys):
    root = tmp_path / "hagrid"
    write_hagrid(root, {("train", "call"): {"a1": entry(["call"], [hand(0.2)], leading="both")}})
    argv = tiny_extract_argv(
        root, tmp_path / "cache", frames=1, landmarks="annotations", encoders=ONLY_LANDMARKS
    )
    assert pipeline.main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "call.json: image 'a1'" in err[0] and "'leading_hand'" in err[0], err
