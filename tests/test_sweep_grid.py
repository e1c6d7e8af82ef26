"""`sweep` grids as the user writes them: key order, value spellings and repeats.

A grid is a set of runs, so the same grid written another way must find the runs it already trained
(resume, train nothing), and a grid that names one run twice is refused before any training.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_experiments import TINY, _trainings, one_thread_no_figures  # noqa: F401 (autouse fixture)
from train_fixtures import write_synthetic_cache

import pipeline

FLAGS = [x for k, v in TINY.items() for x in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grid-cache")
    return write_synthetic_cache(root, counts={"train": 8, "val": 4, "test": 0}, frames=4)


def _sweep(cache: Path, out: Path, grid: str, capsys, *extra: str) -> tuple[int, str, str]:
    code = pipeline.main(["sweep", "--cache", str(cache), "--out", str(out), "--grid", grid, *FLAGS, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def _finished(sweep_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in sweep_dir.glob("*/run.json"))


def test_the_same_grid_with_keys_reordered_and_values_respelled_resumes_its_runs(
    cache, tmp_path, monkeypatch, capsys
):
    """Reordering keys or writing 1e-2 as 0.01 is the same grid: its folder, its runs, nothing retrained."""
    calls = _trainings(monkeypatch)
    assert _sweep(cache, tmp_path, "seed=0,1 lr=1e-2", capsys)[0] == 0
    assert len(calls) == 2
    (sweep_dir,) = tmp_path.glob("sweep-*")
    first = _finished(sweep_dir)

    code, out, _ = _sweep(cache, tmp_path, "lr=0.01 seed=0,1", capsys)
    assert code == 0 and len(calls) == 2  # nothing trained again
    assert "all 2 runs already finished" in out
    assert list(tmp_path.glob("sweep-*")) == [sweep_dir] and _finished(sweep_dir) == first
    assert json.loads((sweep_dir / "sweep.json").read_text())["runs"] == first
    rows = [line.split() for line in out.splitlines() if line.startswith("twelve")]
    assert [row[1] for row in rows] == ["2"], out  # one group of the two seeds, not four runs
    # values in another order, on another number of loader workers: the same runs
    code, out, _ = _sweep(cache, tmp_path, "seed=1,0 lr=0.01", capsys, "--workers", "1")
    assert code == 0 and len(calls) == 2 and "all 2 runs already finished" in out
    assert list(tmp_path.glob("sweep-*")) == [sweep_dir]


def test_a_sweep_folder_named_by_the_earlier_digest_still_resumes(cache, tmp_path):
    """Before, the digest took values as typed and every option (device, workers): such a folder is found
    rather than a new sweep started beside it."""
    from cli.config_args import build_config
    from train.experiment_config import SweepConfig
    from train.jobs import options_digest
    from train.sweep import parse_grid, plan

    argv = ["sweep", "--cache", str(cache), "--out", str(tmp_path), "--grid", "seed=1,0", *FLAGS]
    cfg = build_config(SweepConfig, pipeline.build_parser().parse_args(argv))
    fresh = plan(cfg)[0]
    earlier = tmp_path / f"sweep-{options_digest(cfg.train, parse_grid(cfg.grid))}"  # values as typed
    assert earlier != fresh
    earlier.mkdir()
    assert plan(cfg)[0] == earlier


def test_a_sweep_named_in_the_typed_key_order_before_the_fix_still_resumes(
    cache, tmp_path, monkeypatch, capsys
):
    """Sweeps made before run names had a fixed key order keep the order their folder shows."""
    calls = _trainings(monkeypatch)
    assert _sweep(cache, tmp_path, "seed=0,1 lr=1e-2", capsys, "--name", "old")[0] == 0
    sweep_dir = tmp_path / "old"
    legacy = ["seed=0_lr=0.01", "seed=1_lr=0.01"]  # how the typed order named them
    for seed in (0, 1):
        if (sweep_dir / f"lr=0.01_seed={seed}").exists():
            (sweep_dir / f"lr=0.01_seed={seed}").rename(sweep_dir / f"seed={seed}_lr=0.01")
    (sweep_dir / "sweep.json").write_text(json.dumps({"grid": "seed=0,1 lr=1e-2", "runs": legacy}))

    code, out, _ = _sweep(cache, tmp_path, "lr=0.01 seed=0,1", capsys, "--name", "old")
    assert code == 0 and len(calls) == 2 and "all 2 runs already finished" in out
    assert _finished(sweep_dir) == legacy


@pytest.mark.parametrize(
    "grid, words",
    [
        ("seed=0,0", "'seed' lists 0 twice"),
        ("lr=1e-3,0.001", "'lr' lists 0.001 twice (as 1e-3 and 0.001)"),
        ("seed=0 seed=1", "'seed' is given twice"),
    ],
)
def test_a_grid_naming_one_run_twice_is_refused_before_any_training(
    cache, tmp_path, monkeypatch, capsys, grid, words
):
    calls = _trainings(monkeypatch)
    code, _, err = _sweep(cache, tmp_path, grid, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: --grid: ") and words in err and ("once" in err), err
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_a_grid_file_with_a_repeated_value_is_refused_naming_the_file(cache, tmp_path, monkeypatch, capsys):
    calls = _trainings(monkeypatch)
    grid = tmp_path / "grid.yaml"
    grid.write_text("lr: [1.0e-2]\nseed: [1, 0, 1]\n")
    code, _, err = _sweep(cache, tmp_path / "runs", str(grid), capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{grid}: 'seed' lists 1 twice; give each value once" in err
    assert calls == [] and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command, default", [("sweep", "sweep-<hash"), ("tune", "tune-<streams>-<metric>")])
def test_help_gives_the_folder_name_the_command_picks(capsys, command, default):
    """--name is train's flag nested in sweep and tune, where it names another folder than a run's."""
    with pytest.raises(SystemExit):
        pipeline.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert default in text and "<streams>-s<seed>-<time>" not in text
