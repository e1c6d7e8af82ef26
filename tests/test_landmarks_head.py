"""The ST-GCN landmark head learns two-class hand motions from a synthetic cache, alone and fused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cache.schema import SCHEMA_VERSION, Dims, FieldSpec, create_datasets, encode_id, write_attrs
from models.heads.model import GestureModel, ModelArgs
from models.heads.stgcn import HAND_EDGES, hand_graph
from train.config import TrainConfig
from train.fit import run_train

CLASSES = ("swipe_left", "swipe_right")
T = 8
EPOCHS = 8


def _hand_template(rng: np.random.Generator) -> np.ndarray:
    """21 points of a rough open hand around the wrist, (21, 2), jittered per sequence."""
    angles = np.repeat(np.linspace(-1.0, 1.0, 5), 4)  # five fingers, four joints each
    reach = np.tile(np.arange(1, 5), 5) * 0.02
    fingers = np.stack([np.sin(angles) * reach, -np.cos(angles) * reach], 1)
    return np.concatenate([np.zeros((1, 2)), fingers]) * rng.uniform(0.8, 1.2)


def _sequences(n: int, rng: np.random.Generator, pose: bool) -> dict[str, np.ndarray]:
    """Class 0 moves the right hand right-to-left, class 1 left-to-right, with jittered start, speed and
    height; both classes cover the same places, so only the direction of motion tells them apart. The
    left hand idles or is missing; the right hand is missing in some frames."""
    labels = np.arange(n) % 2
    marks = np.zeros((n, T, 2, 21, 3), np.float32)
    valid = np.zeros((n, T, 2), np.uint8)
    for i, y in enumerate(labels):
        speed = rng.uniform(0.04, 0.08) * (1 if y else -1)
        centre = rng.uniform(0.4, 0.6)
        xs = centre + speed * (np.arange(T) - (T - 1) / 2)
        height = rng.uniform(0.3, 0.7)
        shape = _hand_template(rng)
        for t in range(T):
            marks[i, t, 1, :, :2] = shape + (xs[t], height) + rng.normal(0, 0.005, (21, 2))
            marks[i, t, 1, :, 2] = rng.normal(0, 0.01, 21)
        valid[i, :, 1] = rng.random(T) > 0.15
        if rng.random() < 0.5:
            marks[i, :, 0, :, :2] = _hand_template(rng) + (rng.uniform(0.2, 0.8), 0.8)
            valid[i, :, 0] = 1
    marks *= valid[..., None, None]
    out = {"landmarks": marks, "landmark_valid": valid, "labels": labels}
    if pose:
        out["pose"] = rng.uniform(0.3, 0.7, (n, T, 33, 3)).astype(np.float32)
        out["pose_valid"] = np.ones((n, T), np.uint8)
    return out


def write_landmark_cache(root: Path, counts: dict[str, int], seed: int = 0, pose: bool = False) -> Path:
    """A cache as ``--landmarks`` extraction writes it (plus a noise ``embeddings`` field to fuse with)."""
    fields = [
        FieldSpec("landmarks", (2, 21, 3), stream="landmarks"),
        FieldSpec("landmark_valid", (2,), "uint8", stream="landmarks", bounds=(0, 1)),
        FieldSpec("embeddings", (12, 8), stream="twelve"),
    ]
    if pose:
        fields += [FieldSpec("pose", (33, 3), stream="landmarks"), FieldSpec("pose_valid", (), "uint8")]
    dims = Dims(frames=T, fields=tuple(fields), float_dtype="float32")
    key_dir = root / "landmarks0001"
    key_dir.mkdir(parents=True)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "key": key_dir.name,
        "dims": dims.to_json(),
        "class_names": list(CLASSES),
        "encoders": {},
        "config": {"data": "/nonexistent", "frames": T, "preset": "tiny", "weights": "random"},
        "versions": {},
        "created": "2026-01-01T00:00:00Z",
    }
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in counts.items():
        data = _sequences(n, rng, pose)
        ids = [f"{CLASSES[y]}/{split}{i:03d}" for i, y in enumerate(data["labels"])]
        with h5py.File(key_dir / f"{split}.h5", "w") as h5:
            d = create_datasets(h5, n, dims)
            for name in ("landmarks", "landmark_valid", "labels", *(("pose", "pose_valid") if pose else ())):
                d[name][...] = data[name]
            d["embeddings"][...] = rng.normal(0, 1, (n, T, 12, 8))
            d["valid"][...] = 1
            d["frame_indices"][...] = np.arange(T)
            d["sequence_ids"][...] = [encode_id(s) for s in ids]
            d["content_ids"][...] = [hashlib.sha256(s.encode()).hexdigest().encode() for s in ids]
            write_attrs(h5, {**meta, "split": split})
        splits[split] = {"file": f"{split}.h5", "count": n, "sequence_ids": ids}
    (key_dir / "manifest.json").write_text(json.dumps({**meta, "complete": True, "splits": splits}))
    return key_dir


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return write_landmark_cache(tmp_path_factory.mktemp("lm"), {"train": 48, "val": 24, "test": 0})


def _train(cache: Path, out: Path, streams: str) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig(
            cache=cache, out=out, name=streams, streams=streams, epochs=EPOCHS, batch_size=8, lr=3e-3,
            hidden=16, dropout=0.1, seed=0, device="cpu", patience=0,
        )  # fmt: skip
        run = run_train(cfg)
    finally:
        torch.set_num_threads(threads)
    return json.loads((run / "run.json").read_text())


def test_stgcn_learns_the_direction_of_a_hand_motion(cache, tmp_path):
    report = _train(cache, tmp_path, "landmarks")
    assert report["best"]["value"] >= 0.95


def test_landmarks_fuse_with_another_stream(cache, tmp_path):
    report = _train(cache, tmp_path, "twelve,landmarks")
    assert report["best"]["value"] >= 0.95  # the noise stream cannot hide the landmark signal


def test_the_graph_joins_each_hands_skeleton_and_the_wrists():
    a = hand_graph() > 0
    for i, j in HAND_EDGES:
        assert a[i, j] and a[i + 21, j + 21]
    assert a[0, 21] and not a[4, 25]  # wrists joined; thumbs not
    p = hand_graph(pose=True) > 0
    assert p.shape == (75, 75) and p[0, 42 + 15] and p[21, 42 + 16]  # hands hang off the pose's wrists


def test_missing_hands_do_not_change_the_summary():
    """Whatever a missing hand's slot holds, the head's output is the same: it is masked, not read."""
    args = ModelArgs(2, ("landmarks",), {"landmarks": (2, 21, 3), "landmark_valid": (2,)}, hidden=8)
    torch.manual_seed(0)
    model = GestureModel(args).eval()
    marks = torch.rand(2, T, 2, 21, 3)
    hv = torch.ones(2, T, 2)
    hv[:, :, 0] = 0  # the left hand is missing throughout
    valid = torch.ones(2, T, dtype=torch.bool)
    with torch.no_grad():
        a, _ = model(valid, landmarks=marks, landmark_valid=hv)
        b, _ = model(
            valid, landmarks=torch.cat([marks[:, :, :1] * 5 - 2, marks[:, :, 1:]], 2), landmark_valid=hv
        )
        c, _ = model(valid, landmarks=marks * 0.5, landmark_valid=hv)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)  # the present hand is read
