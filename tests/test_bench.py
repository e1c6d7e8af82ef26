"""The extraction benchmark runs end to end on tiny encoders and writes the JSON the README table reads.

Checks shape and meaning of the result, never a speed: timings on a shared machine prove nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import bench.report
from bench.machine import mfu
from bench.report import END, START, render, rewrite


def test_extract_bench_writes_the_documented_schema(tmp_path):
    out = tmp_path / "extract-tiny-cpu.json"
    cmd = [sys.executable, "-m", "bench.extract", "--preset", "tiny", "--frames", "8"]
    cmd += ["--seq-len", "8", "--naive-frames", "2", "--workers", "0", "--out", str(out)]
    subprocess.run(cmd, check=True, timeout=300, capture_output=True, cwd=ROOT)  # as the README runs it
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
    assert r["mfu"] > 0 and r["targets"]["mfu"]["value"] == r["mfu"]  # the target judges the MFU shown


def test_mfu_is_achieved_model_flops_over_the_peak():
    # 10 frames/s of a 2-GFLOP model is 20 GFLOP/s: half of a 40 GFLOP/s peak.
    assert mfu(10.0, 2.0, 40.0) == pytest.approx(0.5)
    assert mfu(1.0, 300.0, 200.0) == pytest.approx(1.5)  # a peak sampled low is not clipped away


def test_report_rewrites_only_the_marked_block():
    readme = f"intro\n{START}\nold table\n{END}\noutro\n"
    new = rewrite(readme, "new table")
    assert new == f"intro\n{START}\nnew table\n{END}\noutro\n"
    assert rewrite(new, "new table") == new  # idempotent


def _known_results(tmp_path: Path) -> Path:
    """The committed result files with known figures written over the ones the table shows."""
    src, out = ROOT / "bench" / "results", tmp_path / "results"
    out.mkdir()
    for name in ("extract-full-cpu.json", "extract-tiny-cpu.json", "train-cpu.json", "sweep-full-cpu.json"):
        (out / name).write_text((src / name).read_text())
    full = json.loads((out / "extract-full-cpu.json").read_text())
    full.update(frames=64, frames_naive=8, gflop_per_frame=300.0, peak_gflop_per_s=200.0, mfu=0.75)
    full["frames_per_s"] = {"naive": 0.25, "pipeline": 0.5, "compute_bound": 0.625}
    full["ratios"] = {"pipeline_over_naive": 2.0, "pipeline_over_compute_bound": 0.8, "mfu": 0.75}
    full["targets"] = {
        "pipeline_over_compute_bound": {"value": 0.8, "target": 0.9, "holds": False},
        "pipeline_over_naive": {"value": 2.0, "target": 1.5, "holds": True},
        "mfu": {"value": 0.75, "target": 0.65, "holds": True},
    }
    tiny = json.loads((out / "extract-tiny-cpu.json").read_text())
    tiny["targets"] = {"mfu": {"value": 0.01, "target": 0.65, "holds": False}}  # tiny is no speed claim
    train = json.loads((out / "train-cpu.json").read_text())
    train["targets"] = {
        "cache_over_memory_epoch": {"value": 1.05, "target": 1.1, "holds": True},
        "bytes_over_raw_float32": {"value": 0.5, "target": 0.45, "holds": False},
    }
    for name, r in (("extract-full-cpu", full), ("extract-tiny-cpu", tiny), ("train-cpu", train)):
        (out / f"{name}.json").write_text(json.dumps(r))
    return out


def _rows(table: str, header_start: str) -> list[str]:
    """The data rows of the markdown table whose header row starts with ``header_start``."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_render_shows_the_figures_and_verdicts_of_the_results(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.report, "RESULTS", _known_results(tmp_path))
    table = render()
    extraction = _rows(table, "| preset | frames | naive |")
    assert [row.split("|")[1].strip() for row in extraction] == ["full (random)", "tiny (random)"]
    cells = [c.strip() for c in extraction[0].split("|")[2:11]]
    assert cells == ["64 (8 naive)", "0.250", "0.500", "0.625", "2.00×", "0.80×", "300.0", "200", "75%"]
    # The naive loop's share of the peak, and the ceiling it leaves: 0.25 x 300 / 200 = 37.5%.
    assert "The naive loop already runs at 38% of the matmul peak" in table
    assert "by more than 2.67×" in table
    assert _rows(table, "| target | measured | holds |") == [
        "| pipeline over compute bound ≥ 0.9 | 0.800 | no |",
        "| pipeline over naive ≥ 1.5 | 2.000 | yes |",
        "| mfu ≥ 0.65 | 0.750 | yes |",
        "| cache over memory epoch ≤ 1.1 | 1.050 | yes |",
        "| bytes over raw float32 ≤ 0.45 | 0.500 | no |",
    ]
    assert "python -m bench.extract --preset full" in table  # the commands that regenerate it


def test_a_gpu_run_stays_out_of_the_cpu_table_and_its_machine_line(tmp_path, monkeypatch):
    results = _known_results(tmp_path)
    gpu = json.loads((results / "extract-full-cpu.json").read_text())
    gpu.update(device="cuda", frames=3712, machine={**gpu["machine"], "gpu": "Example GPU 9000"})
    (results / "extract-full-cuda.json").write_text(json.dumps(gpu))
    monkeypatch.setattr(bench.report, "RESULTS", results)
    table = render()
    extraction = _rows(table, "| preset | frames | naive |")
    assert len(extraction) == 2 and not any("3712" in row for row in extraction)
    assert "Example GPU 9000" not in table  # the device block (bench/device.py) shows it, with its card


def test_render_without_results_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.report, "RESULTS", tmp_path)
    assert render() == "_Run the benchmarks (`bench/`) to fill this table._"
