"""Resuming a `tune` study: new draws, no mixing of incompatible trials, Ctrl-C, and space bounds.

Each case runs ``pipeline.main`` on a tiny synthetic cache (one epoch of a tiny model per trial) and checks
what a user sees: the exit status, the one error line, the trials the study holds, the run folders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_fixtures import write_synthetic_cache

import pipeline
import train.fit

TINY = dict(epochs=1, batch_size=8, hidden=8, dropout=0.0, device="cpu", patience=0, streams="twelve")
SPACE = "lr: {low: 1.0e-3, high: 3.0e-2, log: true}\nweight_decay: {low: 1.0e-6, high: 1.0e-2, log: true}\n"


@pytest.fixture(autouse=True)
def one_thread_no_figures(monkeypatch):
    """One thread (tiny models, two shared cores); figures off: drawing PNGs is most of a tiny run."""
    import train.evaluate
    import train.tune

    monkeypatch.setattr(train.evaluate, "_plots", lambda *a, **k: {})
    monkeypatch.setattr(train.fit, "plot_curves", lambda *a, **k: None)
    monkeypatch.setattr(train.tune, "_plot_history", lambda *a, **k: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    return write_synthetic_cache(root, counts={"train": 12, "val": 6, "test": 0}, frames=4, key="tune0001")


def _tune(cache: Path, out: Path, *extra: str, space: Path | None = None, **options: object) -> int:
    """``pipeline.py tune`` with the tiny training options (``options`` override them)."""
    flags = {**TINY, **options}
    argv = ["tune", "--cache", str(cache), "--out", str(out), "--name", "study"]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    if space is not None:
        argv += ["--space", str(space)]
    return pipeline.main([*argv, *extra])


def _trials(out: Path, name: str = "study") -> list:
    import optuna

    storage = f"sqlite:///{out / name / 'study.db'}"
    return optuna.load_study(study_name=name, storage=storage).trials


def _space(tmp_path: Path, text: str = SPACE) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_resumed_study_draws_new_parameters_and_a_fresh_one_repeats_its_seed(cache, tmp_path):
    space = _space(tmp_path)
    assert _tune(cache, tmp_path, "--trials", "2", space=space) == 0
    assert _tune(cache, tmp_path, "--trials", "4", space=space) == 0
    drawn = [t.params for t in _trials(tmp_path)]
    assert len(drawn) == 4
    assert not any(p in drawn[:2] for p in drawn[2:]), drawn  # resumed: not the first trials over again

    again = tmp_path / "again"
    assert _tune(cache, again, "--trials", "2", space=space) == 0
    assert [t.params for t in _trials(again)] == drawn[:2]  # the same seed, the same first draws


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (["--metric", "loss"], "metric acc (now loss)"),
        (["--epochs", "2"], "epochs 1 (now 2)"),
        (["--cache", "OTHER"], "cache key tune0001 (now othr0001)"),
    ],
)
def test_a_study_refuses_to_resume_with_other_fixed_options(cache, tmp_path, capfd, change, words):
    """The metric, the cache and every fixed training option define a study: a resumed study made with
    others would mix trials that cannot be compared (a loss maximised, another cache's accuracy)."""
    space = _space(tmp_path)
    assert _tune(cache, tmp_path, "--trials", "1", space=space) == 0
    if change[0] == "--cache":
        counts = {"train": 12, "val": 6, "test": 0}
        other = write_synthetic_cache(tmp_path / "other", counts=counts, frames=4, key="othr0001")
        change = ["--cache", str(other)]
    capfd.readouterr()
    assert _tune(cache, tmp_path, "--trials", "2", *change, space=space) == 2
    *notes, err = capfd.readouterr().err.strip().splitlines()  # notes: the flag this test gives twice
    db = tmp_path / "study" / "study.db"
    assert all(n.startswith("note: ") for n in notes) and err.startswith(f"error: {db}: ") and words in err
    assert "--name" in err
    assert len(_trials(tmp_path)) == 1  # nothing ran


def test_a_study_refuses_to_resume_with_a_changed_space_before_any_trial(cache, tmp_path, capfd):
    space = _space(tmp_path)
    assert _tune(cache, tmp_path, "--trials", "1", space=space) == 0
    before = _trials(tmp_path)
    _space(tmp_path, SPACE.replace("log: true}\nweight", "log: false}\nweight"))  # lr: not log any more
    capfd.readouterr()
    assert _tune(cache, tmp_path, "--trials", "2", space=space) == 2
    err = capfd.readouterr().err.strip()
    db = tmp_path / "study" / "study.db"
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {db}: ") and "space" in err, err
    assert "lr" in err and "Traceback" not in err
    assert [(t.number, t.state) for t in _trials(tmp_path)] == [(t.number, t.state) for t in before]


def test_a_study_made_before_its_settings_were_recorded_still_resumes(cache, tmp_path, capfd):
    """A study.db without recorded settings (an older version's) is resumed, not refused, unless its
    direction says it optimised another metric."""
    import optuna
    from optuna.distributions import FloatDistribution

    (tmp_path / "study").mkdir()
    old = optuna.create_study(
        study_name="study", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}", direction="maximize"
    )
    distributions = {
        "lr": FloatDistribution(1.0e-3, 3.0e-2, log=True),
        "weight_decay": FloatDistribution(1.0e-6, 1.0e-2, log=True),
    }
    old.add_trial(
        optuna.trial.create_trial(
            params={"lr": 0.01, "weight_decay": 1e-4}, distributions=distributions, value=0.5
        )
    )
    capfd.readouterr()
    assert _tune(cache, tmp_path, "--trials", "2", "--metric", "loss", space=_space(tmp_path)) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "direction maximize (now minimize, for loss)" in err, err
    assert _tune(cache, tmp_path, "--trials", "2", space=_space(tmp_path)) == 0
    assert len(_trials(tmp_path)) == 2


def test_ctrl_c_prints_no_traceback_and_the_interrupted_trial_runs_again_with_its_parameters(
    cache, tmp_path, monkeypatch, capfd
):
    """Ctrl-C inside a trial: one 'interrupted' line and exit 130; the same command again removes the
    half-written trial folder and trains the interrupted trial's parameters again."""
    space = _space(tmp_path)
    real = train.fit.run_train
    started: list[str] = []

    def interrupted_second(cfg, *args, **kwargs):
        started.append(cfg.name)
        if len(started) == 2:  # a half-written run folder, then Ctrl-C
            (Path(cfg.out) / cfg.name).mkdir(parents=True)
            (Path(cfg.out) / cfg.name / "train_log.csv").write_text("epoch\n")
            raise KeyboardInterrupt
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(train.fit, "run_train", interrupted_second)
    capfd.readouterr()
    assert _tune(cache, tmp_path, "--trials", "3", space=space) == 130
    err = capfd.readouterr().err.strip()
    assert err.splitlines()[-1].startswith("interrupted"), err
    assert not any(word in err for word in ("Traceback", "KeyboardInterrupt", "failed")), err
    assert (tmp_path / "study" / "trial-0001").is_dir()
    killed = _trials(tmp_path)[1].params

    monkeypatch.setattr(train.fit, "run_train", real)
    assert _tune(cache, tmp_path, "--trials", "3", space=space) == 0
    trials = _trials(tmp_path)
    finished = [t for t in trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == 3
    assert trials[2].params == killed  # the interrupted trial is tried first, with its own parameters
    assert not (tmp_path / "study" / "trial-0001").exists()  # its half-written folder is gone
    assert all((tmp_path / "study" / f"trial-{t.number:04d}" / "run.json").is_file() for t in finished)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("lr: {low: -1, high: 1.0e-2}\n", "'lr'"),
        ("dropout: {low: 0.0, high: 1.5}\n", "'dropout'"),
        ("hidden: [0, 8]\n", "'hidden'"),
    ],
)
def test_a_space_with_values_train_would_refuse_is_refused_before_any_trial(
    cache, tmp_path, capfd, text, words
):
    space = _space(tmp_path, text)
    capfd.readouterr()
    assert _tune(cache, tmp_path, "--trials", "3", space=space) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {space}: ") and words in err, err
    assert not (tmp_path / "study" / "study.db").exists()  # no study, no failed trial


@pytest.mark.parametrize(("epochs", "warmup"), [(25, 9), (3, 1), (1, 1)])
def test_no_trial_is_pruned_in_the_first_third_of_its_epochs(tmp_path, epochs, warmup):
    """Early epochs run at a few percent of the OneCycle peak rate, where trials cannot be told apart: a
    trial far below the median is kept through the warm-up epochs (steps count epochs from 1) and only
    cut after them."""
    from types import SimpleNamespace

    import optuna

    from train.tune import _open_study, warmup_epochs

    assert warmup_epochs(epochs) == warmup
    study = _open_study(tmp_path / "study.db", "study", SimpleNamespace(metric="acc", epochs=epochs))
    for _ in range(2):  # the startup trials: good at every epoch
        good = study.ask()
        for epoch in range(1, epochs + 1):
            good.report(1.0, epoch)
        study.tell(good, 1.0)
    bad = study.ask()
    for epoch in range(1, warmup + 1):
        bad.report(0.0, epoch)
        assert not bad.should_prune(), f"pruned at epoch {epoch} of {epochs}"
    if warmup < epochs:
        bad.report(0.0, warmup + 1)
        assert bad.should_prune()
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
