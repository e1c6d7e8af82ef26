"""Sweeps, cross-validation folds, tune and the grouped `runs` table, on tiny synthetic caches.

Every training here is one epoch of a tiny model; what is checked is which runs happen, on which
sequences, and what survives an interruption.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from train_fixtures import write_synthetic_cache

import pipeline
import train.fit
from cache.schema import decode_id, encode_id
from core.errors import UserError
from train.config import RunsConfig, TrainConfig
from train.experiment_config import SweepConfig, TuneConfig
from train.folds import make_folds
from train.runs import compare_runs

TINY = dict(epochs=1, batch_size=8, hidden=8, dropout=0.0, device="cpu", patience=0, streams="twelve")
SUBJECTS = ("s01", "s02", "s03", "s04")


@pytest.fixture(autouse=True)
def one_thread_no_figures(monkeypatch):
    """One thread (tiny models, two shared cores); figures off: drawing PNGs is most of a tiny run."""
    import train.evaluate

    monkeypatch.setattr(train.evaluate, "_plots", lambda *a, **k: {})
    monkeypatch.setattr(train.fit, "plot_curves", lambda *a, **k: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _subject_cache(root: Path) -> Path:
    """A synthetic cache whose video ids name 4 subjects and whose extraction used --group-regex."""
    key_dir = write_synthetic_cache(root, counts={"train": 16, "val": 8, "test": 6}, frames=4, key="subj0001")
    manifest = json.loads((key_dir / "manifest.json").read_text())
    for entry in manifest["splits"].values():
        with h5py.File(key_dir / entry["file"], "r+") as h5:
            ids = [decode_id(r) for r in h5["sequence_ids"][...]]
            # train000 -> s01_train000, ...: subjects cycle so every subject has train and val videos
            ids = [f"{c}/{SUBJECTS[i % 4]}_{v}" for i, (c, v) in enumerate(s.split("/") for s in ids)]
            h5["sequence_ids"][...] = np.array([encode_id(s) for s in ids])
        entry["sequence_ids"] = ids
    manifest["config"]["group_regex"] = r"^(s\d+)_"
    (key_dir / "manifest.json").write_text(json.dumps(manifest))
    return key_dir


@pytest.fixture(scope="module")
def subject_cache(tmp_path_factory) -> Path:
    return _subject_cache(tmp_path_factory.mktemp("subj"))


def _trainings(monkeypatch, fail_at: int | None = None) -> list[str]:
    """Record every run_train call (run name); raise KeyboardInterrupt at call ``fail_at`` (a kill)."""
    calls: list[str] = []
    real = train.fit.run_train

    def counted(cfg, *args, **kwargs):
        calls.append(cfg.name)
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(train.fit, "run_train", counted)
    return calls


def test_sweep_runs_every_combination_resumes_after_a_kill_and_reads_the_cache_once(tmp_path, monkeypatch):
    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 12, "val": 6, "test": 6}, frames=4)
    cfg = SweepConfig(
        TrainConfig(cache=cache, out=tmp_path / "runs", name="sw", **TINY), grid="lr=1e-2,3e-3 seed=0,1"
    )
    from train.sweep import run_sweep

    real_train = train.fit.run_train
    calls = _trainings(monkeypatch, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg)
    finished = {p.parent.name: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "sw").glob("*/run.json")}
    assert len(finished) == 2

    # Resume: every cache file open happens while decoding, before the first training.
    events: list[str] = []
    real_file = h5py.File

    def watched_file(name, *args, **kwargs):
        if Path(str(name)).resolve().is_relative_to(cache.resolve()):
            events.append("open")
        return real_file(name, *args, **kwargs)

    def watched_train(cfg, *args, **kwargs):
        events.append("train")
        return real_train(cfg, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", watched_file)
    monkeypatch.setattr(train.fit, "run_train", watched_train)
    run_sweep(cfg)
    assert events.count("train") == 2  # only the two unfinished combinations ran again
    assert "open" not in events[events.index("train") :]
    runs = sorted((tmp_path / "runs" / "sw").glob("*/run.json"))
    assert [p.parent.name for p in runs] == sorted(
        f"lr={lr}_seed={s}" for lr in ("0.01", "0.003") for s in (0, 1)
    )
    for p in runs:  # each run folder records its own combination
        saved = yaml.safe_load((p.parent / "config.yaml").read_text())
        assert p.parent.name == f"lr={saved['lr']:g}_seed={saved['seed']}"
    assert {n: (tmp_path / "runs" / "sw" / n / "run.json").stat().st_mtime_ns for n in finished} == finished
    assert len(calls) == 3  # the killed sweep: two runs finished, the third interrupted


def test_parallel_trainings_name_every_line_they_print(tmp_path, capfd):
    """With --parallel, trainings print side by side: each line carries its run's name, so the epochs and
    reports of one run can be told from another's."""
    from train.sweep import run_sweep

    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 12, "val": 6, "test": 6}, frames=4)
    cfg = SweepConfig(
        TrainConfig(cache=cache, out=tmp_path / "runs", name="sw", **{**TINY, "epochs": 2}),
        grid="seed=0,1",
        parallel=2,
    )
    run_sweep(cfg)
    captured = capfd.readouterr()
    lines = (captured.out + captured.err).splitlines()
    training = [line for line in lines if re.search(r"(^|\] )(epoch +\d|val:)", line)]
    assert len(training) == 6  # two epochs and a report per run
    for name in ("seed=0", "seed=1"):
        own = [line for line in training if line.startswith(f"[{name}] ")]
        assert sorted(line.split("] ", 1)[1].split()[0] for line in own) == ["epoch", "epoch", "val:"], lines


def test_loso_folds_hold_out_each_subject_once_and_never_touch_test(subject_cache, tmp_path, capsys):
    code = pipeline.main(
        ["train", "--cache", str(subject_cache), "--out", str(tmp_path), "--name", "cv", "--folds", " LOSO"]
        + [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    )
    assert code == 0
    # recorded as "loso", so `runs` groups it with every other leave-one-subject-out run
    assert {
        yaml.safe_load((f / "config.yaml").read_text())["folds"] for f in (tmp_path / "cv").glob("fold-*")
    } == {"loso"}
    manifest = json.loads((subject_cache / "manifest.json").read_text())
    pool = manifest["splits"]["train"]["sequence_ids"] + manifest["splits"]["val"]["sequence_ids"]
    test_ids = set(manifest["splits"]["test"]["sequence_ids"])
    subject = {s: s.split("/")[1][:3] for s in pool}
    validated: list[str] = []
    for fold in sorted((tmp_path / "cv").glob("fold-*")):
        info = json.loads((fold / "fold.json").read_text())
        ckpt = torch.load(fold / "best.pt", weights_only=True)
        trained = set(ckpt["trained_videos"])
        assert len(info["val_groups"]) == 1 and {subject[s] for s in info["val_sequences"]} == set(
            info["val_groups"]
        )
        assert not {subject[s] for s in trained} & set(info["val_groups"])  # subject-disjoint
        assert not (trained | set(info["val_sequences"])) & test_ids
        assert "test" not in json.loads((fold / "report.json").read_text())
        validated += info["val_sequences"]
    assert sorted(validated) == sorted(pool)  # every train/val sequence validated exactly once
    summary = json.loads((tmp_path / "cv" / "summary.json").read_text())
    assert len(summary["folds"]) == len(SUBJECTS) and set(summary["mean_std"]) >= {"accuracy", "loss"}
    assert "±" in capsys.readouterr().out
    # A fold's model trained on part of val: evaluating it there is refused as such, not as a re-split.
    code, err = _run_cli(["evaluate", "--checkpoint", str(fold / "best.pt"), "--split", "val"], capsys)
    assert code == 2 and "a --folds run trains on part of val" in err and "re-split" not in err, err


def test_k_folds_group_by_subject_or_video_and_cover_every_sequence():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    subjects = [f"s{i % 6}" for i in range(60)]
    folds = make_folds(labels, subjects, "3", seed=0, subjects_known=True)
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    held = [{subjects[i] for i in f} for f in folds]
    assert all(not a & b for i, a in enumerate(held) for b in held[i + 1 :])
    videos = [f"v{i // 2}" for i in range(60)]  # no subjects: an augmented copy stays with its video
    for f in make_folds(labels, videos, "4", seed=1, subjects_known=False):
        inside = {videos[i] for i in f}
        assert all(videos[j] not in inside for j in range(60) if j not in set(f.tolist()))


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = pipeline.main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_experiment_input_is_one_line_and_exit_2(subject_cache, tmp_path, capsys):
    base = ["--cache", str(subject_cache), "--out", str(tmp_path)]
    bad_grids = [
        ("lrr=1,2", "unknown option 'lrr'"),
        ("lr=fast", "bad value for 'lr'"),
        ("epochs=1.5", "bad value for 'epochs'"),  # int(1.5) would silently train 1 epoch
    ]
    for grid, words in bad_grids:
        code, err = _run_cli(["sweep", *base, "--grid", grid], capsys)
        assert code == 2 and words in err and len(err.splitlines()) == 1
    code, err = _run_cli(["train", *base, "--folds", "5"], capsys)
    assert code == 2 and "more than the 4 subjects" in err and len(err.splitlines()) == 1
    not_utf8 = tmp_path / "grid.yaml"
    not_utf8.write_bytes(b"lr: [\xff\xfe]\n")  # a grid or space file saved in another encoding
    for command, flag in (("sweep", "--grid"), ("tune", "--space")):
        code, err = _run_cli([command, *base, flag, str(not_utf8)], capsys)
        assert code == 2 and str(not_utf8) in err and "not UTF-8" in err and len(err.splitlines()) == 1
    space = tmp_path / "space.yaml"
    space.write_text("lr: {low: 1.0e-2, high: 1.0e-3}\n")
    code, err = _run_cli(["tune", *base, "--space", str(space)], capsys)
    assert code == 2 and str(space) in err and "empty range" in err
    space.write_text("lr: {low: 1.0e-3, high: 1.0e-2}\n")
    db = tmp_path / "broken" / "study.db"
    db.parent.mkdir()
    damaged = b"SQLite format 3\x00" + bytes(range(256)) * 16
    db.write_bytes(damaged)
    code, err = _run_cli(["tune", *base, "--name", "broken", "--space", str(space)], capsys)
    assert code == 2 and str(db) in err and len(err.splitlines()) == 1
    assert db.read_bytes() == damaged  # the study file is not overwritten


@pytest.mark.parametrize(
    "command", [["sweep", "--grid", "seed=0,1"], ["train", "--folds", "2"], ["tune", "--trials", "1"]]
)
def test_a_run_folder_is_never_made_a_sweep_folds_or_study_folder(subject_cache, tmp_path, capsys, command):
    """A sweep run's config.yaml given back as --config names that run (out: the sweep, name: the run): the
    new runs nested inside the finished one, and `runs` counted them twice."""
    run = tmp_path / "sweep-1" / "seed=0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    argv = [command[0], "--cache", str(subject_cache), "--out", str(run.parent), "--name", run.name]
    code, err = _run_cli([*argv, *command[1:]], capsys)
    assert code == 2 and err == (
        f"error: {run}: is one training run's folder, not a "
        f"{ {'sweep': 'sweep', 'train': 'cross-validation', 'tune': 'study'}[command[0]] } folder (a run's "
        "config.yaml given as --config names it); pass another --name"
    ), err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_tune_under_torchrun_is_refused_before_any_trial(subject_cache, tmp_path, capsys, monkeypatch):
    """Each rank would ask the study for a trial of its own and then meet the others in DDP's all-reduce."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("train.tune._run_trials", lambda *a: pytest.fail("a trial ran under torchrun"))
    code, err = _run_cli(["tune", "--cache", str(subject_cache), "--out", str(tmp_path)], capsys)
    assert code == 2 and "tune does not run under torchrun" in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())  # no study folder left behind


def test_tune_runs_trials_and_resumes_a_killed_study(subject_cache, tmp_path, monkeypatch, capsys):
    import optuna
    from optuna.trial import TrialState

    from train.tune import run_tune
    from train.tune_space import read_space

    space = tmp_path / "space.yaml"
    space.write_text("lr: {low: 1.0e-3, high: 3.0e-2, log: true}\nhidden: [4, 8]\n")
    base = TrainConfig(cache=subject_cache, out=tmp_path, name="study", **TINY)
    run_tune(TuneConfig(base, trials=2, space=space))
    db = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    study = optuna.load_study(study_name="study", storage=db)
    first = [(t.number, t.params, t.datetime_complete) for t in study.trials]
    assert len(first) == 2 and all(t.state == TrialState.COMPLETE for t in study.trials)
    # A kill inside trial 2 leaves it RUNNING in the database with a half-written run folder.
    killed = study.ask()
    for p in read_space(space, base).values():
        p.suggest(killed)
    (tmp_path / "study" / "trial-0002").mkdir()

    calls = _trainings(monkeypatch)
    run_tune(TuneConfig(base, trials=4, space=space))
    study = optuna.load_study(study_name="study", storage=db)
    states = [t.state for t in study.trials]
    assert len(calls) == 2 and states.count(TrialState.FAIL) == 1  # 2 more trials, not 4
    assert states[2] == TrialState.FAIL and len([s for s in states if s != TrialState.FAIL]) == 4
    assert [(t.number, t.params, t.datetime_complete) for t in study.trials[:2]] == first
    assert study.trials[3].params == killed.params  # the interrupted trial is tried again
    out = capsys.readouterr().out
    assert re.search(r"best trial \d+ \(trial-\d{4}\): acc \d\.\d{4}", out) and "parameter importances" in out
    assert (tmp_path / "study" / "optimization_history.png").stat().st_size > 0
    # how to train the best trial again: its own config.yaml, which holds its parameters
    retrain = re.findall(r"retrain it: pipeline.py train --config (\S+) --name NEW_NAME", out)[-1]
    best = yaml.safe_load(Path(retrain).read_text())
    assert {k: best[k] for k in study.best_trial.params} == study.best_trial.params


def test_tune_keeps_an_option_fixed_when_the_command_line_or_its_config_file_gives_it_even_at_its_default(
    tmp_path,
):
    import argparse

    from cli.config_args import add_config_args, build_config
    from core.config import given_options
    from train.tune_space import read_space

    def space(*argv: str) -> set[str]:
        parser = argparse.ArgumentParser()
        add_config_args(parser, TuneConfig)
        cfg = build_config(TuneConfig, parser.parse_args(["--cache", str(tmp_path), *argv]))
        return set(read_space(None, cfg.train, given_options(cfg)))

    assert space() == {"lr", "weight_decay", "hidden", "dropout"}
    assert space("--hidden", "128") == {"lr", "weight_decay", "dropout"}  # 128 is the default
    (tmp_path / "tune.yaml").write_text("dropout: 0.2\n")  # the default too
    assert space("--config", str(tmp_path / "tune.yaml"), "--lr", "3e-3") == {"weight_decay", "hidden"}


def test_tune_without_a_space_searches_the_default_options_and_says_so(subject_cache, tmp_path, capsys):
    """No --space: the trials vary lr, weight decay, hidden size and dropout, less those given a value of
    their own (TINY fixes hidden and dropout), and each run trains with the values its trial drew."""
    import optuna

    from train.tune import run_tune

    base = TrainConfig(cache=subject_cache, out=tmp_path, name="study", **TINY)
    run_tune(TuneConfig(base, trials=2))
    out = capsys.readouterr().out
    assert "space: lr, weight_decay (the default, less hidden, dropout as given" in out
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    for trial in study.trials:
        assert set(trial.params) == {"lr", "weight_decay"}
        ran = yaml.safe_load((tmp_path / "study" / f"trial-{trial.number:04d}" / "config.yaml").read_text())
        assert {k: ran[k] for k in trial.params} == trial.params
        assert (ran["hidden"], ran["dropout"]) == (TINY["hidden"], TINY["dropout"])
    fixed = TrainConfig(
        cache=subject_cache, out=tmp_path, name="none", **{**TINY, "lr": 0.01, "weight_decay": 0.0}
    )
    with pytest.raises(UserError, match="was given a value; pass --space FILE"):
        run_tune(TuneConfig(fixed, trials=1))


def _fake_run(
    root: Path, name: str, cfg: dict, val_acc: float, fold: int | None = None, splits: str = "ab" * 32
) -> None:
    d = root / name
    d.mkdir(parents=True)
    base = {"cache": "c", "streams": "all", "lr": 0.003, "epochs": 5, "seed": 0, "name": name, "folds": None}
    (d / "config.yaml").write_text(yaml.safe_dump({**base, **cfg, "name": name}))
    best = {"metric": "acc", "split": "val", "value": val_acc, "epoch": 3}
    info = {"cache_key": "k1", "best": best, "test": None, "splits_sha256": splits}
    (d / "run.json").write_text(json.dumps(info))
    (d / "report.json").write_text(
        json.dumps({"val": {"accuracy": val_acc, "f1_macro": val_acc, "loss": 1.0}})
    )


def test_runs_groups_seeds_and_folds_filters_sorts_and_exports(tmp_path):
    for s, acc in enumerate((0.5, 0.7, 0.9)):  # one config, three seeds
        _fake_run(tmp_path, f"all-s{s}", {"seed": s}, acc)
    for f, acc in enumerate((0.2, 0.4)):  # another config cross-validated: folds in a sub-folder
        _fake_run(tmp_path / "cv", f"fold-{f}", {"lr": 0.01, "folds": "2"}, acc)
    _fake_run(tmp_path, "twelve-s0", {"streams": "twelve"}, 0.95)
    table = compare_runs(RunsConfig(runs_dir=tmp_path, sort="val_acc"))
    rows = table.splitlines()[2:]
    assert len(rows) == 3
    assert "twelve" in rows[0] and "0.9500" in rows[0] and "±" not in rows[0]
    assert "3  0.7000 ± 0.2000" in rows[1] and "2  0.3000 ± 0.1414" in rows[2]
    out_csv = tmp_path / "groups.csv"
    filtered = compare_runs(RunsConfig(runs_dir=tmp_path, where=("streams=all", "lr=0.01"), csv=out_csv))
    assert len(filtered.splitlines()) == 3 and "0.3000 ± 0.1414" in filtered
    lines = out_csv.read_text().splitlines()
    assert lines[0].startswith("streams,n,best_mean,best_std,val_acc_mean") and lines[1].startswith(
        "all,2,0.3,"
    )


def test_runs_says_which_runs_it_left_out_and_why(tmp_path):
    """A run stopped before its end, or with a damaged record, is named under the table, not dropped."""
    _fake_run(tmp_path, "all-s0", {}, 0.5)
    _fake_run(tmp_path / "sweep", "lr=0.01", {"lr": 0.01}, 0.6)
    (tmp_path / "sweep" / "lr=0.01" / "run.json").unlink()  # Ctrl-C'd: config.yaml, checkpoint, no run.json
    _fake_run(tmp_path, "broken", {"seed": 1}, 0.7)
    (tmp_path / "broken" / "report.json").write_text("{truncated")
    lines = compare_runs(RunsConfig(runs_dir=tmp_path)).splitlines()
    assert len(lines) == 5 and "1  0.5000" in lines[2], lines
    assert lines[3].startswith("left out: 1 run(s) not finished") and "sweep/lr=0.01" in lines[3]
    assert lines[4].startswith("left out: 1 run(s) with unreadable") and "broken" in lines[4]
    (tmp_path / "all-s0" / "run.json").unlink()
    none = compare_runs(RunsConfig(runs_dir=tmp_path)).splitlines()
    assert none[0] == f"no finished runs in {tmp_path}" and "2 run(s) not finished" in none[1], none


def test_runs_scored_on_two_splits_of_a_cache_are_two_groups(tmp_path):
    """Seeds trained before and after a re-split (`extract --seed 1`, same cache key) validate and test on
    other videos: averaged as repeats, their mean ± std mixed two test sets."""
    _fake_run(tmp_path, "s0", {"seed": 0}, 0.5)
    _fake_run(tmp_path, "s1", {"seed": 1}, 0.7)
    _fake_run(tmp_path, "s2", {"seed": 2}, 0.9, splits="cd" * 32)
    lines = compare_runs(RunsConfig(runs_dir=tmp_path)).splitlines()
    assert lines[0].split()[:2] == ["split", "n"], lines
    rows = {line.split()[0]: line.split()[1] for line in lines[2:]}
    assert rows == {"abababab": "2", "cdcdcdcd": "1"}


def test_runs_csv_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """A runs table that fails half-written leaves the previous table intact and no partial file."""
    for s, acc in enumerate((0.5, 0.7)):
        _fake_run(tmp_path / "runs", f"all-s{s}", {"seed": s}, acc)
    out_csv = tmp_path / "groups.csv"
    compare_runs(RunsConfig(runs_dir=tmp_path / "runs", csv=out_csv))
    before = out_csv.read_text()
    _fake_run(tmp_path / "runs", "twelve-s0", {"streams": "twelve"}, 0.9)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("train.runs.np.std", interrupted)  # the first data row's statistics
    with pytest.raises(KeyboardInterrupt):
        compare_runs(RunsConfig(runs_dir=tmp_path / "runs", csv=out_csv))
    assert out_csv.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["groups.csv", "runs"]


@pytest.mark.parametrize("where", ["under-a-file", "a-folder"])
def test_runs_csv_that_cannot_be_written_is_one_line_before_the_runs_are_read(
    tmp_path, capsys, monkeypatch, where
):
    """`runs --csv` under a file (or naming a folder) is refused naming the path before the run tree is
    walked, not with a bare OS error once the table is made."""

    def too_late(*args, **kwargs):
        raise AssertionError("--csv is checked before the runs are read")

    _fake_run(tmp_path / "runs", "all-s0", {}, 0.5)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "groups.csv" if where == "under-a-file" else tmp_path / "runs"
    monkeypatch.setattr("train.runs._run_metrics", too_late)
    code, err = _run_cli(["runs", "--runs-dir", str(tmp_path / "runs"), "--csv", str(out)], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "--csv" in err and str(out) in err, err
    assert blocker.read_text() == "not a folder"


def test_runs_takes_stream_combinations_spelled_with_comma_or_plus_as_one_experiment(tmp_path):
    """`train --streams twelve,hands` and a sweep's 'twelve+hands' train the same model: one group."""
    _fake_run(tmp_path, "a", {"streams": "twelve,hands", "seed": 0}, 0.6)
    _fake_run(tmp_path, "b", {"streams": "twelve+hands", "seed": 1}, 0.8)
    _fake_run(tmp_path, "c", {"streams": "twelve"}, 0.9)
    _fake_run(tmp_path, "d", {"streams": "twelve,twelve", "seed": 1}, 0.7)  # the model of `twelve`
    rows = compare_runs(RunsConfig(runs_dir=tmp_path, sort="val_acc")).splitlines()[2:]
    assert len(rows) == 2 and rows[1].split()[:2] == ["twelve+hands", "2"], rows
    assert rows[0].split()[:2] == ["twelve", "2"], rows
    for spelling in ("twelve,hands", "twelve+hands", "twelve, hands"):
        only = compare_runs(RunsConfig(runs_dir=tmp_path, where=(f"streams={spelling}",))).splitlines()[2:]
        assert len(only) == 1 and "0.7000 ± 0.1414" in only[0], (spelling, only)


def test_folds_take_the_subjects_a_dataset_format_recorded(tmp_path):
    from train.subjects import subjects_of

    ids = ["wave/rec1@0-9", "wave/rec1@10-19#a1", "push/rec2@0-5", "push/rec3"]
    (tmp_path / "splits.json").write_text(
        json.dumps(
            {
                "assignment": {"wave/rec1@0-9": "train", "wave/rec1@10-19": "train", "push/rec2@0-5": "val"},
                "subjects": {"wave/rec1@0-9": "s1", "wave/rec1@10-19": "s1", "push/rec2@0-5": "s2"},
            }
        )
    )
    # an augmented copy has its video's subject; a sample the format named no subject for is its own
    assert subjects_of(tmp_path, {"config": {}}, ids) == ["s1", "s1", "s2", "push/rec3"]
    regex = {"config": {"group_regex": r"^(rec\d)"}}  # --group-regex overrides, as it did for the split
    assert subjects_of(tmp_path, regex, ids) == ["rec1", "rec1", "rec2", "rec3"]
    assert subjects_of(tmp_path / "elsewhere", {"config": {}}, ids) is None  # nothing recorded


def test_a_sweep_grid_varies_stream_combinations_joined_by_plus(tmp_path):
    """',' separates a grid's values, so 'twelve+dino-swav+hands' is one run fusing the three, beside
    'twelve' alone; the report names the fusion gate by the streams it weighs."""
    from train.checkpoint import load_checkpoint
    from train.sweep import run_sweep

    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 8, "val": 4, "test": 0}, frames=4)
    base = TrainConfig(cache=cache, out=tmp_path / "runs", name="sw", **TINY)
    run_sweep(SweepConfig(base, grid="streams=twelve+dino-swav+hands,twelve"))
    runs = tmp_path / "runs" / "sw"
    streams = {p.parent.name: load_checkpoint(p)["model_args"]["streams"] for p in runs.glob("*/best.pt")}
    fused = "streams=twelve+dino-swav+hands"
    assert streams == {fused: ["twelve", "dino-swav", "hands"], "streams=twelve": ["twelve"]}
    gates = json.loads((runs / fused / "report.json").read_text())["val"]["attention"]["fusion_gate"]
    assert set(gates) == {"dino_vs_swav", "twelve+dino-swav_vs_hands"}


def test_resuming_a_sweep_after_the_cache_was_re_split_is_refused_not_averaged(tmp_path, capsys):
    """A finished run of the same options but an older split of the cache (re-extracted with another
    --seed) was counted as done: the sweep then averaged test accuracies over two test sets, and folds
    overlapped. The run records its split; a resume over another split is one line naming the run."""
    import shutil

    counts = {"train": 12, "val": 6, "test": 6}
    cache = write_synthetic_cache(tmp_path / "cache", counts=counts, frames=4)
    argv = ["sweep", "--cache", str(cache), "--out", str(tmp_path / "runs"), "--name", "sw"]
    argv += ["--grid", "seed=0,1", "--epochs", "1", "--hidden", "8"]
    assert _run_cli(argv, capsys)[0] == 0
    shutil.rmtree(next((tmp_path / "runs" / "sw").glob("seed=1")))
    assert _run_cli(argv, capsys)[0] == 0  # the same split: the finished run is kept, the other re-run
    shutil.rmtree(next((tmp_path / "runs" / "sw").glob("seed=1")))
    shutil.rmtree(cache)
    write_synthetic_cache(tmp_path / "cache", counts={"train": 10, "val": 8, "test": 6}, frames=4)
    code, err = _run_cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "seed=0" in err and "another split" in err, err


def test_the_same_folds_command_again_keeps_the_finished_folds(tmp_path, capsys, monkeypatch):
    """Without --name the folds folder is named by the options, so the same command finds it again. Each
    fold records the cache's split, so a resume over the same split keeps the finished folds (and refuses
    none as 'another split'); another option names another folder."""
    import shutil

    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 12, "val": 6, "test": 6}, frames=4)
    argv = ["train", "--cache", str(cache), "--out", str(tmp_path / "runs"), "--folds", "2"]
    argv += ["--epochs", "1", "--hidden", "8"]
    assert _run_cli(argv, capsys)[0] == 0
    (cv_dir,) = (tmp_path / "runs").iterdir()
    shutil.rmtree(cv_dir / "fold-1")
    later = itertools.count(1)  # the clock has moved on since: what the folder is named by must not
    monkeypatch.setattr(time, "strftime", lambda *args: f"later-{next(later)}")
    code = pipeline.main([*argv, "--workers", "1"])  # how it loads data is not what it trains
    assert code == 0 and "resuming: 1 of 2 runs already finished" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [cv_dir.name]
    assert pipeline.main([*argv[:-1], "9"]) == 0  # --hidden 9
    assert len(list((tmp_path / "runs").iterdir())) == 2
