"""Several runs in one command under torchrun (train --folds, sweep), and the folds a cache allows.

Each run of a sweep or of folds once set up and tore down its own process group, with no rank waiting
for the others: ranks met in different runs' collectives and hung, or one rank summarised folds whose
reports rank 0 had not yet written. The launches are real 2-rank CPU (gloo) torchrun subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch.distributed as dist
from conftest import ROOT
from train_fixtures import write_synthetic_cache

import pipeline

LAUNCH_TIMEOUT_S = 240  # a hang is what this guards against: fail, don't wait forever
TINY = ["--epochs", "2", "--batch-size", "4", "--hidden", "8", "--device", "cpu", "--streams", "twelve"]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [*cmd, str(ROOT / "pipeline.py"), *args],
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT_S,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_torchrun_folds_and_sweep_finish_every_run(tmp_path):
    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 12, "val": 6, "test": 3}, frames=4)
    out = tmp_path / "runs"

    folds = _torchrun(
        "train", "--cache", str(cache), "--out", str(out), "--name", "cv", "--folds", "3", *TINY
    )
    summary = json.loads((out / "cv" / "summary.json").read_text())
    assert [f["run"] for f in summary["folds"]] == ["fold-0", "fold-1", "fold-2"]
    for i in range(3):
        run = json.loads((out / "cv" / f"fold-{i}" / "run.json").read_text())
        assert run["world_size"] == 2 and (out / "cv" / f"fold-{i}" / "report.json").is_file()
    assert folds.stdout.count("3 folds over train+val") == 1  # rank 0 alone summarises

    sweep = _torchrun(
        "sweep", "--cache", str(cache), "--out", str(out), "--name", "sw", "--grid", "seed=0,1,2", *TINY
    )
    for seed in range(3):
        run_dir = out / "sw" / f"seed={seed}"
        assert json.loads((run_dir / "run.json").read_text())["world_size"] == 2
        assert (run_dir / "report.json").is_file()
    assert "resuming" not in sweep.stdout


def test_more_folds_than_a_class_spans_is_one_line_naming_the_most_it_allows(tmp_path, capsys):
    # 3 classes, each in 3 videos of train+val: 9 videos in all, but no class can fill a 4th fold.
    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 6, "val": 3, "test": 3}, frames=4)
    base = ["train", "--cache", str(cache), "--out", str(tmp_path / "runs"), "--device", "cpu"]
    for folds, words in (("4", "spans only 3 of them"), ("10", "more than the 9 videos")):
        code = pipeline.main([*base, "--folds", folds])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert words in err and "use --folds 3 or fewer" in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("run.json"))
