"""The whole product on the demo set: it learns, predicts, and its reports survive a round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from demo import DemoConfig, run_demo
from train.config import EvaluateConfig, PredictConfig
from train.evaluate import run_evaluate
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


def test_predict_names_the_class_of_a_held_out_video(demo_run):
    manifest = _manifest(demo_run)
    data_root = Path(manifest["config"]["data"])
    val_ids = manifest["splits"]["val"]["sequence_ids"]
    for sequence_id in val_ids[:3]:
        class_name, video_id = sequence_id.split("/")
        frames = sorted((data_root / class_name).glob(f"{video_id}_frame_*"))
        folder = demo_run.parent / f"input-{video_id}"
        folder.mkdir()
        for f in frames:
            (folder / f.name).symlink_to(f)
        [result] = run_predict(
            PredictConfig(checkpoint=demo_run / "best.pt", inputs=(str(folder),), device="cpu")
        )
        assert result["prediction"] == class_name


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
