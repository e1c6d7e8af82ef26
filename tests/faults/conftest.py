"""Fixtures of the fault-injection suite: one warm process forker, one reference extraction, and the
recorder whose rows become RELIABILITY.md (``REPORT_RELIABILITY=1 pytest tests/faults``)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from faults.harness import ROOT, Zygote, content_ids_of, extract_argv, split_arrays

RESULTS_JSON = ROOT / "artifacts" / "reliability" / "results.json"
REPORT_MD = ROOT / "RELIABILITY.md"


@dataclass
class Recorder:
    """Rows of (fault, trials, what held), added by a test only after all its assertions passed."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    started: float = field(default_factory=time.time)

    def record(self, area: str, fault: str, trials: int, held: list[str], **details: Any) -> None:
        self.rows.append({"area": area, "fault": fault, "trials": trials, "held": held, "details": details})


_RECORDER = Recorder()


@pytest.fixture(scope="session")
def reliability() -> Recorder:
    return _RECORDER


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "faults/" not in report.nodeid.replace(os.sep, "/"):
        return
    _RECORDER.seconds += report.duration
    if report.when == "call" or report.outcome != "passed":
        _RECORDER.outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    mode = os.environ.get("REPORT_RELIABILITY")
    if mode not in ("1", "add") or not _RECORDER.outcomes:
        return
    from faults.report import add_rows, fuzz_section, render

    old = REPORT_MD.read_text() if REPORT_MD.exists() else ""
    if mode == "add":  # a partial run: only its rows change
        REPORT_MD.write_text(add_rows(old, _RECORDER.rows))
        print(f"\nadded {len(_RECORDER.rows)} row(s) to {REPORT_MD}", file=sys.stderr)
        return
    import h5py
    import torch

    results = {
        "rows": _RECORDER.rows,
        "outcomes": _RECORDER.outcomes,
        "suite_seconds": round(_RECORDER.seconds, 1),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "uid": os.geteuid(),
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(results, indent=1))
    REPORT_MD.write_text(render(results, fuzz_section(old)))
    print(f"\nwrote {REPORT_MD} from {RESULTS_JSON}", file=sys.stderr)


@pytest.fixture(scope="session")
def zygote(tmp_path_factory) -> Zygote:
    """One warm interpreter for the whole suite; every forked run is a fresh process with its own pid."""
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


@dataclass
class Reference:
    """An uninterrupted CLI extraction of the small demo set: what every faulted run must end up equal to."""

    data: Path
    key_dir: Path
    arrays: dict[str, dict[str, Any]]
    content_ids: list[str]
    seconds: float

    @property
    def key(self) -> str:
        return self.key_dir.name


@pytest.fixture(scope="session")
def reference(zygote: Zygote, small_demo: Path, tmp_path_factory) -> Reference:
    root = tmp_path_factory.mktemp("reference")
    out = zygote.run(extract_argv(small_demo, root / "cache"), log=root / "extract.log")
    assert out.status == 0, out.log[-3000:]
    key_dir = Path(out.log.strip().splitlines()[-1])
    arrays = split_arrays(key_dir)
    return Reference(small_demo, key_dir, arrays, content_ids_of(arrays), out.elapsed)


@pytest.fixture(scope="session")
def _encoder_memo():
    import extract.run

    built: dict[tuple, Any] = {}
    real = extract.run.build_encoders

    def build(cfg):
        key = (cfg.preset, cfg.weights, cfg.weights_seed)
        if key not in built:
            built[key] = real(cfg)
        return built[key]

    return build


@pytest.fixture
def fast_encoders(monkeypatch, _encoder_memo) -> None:
    """In-process ``extract.run.run`` builds the tiny encoders once per session instead of once per call.

    Frozen, seeded and stateless, so a reused encoder computes what a fresh one does; the determinism
    test checks exactly that against a fresh CLI process.
    """
    import extract.run

    monkeypatch.setattr(extract.run, "build_encoders", _encoder_memo)


@dataclass
class TrainedRun:
    """A synthetic cache and a run trained on it (2 epochs): the checkpoint side of the faults."""

    cache: Path
    run_dir: Path

    @property
    def best(self) -> Path:
        return self.run_dir / "best.pt"


@pytest.fixture(scope="session")
def trained(zygote: Zygote, tmp_path_factory) -> TrainedRun:
    from train_fixtures import write_synthetic_cache

    root = tmp_path_factory.mktemp("trained")
    cache = write_synthetic_cache(root / "cache")
    argv = ["train", "--cache", str(cache), "--out", str(root / "runs"), "--name", "r", "--epochs", "2"]
    out = zygote.run([*argv, "--hidden", "32"], log=root / "train.log")
    assert out.status == 0, out.log[-3000:]
    return TrainedRun(cache, root / "runs" / "r")
