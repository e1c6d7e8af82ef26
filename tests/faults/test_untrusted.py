"""Files this toolkit did not make are not trusted: pickles that run code, HDF5 files whose data lives
elsewhere, and a torch too old to keep weights_only safe."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cache.verify import verify_cache
from extract.run import run
from faults.harness import (
    ROOT,
    assert_same_arrays,
    assert_user_error_line,
    copy_cache,
    extract_config,
    pipeline_cmd,
    shard_contents,
    split_arrays,
)


class _RunsCode:
    """Unpickling this runs a shell command: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, marker: Path, form: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": "gesture-heads/1", "state_dict": {}, "hook": _RunsCode(marker)}
    if form == "zip":
        torch.save(payload, path)  # today's torch.save format
    else:
        path.write_bytes(pickle.dumps(payload))  # a bare pickle: torch.load's legacy path


@pytest.mark.parametrize("form", ["zip", "legacy-pickle"])
def test_a_checkpoint_that_would_run_code_is_refused(form, zygote, tmp_path, reliability):
    evil = tmp_path / "run" / "best.pt"
    marker = tmp_path / "pwned"
    _plant(evil, marker, form)
    # The payload is live: loading it without weights_only runs the command.
    probe = tmp_path / "probe-marker"
    _plant(tmp_path / "probe.pt", probe, form)
    if form == "zip":
        torch.load(tmp_path / "probe.pt", weights_only=False)
    else:
        pickle.loads((tmp_path / "probe.pt").read_bytes())
    assert probe.exists()

    results = {}
    for command in (["evaluate", "--checkpoint", str(evil)], ["predict", "--checkpoint", str(evil), "x.mp4"]):
        out = zygote.run(command, log=tmp_path / f"{command[0]}.log")
        assert out.status == 2, out.log[-3000:]
        results[command[0]] = assert_user_error_line(out.log, str(evil), "weights_only")
        assert not marker.exists(), f"{command[0]} ran code from the checkpoint"
    if form == "zip":  # and once through a real interpreter start
        proc = subprocess.run(
            pipeline_cmd("evaluate", "--checkpoint", str(evil)), capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 2 and not marker.exists()
        assert_user_error_line(proc.stderr, str(evil))
    reliability.record(
        "untrusted files",
        f"a best.pt whose pickle runs a shell command ({form})",
        2 + (form == "zip"),
        ["`evaluate` and `predict` exit 2 naming the file", "the command never ran (weights_only=True)"],
        message=results["evaluate"].removeprefix("error: "),
    )


def _outside_file(tmp_path: Path, shape, dtype) -> Path:
    path = tmp_path / "outside.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", data=np.full(shape, 7, dtype))
    return path


def _external_link(h5: h5py.File, outside: Path) -> None:
    h5["extra"] = h5py.ExternalLink(str(outside), "/data")


def _external_storage(h5: h5py.File, outside: Path) -> None:
    ds = h5["embeddings"]
    shape, dtype = ds.shape, ds.dtype
    del h5["embeddings"]
    raw = outside.with_suffix(".raw")
    raw.write_bytes(np.zeros(shape, dtype).tobytes())
    h5.create_dataset("embeddings", shape=shape, dtype=dtype, external=[(str(raw), 0, h5py.h5f.UNLIMITED)])


def _virtual_dataset(h5: h5py.File, outside: Path) -> None:
    ds = h5["embeddings"]
    shape, dtype = ds.shape, ds.dtype
    del h5["embeddings"]
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
    layout[...] = h5py.VirtualSource(str(outside.with_name("gone.h5")), "data", shape=shape)
    h5.create_virtual_dataset("embeddings", layout, fillvalue=0)


FOREIGN = {
    "external link": (_external_link, "external link to"),
    "external raw storage": (_external_storage, "external raw storage in"),
    "virtual dataset": (_virtual_dataset, "virtual dataset"),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_hdf5_data_that_lives_outside_the_cache_is_refused(kind, zygote, reference, tmp_path, reliability):
    key_dir = copy_cache(reference.key_dir, tmp_path / "cache")
    plant, words = FOREIGN[kind]
    with h5py.File(key_dir / "train.h5", "r", locking=False) as h5:
        shape, dtype = h5["embeddings"].shape, h5["embeddings"].dtype
    outside = _outside_file(tmp_path, shape, dtype)
    with h5py.File(key_dir / "train.h5", "r+") as h5:
        plant(h5, outside)
    if kind == "virtual dataset":  # trusted, it would read as features: all fill values, no error
        with h5py.File(key_dir / "train.h5", "r") as h5:
            assert not h5["embeddings"][0].any()
    out = zygote.run(["cache", "verify", str(key_dir)], log=tmp_path / "verify.log")
    assert out.status == 2 and re.search(rf"FAULT train\.h5: \S+: {words}", out.log), out.log
    trained = zygote.run(
        ["train", "--cache", str(key_dir), "--out", str(tmp_path / "runs"), "--epochs", "1"],
        log=tmp_path / "train.log",
    )
    assert trained.status == 2, trained.log[-3000:]
    line = assert_user_error_line(trained.log, "train.h5", words, "caches must hold all their data")
    assert not list((tmp_path / "runs").rglob("best.pt"))
    reliability.record(
        "untrusted files",
        f"split file holding an HDF5 {kind} to a file outside the cache",
        1,
        ["`cache verify` exits 2 naming file and dataset", "`train` refuses before reading a value"],
        message=line.removeprefix("error: "),
    )


def test_a_shard_whose_data_lives_elsewhere_is_recomputed(reference, tmp_path, fast_encoders, reliability):
    key_dir = copy_cache(reference.key_dir, tmp_path / "cache")
    shards = shard_contents(key_dir)
    victim = key_dir / "shards" / sorted(shards)[0]
    with h5py.File(victim, "r+") as h5:
        shape, dtype = h5["embeddings"].shape, h5["embeddings"].dtype
        _virtual_dataset(h5, _outside_file(tmp_path, shape, dtype))
    for name in ("train.h5", "val.h5", "test.h5", "manifest.json"):  # force a re-assembly
        (key_dir / name).unlink()
    with pytest.warns(UserWarning, match="virtual dataset"):
        result = run(extract_config(reference.data, key_dir.parent))
    assert result.computed == len(shards[victim.name])
    assert verify_cache(key_dir) == []
    assert_same_arrays(reference.arrays, split_arrays(key_dir))
    reliability.record(
        "untrusted files",
        "a shard whose embeddings are a virtual dataset pointing outside the cache",
        1,
        [
            "the shard is not used: its sequences are recomputed",
            "split files byte-identical to the reference",
        ],
    )


def test_the_torch_floor_excludes_releases_with_weights_only_bypasses(reliability):
    from packaging.requirements import Requirement
    from packaging.version import Version

    lines = (ROOT / "requirements.txt").read_text().splitlines()
    [torch_req] = [Requirement(ln) for ln in lines if re.match(r"^torch\b(?!vision)", ln.strip())]
    allowed = torch_req.specifier
    # CVE-2025-32434: weights_only=True bypass before 2.6. CVE-2026-24747: another before 2.10.
    for vulnerable in ("2.5.1", "2.6.0", "2.9.1", "2.10.0a0"):
        assert not allowed.contains(vulnerable, prereleases=True), f"{torch_req} admits torch {vulnerable}"
    assert allowed.contains("2.10.0")
    installed = Version(torch.__version__.split("+")[0])
    assert installed >= Version("2.10"), f"installed torch {installed} is below the safe floor"
    reliability.record(
        "untrusted files",
        "requirements.txt torch floor vs CVE-2025-32434 (<2.6) and CVE-2026-24747 (<2.10)",
        1,
        [f"`{torch_req}` admits no vulnerable release", f"installed torch {torch.__version__} is above it"],
    )
