"""The extraction benchmark runs end to end on tiny encoders and writes the JSON the README table reads.

Checks shape and meaning of the result, never a speed: timings on a shared machine prove nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

from bench.report import END, START, render, rewrite


def test_extract_bench_writes_the_documented_schema(tmp_path):
    out = tmp_path / "extract-tiny-cpu.json"
    cmd = [sys.executable, str(ROOT / "bench" / "extract.py"), "--preset", "tiny", "--frames", "8"]
    cmd += ["--seq-len", "8", "--naive-frames", "2", "--workers", "0", "--out", str(out)]
    subprocess.run(cmd, check=True, timeout=300, capture_output=True, cwd=tmp_path)
    r = json.loads(out.read_text())
    for key in ("preset", "device", "machine", "frames", "frames_per_s", "gflop_per_frame"):
        assert key in r
    for key in ("peak_gflop_per_s", "mfu", "stages_s"):
        assert key in r
    assert r["preset"] == "tiny" and r["device"] == "cpu" and r["frames"] == 8
    assert {"cpu", "cores", "gpu", "torch"} <= r["machine"].keys()
    assert all(r["frames_per_s"][mode] > 0 for mode in ("naive", "pipeline", "compute_bound"))
    # Every stage the issue asks for, from the pipeline run itself.
    for stage in ("decode", "augment", "hands", "vit", "cnn", "dino", "swav", "write"):
        assert r["stages_s"][stage] >= 0
    # The attention FLOPs that fused SDPA hides are counted: eager and fused paths agree.
    for check in r["attention_flop_check"].values():
        assert check["with_sdpa_formula"] == check["eager_attention"] > check["stock_counter"]
    by_role = sum(r["gflop_per_frame_by_role"].values())
    assert abs(by_role - r["gflop_per_frame"]) < 1e-6 * r["gflop_per_frame"]
    fps, peak = r["frames_per_s"]["pipeline"], r["peak_gflop_per_s"]
    assert abs(r["mfu"] - fps * r["gflop_per_frame"] / peak) < 1e-9


def test_report_rewrites_only_the_marked_block():
    readme = f"intro\n{START}\nold table\n{END}\noutro\n"
    new = rewrite(readme, "new table")
    assert new == f"intro\n{START}\nnew table\n{END}\noutro\n"
    assert rewrite(new, "new table") == new  # idempotent
    assert isinstance(render(), str)
