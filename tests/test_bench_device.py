"""bench/device.sh dry-runs on CPU with the tiny preset, so it is known to work the first time a GPU is there.

Checks what the run leaves behind (every step's file, the summary's targets, the README rows), never a speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from bench.device import END, START


# Six Python processes, each importing torch, timm and ultralytics, one compiling five networks: minutes on
# the shared 2-core box, over the suite's ~40 s budget for one test, hence slow (run it with -m slow before
# a GPU run).
@pytest.mark.slow
def test_device_bench_dry_run_writes_every_step_the_summary_and_the_readme_rows(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{START}\nold rows\n{END}\n\ntail\n")
    out = tmp_path / "results"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "BENCH_OUT": str(out),
        "BENCH_README": str(readme),
        "COMPILE": "1",  # the opt-in --compile step too (about a minute of compiling on CPU)
    }
    run = subprocess.run(
        ["bash", "bench/device.sh", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    peak = json.loads((out / "device-peak-cpu.json").read_text())
    assert "CUDA" in peak["skipped"]  # the cuda-only step says why it did not run
    encoders = json.loads((out / "encoders-tiny-cpu.json").read_text())["encoders"]
    assert set(encoders) == {"hands", "vit", "cnn", "dino", "swav"}
    for r in encoders.values():
        assert r["best"] == max(r["images_per_s"].values()) > 0
    summary = json.loads((out / "device-tiny-cpu.json").read_text())
    assert set(summary["frames_per_s"]) == {"naive", "pipeline", "compute_bound"}
    assert summary["targets"]["pipeline_over_naive"]["value"] > 0
    assert summary["targets"]["mfu_bf16"]["value"] is None  # no bf16 peak on CPU: no MFU made up
    hands = summary["hands_every"]  # K=1, K=4 and hands=none, each timed without the encoder build
    assert set(hands["runs"]) == {"every_1", "every_4", "hands_none"}
    assert all(r["frames"] == 4 and r["frames_per_s"] > 0 for r in hands["runs"].values())
    assert hands["speedup_4_over_1"] > 0 and hands["speedup_none_over_1"] > 0
    profile = summary["profile"]  # the profiler splits the encoders' batch up by role, named ranges
    assert {"hands", "vit", "cnn", "dino", "swav"} <= set(profile["stages"]) and profile["frames"] == 4
    assert all(r["host_ms_per_frame"] > 0 for r in profile["stages"].values())
    nms = summary["nms"]  # both box selections on frames with hands, which random weights never give
    assert nms["same_boxes"] is True and nms["batch"] == 8
    assert "| hand boxes from YOLO's outputs, 8 frames with hands:" in readme.read_text()
    compiled = summary["compiled"]  # each encoder alone through the product's compile_backbone
    assert set(compiled) == {"hands", "vit", "cnn", "dino", "swav"}
    assert all(r["compile_s"] > 0 and r["compiled_images_per_s"] > 0 for r in compiled.values())
    decode = summary["decode"]  # torchcodec against PyAV, where torchcodec is installed; else why not
    assert decode["recording"]["size"] == [128, 96] and decode["pyav_auto_threads_s"] > 0
    assert "skipped" in decode["torchcodec"] or decode["torchcodec"]["mean_abs_diff"] < 2
    text = readme.read_text()
    assert "old rows" not in text and text.endswith(f"{END}\n\ntail\n")
    (row,) = [r for r in text.splitlines() if r.startswith("| cuDNN algorithm search over its heuristics")]
    assert "hands – " in row or "hands –," in row  # a CUDA-only ratio: none made up on CPU
    assert "| pipeline / naive |" in text and "| MFU against the bf16 peak | – |" in text
    assert "| `--encoders hands=none` over `--hands-every 1`, frames/s |" in text
    assert "| torchcodec " in text and "| encoders on pipeline batches, profiled (4 frames)" in text
    (row,) = [r for r in text.splitlines() if r.startswith("| `--compile` over eager, encoders alone at ")]
    assert all(f"{role} " in row for role in ("hands", "vit", "cnn", "dino", "swav")), row
