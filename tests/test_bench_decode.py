"""The decode benchmark runs end to end on a short recording and writes the JSON the README quotes.

Checks the meaning of the result (frames decoded, same frames as a decode from the start), never a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_decode_bench_stays_within_span_plus_one_gop_per_segment(tmp_path):
    out = tmp_path / "decode.json"
    cmd = [sys.executable, "-m", "bench.decode", "--frames", "240", "--segments", "4"]
    cmd += ["--gop", "12", "--size", "64x48", "--rounds", "1", "--out", str(out)]
    subprocess.run(cmd, check=True, timeout=300, capture_output=True, cwd=ROOT)  # as the README runs it
    r = json.loads(out.read_text())
    assert r["product_within_budget"] and r["budget_frames"] == r["segments_span_frames"] + 4 * 12
    for runs in r["runs_by_thread_type"].values():
        assert all(run["same_frames_as_from_start"] for run in runs.values())
        product, from_start = runs["product"], runs["from_start_per_segment"]
        assert product["opens"] == 1 and from_start["opens"] == 4
        assert product["decoded_frames"] < runs["from_start_one_pass"]["decoded_frames"]
