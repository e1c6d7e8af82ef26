"""The whole product on the demo set: it learns, predicts, and its reports survive a round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from core.errors import BadInputError
from demo import DemoConfig, run_demo
from train.checkpoint import DIGEST_KEY, load_checkpoint, save_checkpoint
from train.config import EvaluateConfig, PredictConfig, TrainConfig
from train.evaluate import run_evaluate
from train.fit import run_train
from train.predict import run_predict


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    # One run, the full model of the default streams (the demo itself also trains each stream alone).
    return run_demo(DemoConfig(out=tmp_path_factory.mktemp("demo"), workers=1, streams=("all",)))


def _manifest(run_dir: Path) -> dict:
    cache = Path(json.loads((run_dir / "run.json").read_text())["cache"])
    return json.loads((cache / "manifest.json").read_text())


def test_full_model_learns_the_demo_set(demo_run):
    report = json.loads((demo_run / "report.json").read_text())
    assert report["val"]["accuracy"] >= 0.80
    for png in ("curves", "confusion_val", "attention_val", "tsne_val", "dino_attention_val"):
        assert (demo_run / f"{png}.png").stat().st_size > 10_000


def test_evaluate_reproduces_the_training_time_report(demo_run):
    recorded = json.loads((demo_run / "report.json").read_text())["val"]
    again = run_evaluate(EvaluateConfig(checkpoint=demo_run / "best.pt", split="val", device="cpu"))
    assert again["accuracy"] == pytest.approx(recorded["accuracy"])
    assert again["f1_macro"] == pytest.approx(recorded["f1_macro"])
    assert again["confusion_matrix"] == recorded["confusion_matrix"]


def _new_input(run_dir: Path, sequence_id: str, out: Path) -> Path:
    """A frame folder of its own for one demo video: to predict, it is a new input like any other."""
    class_name, video_id = sequence_id.split("/")
    folder = out / f"input-{video_id}"
    folder.mkdir()
    for f in sorted((Path(_manifest(run_dir)["config"]["data"]) / class_name).glob(f"{video_id}_frame_*")):
        (folder / f.name).symlink_to(f)
    return folder


def test_predict_names_the_class_of_a_held_out_video(demo_run):
    for sequence_id in _manifest(demo_run)["splits"]["val"]["sequence_ids"][:3]:
        folder = _new_input(demo_run, sequence_id, demo_run.parent)
        [result] = run_predict(
            PredictConfig(checkpoint=demo_run / "best.pt", inputs=(str(folder),), device="cpu")
        )
        assert result["prediction"] == sequence_id.split("/")[0]


def test_predict_finds_every_input_before_encoding_any(demo_run, tmp_path, capsys):
    """A mistyped input among many fails at once, not after the good ones before it were encoded."""
    folder = _new_input(demo_run, _manifest(demo_run)["splits"]["val"]["sequence_ids"][0], tmp_path)
    capsys.readouterr()
    with pytest.raises(BadInputError, match="nope: does not exist"):
        run_predict(
            PredictConfig(
                checkpoint=demo_run / "best.pt", inputs=(str(folder), str(tmp_path / "nope")), device="cpu"
            )
        )
    assert capsys.readouterr().out == ""  # nothing was classified


def test_predict_warns_when_the_run_reads_annotations_a_new_input_lacks(demo_run, tmp_path, capsys):
    """The demo's hands head tracks the generator's annotated boxes, which a new video does not have: predict
    says its hand track is empty. A run that does not read them predicts without the warning."""
    cache = Path(json.loads((demo_run / "run.json").read_text())["cache"])
    hands = run_train(
        TrainConfig(cache=cache, out=tmp_path, name="hands", streams="hands", epochs=1, device="cpu")
    )
    folder = _new_input(demo_run, _manifest(demo_run)["splits"]["test"]["sequence_ids"][0], tmp_path)
    capsys.readouterr()
    run_predict(PredictConfig(checkpoint=demo_run / "best.pt", inputs=(str(folder),), device="cpu"))
    assert "warning" not in capsys.readouterr().err
    run_predict(PredictConfig(checkpoint=hands / "best.pt", inputs=(str(folder),), device="cpu"))
    err = capsys.readouterr().err
    assert "warning:" in err and "annotated_boxes, annotated_count" in err, err
    # A checkpoint from before manifests recorded the stream options: the same, not a crash.
    ckpt = load_checkpoint(hands / "best.pt")
    del ckpt["cache"]["stream_options"]
    save_checkpoint(tmp_path / "older.pt", {k: v for k, v in ckpt.items() if k not in ("format", DIGEST_KEY)})
    run_predict(PredictConfig(checkpoint=tmp_path / "older.pt", inputs=(str(folder),), device="cpu"))
    assert "annotated_boxes, annotated_count" in capsys.readouterr().err


def test_predict_cli_prints_top_k(demo_run):
    manifest = _manifest(demo_run)
    class_name, video_id = manifest["splits"]["test"]["sequence_ids"][0].split("/")
    folder = Path(manifest["config"]["data"]) / class_name
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "pipeline.py"),
            "predict",
            "--checkpoint",
            str(demo_run / "best.pt"),
            "--top-k",
            "2",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("  1. ") >= 12  # one ranking per video of the class folder


def test_inputs_encoded_several_at_a_time_get_the_features_the_cache_holds_for_them(demo_run):
    """predict encodes a few clips per encoder call on CUDA; whatever the grouping, each clip's features
    are the ones extract stored for that video (within float16 storage rounding)."""
    import h5py
    import numpy as np

    from cache.schema import decode_id
    from extract.single import extract_inputs

    manifest = _manifest(demo_run)
    cache = Path(json.loads((demo_run / "run.json").read_text())["cache"])
    with h5py.File(cache / "val.h5", "r") as f:
        ids = [decode_id(raw) for raw in f["sequence_ids"][:5]]
        stored = {name: f[name][:5] for name in ("embeddings", "dino_cls", "swav")}
    (demo_run.parent / "grouped").mkdir()
    inputs = [_new_input(demo_run, sequence_id, demo_run.parent / "grouped") for sequence_id in ids]
    one = list(extract_inputs(inputs, manifest, "cpu", per_call=1))
    grouped = list(extract_inputs(inputs, manifest, "cpu", per_call=3))  # a group of 3, then of 2
    assert (
        [item["video_id"] for item in grouped]
        == [item["video_id"] for item in one]
        == [i.split("/")[1] for i in ids]
    )
    for name, rows in stored.items():
        for row, a, b in zip(rows, one, grouped, strict=True):
            np.testing.assert_allclose(b[name], row.astype(np.float32), rtol=2e-3, atol=2e-3)
            np.testing.assert_allclose(b[name], a[name], rtol=2e-3, atol=2e-3)
