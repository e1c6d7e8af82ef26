"""Segments and stills end to end: extract, re-extract after an annotation edit, train, evaluate, predict."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from conftest import tiny_extract_argv, tiny_extract_config
from corpus_replicas import IPN_A, hagrid, ipn

import pipeline
from cache.verify import verify_cache
from extract.run import run
from train.config import EvaluateConfig, PredictConfig, TrainConfig
from train.evaluate import run_evaluate
from train.fit import run_train
from train.predict import run_predict


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stored(key_dir) -> dict[str, np.ndarray]:
    """sequence id -> frame_indices over every split file of a cache."""
    out = {}
    for split in ("train", "val", "test"):
        with h5py.File(key_dir / f"{split}.h5", "r") as h5:
            for sid, indices in zip(h5["sequence_ids"][...], h5["frame_indices"][...], strict=True):
                out[sid.decode()] = indices
    return out


def _train(cache, out):
    return run_train(
        TrainConfig(
            cache=cache, out=out, name="r", epochs=1, batch_size=4, hidden=8, device="cpu", patience=0
        )
    )


def test_segments_are_sequences_in_their_bounds_and_an_edit_recomputes_one(tmp_path, capsys):
    root = tmp_path / "ipn"
    expected = ipn(root)
    cfg = tiny_extract_config(root, tmp_path / "cache", frames=4, val=0.5)
    first = run(cfg)
    stored = _stored(first.key_dir)
    assert first.computed == 3 and set(stored) == set(expected)
    for key, (
        _,
        start,
        end,
        _,
        _,
    ) in expected.items():  # frame_indices index the recording, inside the segment
        assert start <= stored[key].min() and stored[key].max() <= end, key
    assert stored[f"G02/{IPN_A}@5-11"].tolist() == [
        5,
        7,
        9,
        11,
    ]  # centred bins 0 2 4 6 of 7 frames, plus start 5

    # Edit the last line (G01 of the second recording ends one frame later): exactly one sequence changes.
    lines = (root / "Annot_List.txt").read_text().splitlines()
    lines[-1] = lines[-1].replace(",2,5,4", ",2,6,5")
    (root / "Annot_List.txt").write_text("\n".join(lines) + "\n")
    second = run(cfg)
    assert (second.computed, second.reused) == (1, 2)
    assert "G01/4CM2_2_L_#30@1-5" in _stored(second.key_dir)

    run_dir = _train(second.key_dir, tmp_path / "runs")
    capsys.readouterr()
    results = run_predict(
        PredictConfig(checkpoint=run_dir / "best.pt", inputs=(str(root / "frames" / IPN_A),), windows="4:4")
    )
    assert [(r["start"], r["end"]) for r in results] == [(0, 3), (4, 7), (8, 11)]
    timeline = capsys.readouterr().out.splitlines()
    assert timeline[1].split() == ["start", "end", "class", "probability"]
    for line, result in zip(timeline[2:], results, strict=True):
        start, end, name, probability = line.split()
        assert (int(start), int(end), name) == (result["start"], result["end"], result["prediction"])
        assert float(probability) == pytest.approx(result["top"][0]["probability"], abs=1e-4)


def test_hagrid_stills_with_one_frame_extract_train_evaluate_and_predict(tmp_path, capsys, monkeypatch):
    root = tmp_path / "hagrid"
    hagrid(root)
    argv = tiny_extract_argv(root, tmp_path / "cache", frames=1)
    assert pipeline.main(argv) == 0
    key_dir = tmp_path / "cache" / capsys.readouterr().out.strip().splitlines()[-1].rsplit("/", 1)[-1]
    with h5py.File(key_dir / "test.h5", "r") as h5:  # the official split, one frame per sample
        assert [s.decode() for s in h5["sequence_ids"][...]] == ["call/c1"]
        assert h5["embeddings"].shape[1] == 1
        # the corpus's own annotations, stored under their own names beside YOLO's boxes
        assert "hand_boxes" in h5 and h5["annotated_count"][0, 0] == 2
        np.testing.assert_allclose(
            h5["annotated_boxes"][0, 0, :2], [[0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.7, 0.7]]
        )
        assert h5["annotated_landmarks_valid"][0, 0].tolist() == [1, 0, 0, 0]
        np.testing.assert_allclose(h5["annotated_landmarks"][0, 0, 0], np.full((21, 2), [0.15, 0.25]))
    assert verify_cache(key_dir) == []
    with h5py.File(key_dir / "val.h5", "r") as h5:
        assert [s.decode() for s in h5["sequence_ids"][...]] == ["like/b1"]
    import data.sequences

    reads, read_samples = [], data.sequences.read_samples
    monkeypatch.setattr(
        data.sequences, "read_samples", lambda *a, **k: reads.append(1) or read_samples(*a, **k)
    )
    run_dir = _train(key_dir, tmp_path / "runs")
    assert (run_dir / "dino_attention_val.png").exists() and (run_dir / "dino_attention_test.png").exists()
    assert len(reads) == 1  # the figures of both splits drew over one read of the corpus
    report = run_evaluate(EvaluateConfig(checkpoint=run_dir / "best.pt", split="test", device="cpu"))
    assert report["confusion_matrix"] is not None
    [result] = run_predict(
        PredictConfig(
            checkpoint=run_dir / "best.pt", inputs=(str(root / "hagrid_dataset" / "call" / "c1.jpg"),)
        )
    )
    assert result["prediction"] in ("call", "like")
    # A class folder of images, to a model of single images: each image is an input of its own.
    results = run_predict(
        PredictConfig(checkpoint=run_dir / "best.pt", inputs=(str(root / "hagrid_dataset" / "call"),))
    )
    assert [r["id"] for r in results] == ["a1", "a2", "c1"]
    assert [r["input"] for r in results] == [
        str(root / "hagrid_dataset" / "call" / f"{i}.jpg") for i in ("a1", "a2", "c1")
    ]
