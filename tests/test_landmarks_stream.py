"""The landmarks stream: imported ``.npz`` files and MediaPipe (behind a fake landmarker) into the cache."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from conftest import augmentation_of, tiny_extract_argv, tiny_extract_config

import pipeline
from cache.schema import decode_id, read_attrs
from data.warp import warp_points
from extract.plan import make_plan
from extract.run import run as extract
from extract.streams import landmarks as stream
from models.landmarker import HandLandmarks, result_slots

# The encoders' outputs are tested elsewhere; without them an extraction is decode plus this stream.
ONLY_LANDMARKS = "vit=none,cnn=none,dino=none,swav=none,hands=none"
FRAME = re.compile(r"(?P<video>.+)_frame_(?P<n>\d+)\.\w+$")


def _videos(data: Path) -> dict[tuple[str, str], int]:
    """(class, video id) -> frame count of a demo dataset."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for path in data.glob("*/*"):
        m = FRAME.match(path.name)
        if m:
            counts[(path.parent.name, m["video"])] += 1
    return counts


def _expected(t: int, vid: int, pose: bool) -> dict[str, np.ndarray]:
    """Rows a test can recognise after float16 storage: x = frame/64, y = joint/32, z = video/32;
    the right hand is missing (zeros) on every third frame."""
    rows = np.arange(t, dtype=np.float32)[:, None, None]
    joints = np.arange(21, dtype=np.float32)[None, :, None]
    hand = np.concatenate(np.broadcast_arrays(rows / 64, joints / 32, np.full((1, 1, 1), vid / 32)), axis=2)
    left, right = hand.astype(np.float32), (hand + np.float32(1 / 8)).astype(np.float32)
    right[::3] = 0.0
    out = {"left_hand": np.concatenate([left, np.ones((t, 21, 1), np.float32)], 2), "right_hand": right}
    if pose:
        out["pose"] = np.tile(np.linspace(0, 1, 33, dtype=np.float32)[None, :, None], (t, 1, 4)) / 2
    return out


def _write_npz(data: Path, folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """One ``.npz`` per demo video (pose in every other one), under its class folder; video key -> arrays."""
    written = {}
    for vid, ((cls, video), t) in enumerate(sorted(_videos(data).items())):
        arrays = _expected(t, vid, pose=vid % 2 == 0)
        (folder / cls).mkdir(parents=True, exist_ok=True)
        np.savez(folder / cls / f"{video}.npz", **arrays)
        written[f"{cls}/{video}"] = arrays
    return written


def _stored(key_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for split in ("train", "val"):
        with h5py.File(key_dir / f"{split}.h5", "r") as h5:
            for i, sid in enumerate(h5["sequence_ids"][...]):
                fields = ("landmarks", "landmark_valid", "pose", "pose_valid", "frame_indices")
                out[decode_id(sid)] = {k: h5[k][i] for k in fields}
    return out


def test_npz_landmarks_are_stored_per_frame_in_slot_order_and_keyed_by_file(small_demo, tmp_path, capsys):
    folder = tmp_path / "marks"
    written = _write_npz(small_demo, folder)
    argv = tiny_extract_argv(
        small_demo, tmp_path / "cache", landmarks=f"npz:{folder}", encoders=ONLY_LANDMARKS
    )
    assert pipeline.main(argv) == 0
    key_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    stored = _stored(key_dir)
    assert set(stored) == set(written)
    for key, arrays in written.items():
        got, rows = stored[key], stored[key]["frame_indices"]
        np.testing.assert_allclose(got["landmarks"][:, 0], arrays["left_hand"][rows, :, :3], atol=1e-3)
        np.testing.assert_allclose(got["landmarks"][:, 1], arrays["right_hand"][rows], atol=1e-3)
        np.testing.assert_array_equal(got["landmark_valid"][:, 0], 1)
        np.testing.assert_array_equal(got["landmark_valid"][:, 1], rows % 3 != 0)
        has_pose = "pose" in arrays
        np.testing.assert_array_equal(got["pose_valid"], np.full(len(rows), has_pose))
        if has_pose:
            np.testing.assert_allclose(got["pose"], arrays["pose"][rows, :, :3], atol=1e-3)

    # Content-addressed: a rewritten file re-extracts its video only; the same files reuse everything.
    cfg = tiny_extract_config(
        small_demo, tmp_path / "cache", landmarks=f"npz:{folder}", encoders=ONLY_LANDMARKS
    )
    changed = sorted(written)[-1]  # among the last files read: a stale in-process copy would show
    arrays = dict(written[changed], left_hand=written[changed]["left_hand"] * 0.5)
    np.savez(folder / f"{changed}.npz", **arrays)
    result = extract(cfg)
    assert (result.key_dir, result.computed, result.reused) == (key_dir, 1, len(written) - 1)
    rows = stored[changed]["frame_indices"]
    got = _stored(key_dir)[changed]["landmarks"][:, 0]
    np.testing.assert_allclose(got, arrays["left_hand"][rows, :, :3], atol=1e-3)
    assert extract(cfg).computed == 0


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda f: f.unlink(), "no landmarks for video"),
        (lambda f: np.savez(f, left_hand=np.zeros((40, 21, 3))), "no right_hand array"),
        (lambda f: f.write_bytes(b"not a zip"), "cannot be read as .npz"),
        (
            lambda f: np.savez(f, left_hand=np.zeros((40, 20, 3)), right_hand=np.zeros((40, 20, 3))),
            "'left_hand' has shape (40, 20, 3)",  # the array's name in the file, not the slot's
        ),
        (
            lambda f: np.savez(f, left_hand=np.array([None]), right_hand=np.zeros((40, 21, 3))),
            "holds pickled objects",  # not numpy's advice to load it unsafely
        ),
    ],
)
def test_a_missing_or_malformed_npz_is_one_line_naming_it(small_demo, tmp_path, capsys, damage, says):
    folder = tmp_path / "marks"
    written = _write_npz(small_demo, folder)
    target = folder / f"{sorted(written)[0]}.npz"
    damage(target)
    argv = tiny_extract_argv(
        small_demo, tmp_path / "cache", landmarks=f"npz:{folder}", encoders=ONLY_LANDMARKS
    )
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the format-detection note
    assert err.startswith("error: ") and says in err
    assert (target.stem in err) or str(folder) in err


def _point(x: float, y: float, z: float) -> SimpleNamespace:
    return SimpleNamespace(x=x, y=y, z=z)


def _hand(label: str, score: float, x0: float) -> tuple[list, list]:
    marks = [_point(x0 + j / 100, 0.5 + j / 200, -j / 1000) for j in range(21)]
    return marks, [SimpleNamespace(category_name=label, score=score)]


class FakeLandmarker:
    """Returns, per frame, hands whose points encode the frame's mean grey level; order Right, Left."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray) -> SimpleNamespace:
        self.calls += 1
        level = float(image.mean()) / 255
        right, left = _hand("Right", 0.9, level), _hand("Left", 0.8, level + 0.25)
        return SimpleNamespace(hand_landmarks=[right[0], left[0]], handedness=[right[1], left[1]])


def test_result_slots_put_left_then_right_and_keep_both_of_one_label():
    result = SimpleNamespace(
        hand_landmarks=[_hand("Right", 0.9, 0.1)[0], _hand("Left", 0.7, 0.6)[0]],
        handedness=[_hand("Right", 0.9, 0.1)[1], _hand("Left", 0.7, 0.6)[1]],
    )
    points, valid = result_slots(result)
    assert valid.tolist() == [1, 1]
    assert points[0, 0, 0] == pytest.approx(0.6) and points[1, 0, 0] == pytest.approx(0.1)
    assert points[0, 20].tolist() == pytest.approx([0.8, 0.6, -0.02])
    # Two hands labelled Right: the surer one keeps slot 1, the other fills the free slot 0.
    twins = SimpleNamespace(
        hand_landmarks=[_hand("Right", 0.6, 0.3)[0], _hand("Right", 0.95, 0.7)[0]],
        handedness=[_hand("Right", 0.6, 0.3)[1], _hand("Right", 0.95, 0.7)[1]],
    )
    points, valid = result_slots(twins)
    assert (
        valid.tolist() == [1, 1]
        and points[1, 0, 0] == pytest.approx(0.7)
        and points[0, 0, 0] == pytest.approx(0.3)
    )
    empty = result_slots(SimpleNamespace(hand_landmarks=[], handedness=[]))
    assert empty[1].tolist() == [0, 0] and not empty[0].any()


def test_mediapipe_path_stores_a_fake_landmarkers_points_in_slot_order(small_demo, tmp_path, monkeypatch):
    task = tmp_path / "hand_landmarker.task"
    task.write_bytes(b"fake task file")
    monkeypatch.setattr(stream, "mediapipe_version", lambda: "0.0-test")
    fake = FakeLandmarker()
    monkeypatch.setitem(stream._landmarkers, str(task), HandLandmarks(fake, lambda frame: frame))
    cfg = tiny_extract_config(
        small_demo,
        tmp_path / "cache",
        landmarks="mediapipe",
        landmark_model=str(task),
        encoders=ONLY_LANDMARKS,
    )
    key_dir = extract(cfg).key_dir
    stored = _stored_mediapipe(key_dir)
    assert fake.calls == sum(len(v[0]) for v in stored.values())
    for marks, valid in stored.values():
        assert (valid == 1).all()
        # slot 0 is the hand labelled Left (offset +0.25), slot 1 the one labelled Right
        np.testing.assert_allclose(marks[:, 0, :, 0] - marks[:, 1, :, 0], 0.25, atol=2e-3)
        np.testing.assert_allclose(
            marks[:, 1, 20],
            np.stack([marks[:, 1, 0, 0] + 0.2, np.full(len(marks), 0.6), np.full(len(marks), -0.02)], 1),
            atol=2e-3,
        )
    assert 0 < np.concatenate([m[:, 1, 0, 0] for m, _ in stored.values()]).std()  # points follow the frames


@pytest.mark.parametrize("landmarks", ["none", "npz"])
def test_a_landmark_model_without_mediapipe_is_one_note_and_leaves_the_key(
    small_demo, tmp_path, capsys, landmarks
):
    if landmarks == "npz":
        _write_npz(small_demo, tmp_path / "lm")
        landmarks = f"npz:{tmp_path / 'lm'}"
    base = make_plan(tiny_extract_config(small_demo, tmp_path / "c", landmarks=landmarks)).key
    assert "note:" not in capsys.readouterr().err
    cfg = tiny_extract_config(small_demo, tmp_path / "c", landmarks=landmarks, landmark_model="x.task")
    assert make_plan(cfg).key == base  # the unused model never re-extracts anything
    err = capsys.readouterr().err
    assert (
        err.count(
            f"note: --landmark-model has no effect: only --landmarks mediapipe runs it, and "
            f"--landmarks is {landmarks}"
        )
        == 1
    )


def _stored_mediapipe(key_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for split in ("train", "val"):
        with h5py.File(key_dir / f"{split}.h5", "r") as h5:
            assert "pose" not in h5  # MediaPipe's hand landmarker has no pose
            for i, sid in enumerate(h5["sequence_ids"][...]):
                out[decode_id(sid)] = (h5["landmarks"][i].astype(np.float32), h5["landmark_valid"][i])
    return out


@pytest.mark.parametrize("installed", [False, True])
def test_mediapipe_missing_or_task_file_absent_is_one_line_naming_the_fix(
    small_demo, tmp_path, capsys, monkeypatch, installed
):
    import importlib.util

    real = importlib.util.find_spec
    fake_spec = SimpleNamespace(name="mediapipe")
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (fake_spec if installed else None) if name == "mediapipe" else real(name, *a),
    )
    monkeypatch.setattr("models.landmarker.version", lambda name: "1.2.3")
    task = tmp_path / "hand_landmarker.task"
    if not installed:
        task.write_bytes(b"a task file")  # present: the missing package is what is reported
    argv = tiny_extract_argv(
        small_demo,
        tmp_path / "cache",
        landmarks="mediapipe",
        landmark_model=str(task),
        encoders=ONLY_LANDMARKS,
    )
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ")
    if installed:
        assert "hand_landmarker.task" in err and "curl -LO https://" in err and str(task) in err
    else:
        assert 'pip install ".[landmarks]"' in err


def test_flipped_copies_carry_npz_landmarks_mirrored_and_distorted_ones_moved(small_demo, tmp_path):
    # swipe_left:swipe_right swaps labels on a flip, so a copy's stored label says whether it was flipped;
    # its pixels show the subject's left hand on the other side, seen as a right hand: slots swap too.
    # A distorted copy's landmarks then move as its pixels did (tests/test_warp.py checks on pixels).
    folder = tmp_path / "marks"
    written = _write_npz(small_demo, folder)
    cfg = tiny_extract_config(
        small_demo,
        tmp_path / "cache",
        landmarks=f"npz:{folder}",
        encoders=ONLY_LANDMARKS,
        augment_copies=3,
        flip_swap=("swipe_left:swipe_right",),
    )
    key_dir = extract(cfg).key_dir
    with h5py.File(key_dir / "train.h5", "r") as h5:
        names = list(read_attrs(h5)["class_names"])
        ids = [decode_id(s) for s in h5["sequence_ids"][...]]
        got = {k: h5[k][...] for k in ("labels", "landmarks", "landmark_valid", "pose", "frame_indices")}
    flips = moves = poses = 0
    for i, sequence in enumerate(ids):
        cls, video = sequence.split("#")[0].split("/")
        if cls not in ("swipe_left", "swipe_right") or names[got["labels"][i]] == cls:
            continue  # not flipped: the clean copy's test above covers it
        flips += 1
        arrays, rows = written[f"{cls}/{video}"], got["frame_indices"][i]
        left, right = arrays["left_hand"][rows, :, :3], arrays["right_hand"][rows]
        marks, valid = got["landmarks"][i], got["landmark_valid"][i]  # (T, 2, 21, 3), (T, 2)
        np.testing.assert_array_equal(valid[:, 0], rows % 3 != 0)  # the right hand, now in the left slot
        seen = rows % 3 != 0
        want = np.zeros_like(marks)  # the mirror image: x to 1 - x, y and z as they were
        want[seen, 0], want[:, 1] = right[seen], left
        want[..., 0] = np.where(valid[..., None].astype(bool), 1 - want[..., 0], 0)
        copy = augmentation_of(sequence, 64)
        assert copy.flipped
        if copy.warp is not None:
            want = np.stack([warp_points(w, v, copy.warp) for w, v in zip(want, valid, strict=True)])
            moves += 1
        np.testing.assert_allclose(marks[seen, 0], want[seen, 0], atol=2e-3)
        np.testing.assert_allclose(marks[:, 1], want[:, 1], atol=2e-3)
        if "pose" in arrays:  # the left shoulder (11) is where the right one (12) was, mirrored (and moved)
            shoulder = arrays["pose"][rows, 12, :3].copy()  # (T, 3)
            shoulder[:, 0] = 1 - shoulder[:, 0]
            if copy.warp is not None:
                shoulder = warp_points(shoulder[None], np.ones(1, bool), copy.warp)[0]
                poses += 1
            np.testing.assert_allclose(got["pose"][i][:, 11, :2], shoulder[:, :2], atol=2e-3)
    assert flips > 0 and moves > 0 and poses > 0


def test_predict_reads_an_inputs_own_landmark_file_given_landmarks_npz(
    small_demo, tmp_path, capsys, monkeypatch
):
    """A head trained on imported landmarks needs the new input's landmarks too: ``predict --landmarks-npz
    DIR`` reads ``DIR/<input name>.npz`` at the frames sampled from the input. Without it they are absent
    (and said so, once however many windows); given to a cache that imported none, it is a one-line
    error."""
    import json
    import shutil

    from core.errors import BadInputError
    from extract.single import extract_inputs

    _write_npz(small_demo, tmp_path / "marks")
    argv = tiny_extract_argv(
        small_demo, tmp_path / "cache", landmarks=f"npz:{tmp_path / 'marks'}", encoders=ONLY_LANDMARKS
    )
    assert pipeline.main(argv) == 0
    key_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    manifest = json.loads((key_dir / "manifest.json").read_text())

    (cls, video), t = max(_videos(small_demo).items(), key=lambda kv: kv[1])  # a new, numbered-frame input
    clip = tmp_path / "inputs" / "clip7"
    clip.mkdir(parents=True)
    for n, path in enumerate(sorted((small_demo / cls).glob(f"{video}_frame_*"))):
        shutil.copy(path, clip / f"{n:05d}{path.suffix}")
    arrays = _expected(t, vid=7, pose=True)
    (tmp_path / "new").mkdir()
    np.savez(tmp_path / "new" / "clip7.npz", **arrays)

    with pytest.raises(BadInputError) as missing:  # an input has no class: its file is DIR/<name>.npz only
        list(extract_inputs([clip], manifest, "cpu", landmarks_npz=tmp_path / "marks"))
    assert "no landmarks for video clip7 (looked for clip7.npz)" in str(missing.value)
    [item] = extract_inputs([clip], manifest, "cpu", landmarks_npz=tmp_path / "new")
    rows = item["frame_indices"]
    assert item["landmarks"].shape == (8, 2, 21, 3)
    np.testing.assert_allclose(item["landmarks"][:, 0], arrays["left_hand"][rows, :, :3], atol=1e-3)
    np.testing.assert_allclose(item["landmarks"][:, 1], arrays["right_hand"][rows], atol=1e-3)
    assert item["landmark_valid"][:, 1].tolist() == [int(r % 3 != 0) for r in rows]
    assert item["pose_valid"].all()

    monkeypatch.setattr(stream, "_warned", set())  # said once per process: start this one afresh
    bare = list(extract_inputs([clip], manifest, "cpu", windows=(8, 4)))  # several windows, one warning
    assert len(bare) > 1
    assert not any(b["landmark_valid"].any() or b["landmarks"].any() for b in bare)
    assert capsys.readouterr().err.count("predict --landmarks-npz DIR") == 1

    options = {**manifest["stream_options"], "landmarks": "none"}  # as a cache without landmarks records
    no_marks = dict(manifest, config={**manifest["config"], "landmarks": "none"}, stream_options=options)
    with pytest.raises(BadInputError, match=r"^--landmarks-npz .*imported no landmark files"):
        extract_inputs([clip], no_marks, "cpu", landmarks_npz=tmp_path / "new")


def test_shows_re_extraction_of_a_corpus_video_reads_its_landmark_file(small_demo, tmp_path, capsys):
    """``show`` re-extracts a corpus video the cache lacks (or sampled differently) from the video sample
    itself: the landmarks it draws come from that video's file in the cache's own ``npz:DIR``, as the
    cache's rows did, not from nowhere."""
    import json

    from extract.plan import make_plan
    from extract.single import extract_inputs

    _write_npz(small_demo, tmp_path / "marks")
    cfg = tiny_extract_config(
        small_demo, tmp_path / "cache", landmarks=f"npz:{tmp_path / 'marks'}", encoders=ONLY_LANDMARKS
    )
    key_dir = extract(cfg).key_dir
    manifest = json.loads((key_dir / "manifest.json").read_text())
    stored = _stored(key_dir)
    sequence = next(it.sequence for it in make_plan(cfg).items if it.sequence.aug_index == 0)

    [item] = extract_inputs([sequence.video], manifest, "cpu", fields={"landmarks", "landmark_valid"})
    row = stored[sequence.sequence_id]
    np.testing.assert_array_equal(item["frame_indices"], row["frame_indices"])
    np.testing.assert_allclose(item["landmarks"], row["landmarks"], atol=1e-3)
    np.testing.assert_array_equal(item["landmark_valid"], row["landmark_valid"])
    assert row["landmark_valid"].any()
    assert "no landmarks" not in capsys.readouterr().err
