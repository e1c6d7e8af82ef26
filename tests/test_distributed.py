"""torchrun on CPU (gloo): 2-rank extraction and DDP training give what one process gives.

The launches are real ``python -m torch.distributed.run --standalone`` subprocesses running
``pipeline.py``, so the CLI path, rank 0's lock and assembly, and torchrun's teardown of a job
whose rank was killed are all exercised.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.distributed as dist
from conftest import ROOT, tiny_extract_argv, tiny_extract_config

from cache.verify import verify_cache
from extract.distributed import deal
from extract.run import run
from train.checkpoint import load_checkpoint
from train.config import EvaluateConfig
from train.distributed import StridedSampler, _unstride
from train.evaluate import run_evaluate

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")

LAUNCH_TIMEOUT_S = 240
_SHARD_PID = re.compile(r"^shard-\d+-.+-(?P<pid>\d+)-\d+\.h5$")


def _env() -> dict[str, str]:
    # One thread per rank: the CI box has two shared cores and each test starts two ranks.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _torchrun(nproc: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(ROOT / "pipeline.py"),
        *args,
    ]


def _extract_args(data: Path, cache: Path) -> list[str]:
    # The same settings as tiny_extract_config(..., batch_size=1); one sequence per encoder batch
    # keeps every sequence's numbers independent of which rank computed it alongside what.
    return tiny_extract_argv(data, cache, shard_size=4, batch_size=1)


def _launch(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _last_line(stdout: str) -> str:
    lines = stdout.strip().splitlines()
    return lines[-1] if lines else ""


def _assert_same_arrays(a_dir: Path, b_dir: Path) -> None:
    for split in ("train", "val", "test"):
        with h5py.File(a_dir / f"{split}.h5") as a, h5py.File(b_dir / f"{split}.h5") as b:
            assert set(a) == set(b)
            for name in a:
                np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=f"{split}/{name}")


def _shard_pids(key_dir: Path) -> set[int]:
    return {int(m["pid"]) for p in (key_dir / "shards").glob("*.h5") if (m := _SHARD_PID.match(p.name))}


@pytest.fixture(scope="module")
def extracted(small_demo, tmp_path_factory):
    """A single-process reference cache and a 2-rank torchrun cache of the same demo data."""
    root = tmp_path_factory.mktemp("distributed")
    reference = run(tiny_extract_config(small_demo, root / "ref", batch_size=1))
    proc = _launch(_torchrun(2, *_extract_args(small_demo, root / "ddp")))
    return types.SimpleNamespace(root=root, data=small_demo, reference=reference, proc=proc)


def test_two_rank_extraction_equals_one_process(extracted):
    key_dir = Path(_last_line(extracted.proc.stdout))
    assert key_dir == extracted.root / "ddp" / extracted.reference.key_dir.name
    assert extracted.proc.stdout.count(str(key_dir)) == 1  # rank 0 alone prints it
    assert "extracting 18 of 18 sequences" in extracted.proc.stderr
    assert "on 2 ranks (9, 9 each)" in extracted.proc.stderr
    assert "2 ranks computed 18 sequences" in extracted.proc.stderr
    assert len(_shard_pids(key_dir)) == 2  # both ranks wrote shards
    assert verify_cache(key_dir) == []
    _assert_same_arrays(extracted.reference.key_dir, key_dir)


def test_killed_rank_then_rerun_with_one_process_completes_identically(extracted):
    cache = extracted.root / "killed"
    proc = subprocess.Popen(
        _torchrun(2, *_extract_args(extracted.data, cache)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
        cwd=ROOT,
    )
    victim = None
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    try:
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            pids = {int(m["pid"]) for p in cache.glob("*/shards/*.h5") if (m := _SHARD_PID.match(p.name))}
            if pids:
                victim = min(pids)
                os.kill(victim, signal.SIGKILL)  # one rank, right after its first finished shard
            time.sleep(0.005)
        proc.wait(timeout=LAUNCH_TIMEOUT_S)  # torchrun tears the surviving rank down
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert victim is not None, "the job finished before a rank could be killed"
    assert proc.returncode != 0
    [key_dir] = list(cache.iterdir())
    manifest = key_dir / "manifest.json"
    assert not manifest.exists() or '"complete": true' not in manifest.read_text()
    assert victim in _shard_pids(key_dir)  # the killed rank's finished shard survives

    rerun = _launch(_torchrun(1, *_extract_args(extracted.data, cache)))
    assert Path(_last_line(rerun.stdout)) == key_dir
    m = re.search(r"extracting (\d+) of 18 sequences", rerun.stderr)
    assert m and int(m[1]) <= 18 - 4  # at least the killed rank's shard was reused
    assert verify_cache(key_dir) == []
    _assert_same_arrays(extracted.reference.key_dir, key_dir)


def test_ddp_training_writes_one_run_that_evaluate_loads(extracted, tmp_path):
    cache = Path(_last_line(extracted.proc.stdout))
    out = tmp_path / "runs"
    args = ["train", "--cache", str(cache), "--out", str(out), "--epochs", "2", "--batch-size", "4"]
    proc = _launch(_torchrun(2, *args, "--hidden", "16", "--device", "cpu", "--seed", "0"))
    [run_dir] = list(out.iterdir())
    assert Path(_last_line(proc.stdout)) == run_dir
    assert proc.stdout.count(str(run_dir)) == 1  # rank 0 alone prints it
    names = {p.name for p in run_dir.iterdir()}
    assert {"best.pt", "last.pt", "metrics.csv", "config.yaml", "report.json", "run.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert len((run_dir / "metrics.csv").read_text().strip().splitlines()) == 1 + 2  # header + epochs
    assert '"world_size": 2' in (run_dir / "run.json").read_text()

    # Validation during DDP training pools both ranks' shares without padding, so the metrics stored
    # in last.pt are what one process measures on the whole val split with those weights.
    ckpt = load_checkpoint(run_dir / "last.pt")
    report = run_evaluate(
        EvaluateConfig(checkpoint=run_dir / "last.pt", split="val", device="cpu", out=tmp_path / "eval")
    )
    with h5py.File(cache / "val.h5") as h5:
        assert report["num_sequences"] == len(h5["labels"]) > 0
    assert report["accuracy"] == pytest.approx(ckpt["val_metrics"]["acc"], abs=1e-9)
    assert report["loss"] == pytest.approx(ckpt["val_metrics"]["loss"], rel=1e-5)


def test_deal_is_balanced_disjoint_and_independent_of_order():
    rng = np.random.default_rng(0)
    items = [types.SimpleNamespace(content_id=f"{rng.integers(2**63):064x}") for _ in range(23)]
    shares = deal(items, 3)
    assert sorted(len(s) for s in shares) == [7, 8, 8]
    ids = [it.content_id for s in shares for it in s]
    assert sorted(ids) == sorted(it.content_id for it in items)  # every item exactly once
    shuffled = [items[i] for i in rng.permutation(len(items))]
    assert [[it.content_id for it in s] for s in deal(shuffled, 3)] == [
        [it.content_id for it in s] for s in shares
    ]


@pytest.mark.parametrize("length", [0, 1, 6, 7])
def test_strided_eval_shares_cover_the_split_once_and_merge_back_in_order(length):
    world = 2
    shares = [list(StridedSampler(length, r, world)) for r in range(world)]
    assert sorted(i for s in shares for i in s) == list(range(length))  # no padding, no repeats
    parts = [torch.arange(length)[s].numpy()[:, None] * np.ones((1, 3)) for s in shares]
    merged = _unstride(parts)
    np.testing.assert_array_equal(merged[:, 0], np.arange(length))
