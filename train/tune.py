"""`tune`: Optuna hyper-parameter search over one decoded cache, resumable.

TPE proposes each trial (train/tune_space.py says over what); every trial is a normal run
``<out>/<name>/trial-<n>`` whose per-epoch validation metric goes to a median pruner, which cuts none in the
first third of the epochs (``warmup_epochs``). The study lives in ``<out>/<name>/study.db`` (SQLite): the same
command again continues until the study holds ``--trials`` finished (complete or pruned) trials, and a trial a
kill or Ctrl-C interrupted is marked failed and proposed again with its parameters. The study records what
defines it (the cache key, the space and the fixed train options, the metric among them) and refuses to resume
with others, which would mix trials that cannot be compared. At the end: the best trial, parameter
importances, and ``optimization_history.png``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.config import config_to_dict, given_options
from core.errors import BadInputError
from core.ranks import torchrun_world
from train.arrays import cache_fields, decode_cache
from train.experiment_config import TuneConfig
from train.jobs import NOT_COMPARED, Job, refuse_run_folder, run_job
from train.runtime import open_manifest
from train.tune_space import DEFAULT_SPACE, Param, overrides, possible_streams, read_space

SQLITE_MAGIC = b"SQLite format 3\x00"
SETTINGS = "tune_settings"  # the study's user attribute: what a resumed study must be run with


def run_tune(cfg: TuneConfig) -> Path:
    """Run trials until the study holds ``cfg.trials`` finished ones; print and plot the outcome."""
    import optuna

    from train.fit import _validate

    base = cfg.train
    _validate(base)
    if cfg.trials < 1:
        raise BadInputError("--trials must be at least 1")
    if base.folds:
        raise BadInputError("--folds does not combine with tune; cross-validate the best config afterwards")
    if torchrun_world() > 1:  # each rank would ask the study for its own trial, then meet in DDP's all-reduce
        raise BadInputError(
            "tune does not run under torchrun: run it as one process (trials are small), then train the "
            "best config under torchrun"
        )
    space = read_space(cfg.space, base, given_options(cfg))
    if cfg.space is None:
        kept = ", ".join(name for name in DEFAULT_SPACE if name not in space)
        less = f", less {kept} as given" if kept else ""
        print(
            f"space: {', '.join(space)} (the default{less}; pass --space FILE to search others, such as "
            "streams and fusion)",
            flush=True,
        )
    study_dir = Path(base.out) / (base.name or f"tune-{base.streams}-{base.metric}")
    refuse_run_folder(study_dir, "study")
    study_dir.mkdir(parents=True, exist_ok=True)
    db = study_dir / "study.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_study(db, study_dir.name, base)
    _check_settings(study, db, _settings(base, space))
    _retry_interrupted(study, study_dir)
    study.sampler = optuna.samplers.TPESampler(seed=_sampler_seed(base.seed, len(study.trials)))
    remaining = cfg.trials - len(_finished(study))
    if remaining > 0:
        if len(study.trials):
            print(f"resuming study {db}: {len(_finished(study))} of {cfg.trials} trials finished", flush=True)
        fields = cache_fields(Path(base.cache), *possible_streams(space, base))
        decoded = decode_cache(Path(base.cache), fields, study_dir)
        try:
            _run_trials(study, lambda t: _objective(t, space, base, study_dir, decoded), remaining)
        finally:
            decoded.remove()
    print(_outcome(study, db, base.metric))
    _plot_history(study, base.metric, study_dir / "optimization_history.png")
    return study_dir


def _open_study(db: Path, name: str, base: Any) -> Any:
    """Create or load the study; a damaged database is named and left exactly as it is."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    hint = "it is left untouched: move it away to start a new study, or pass another --name"
    if db.exists() and db.read_bytes()[: len(SQLITE_MAGIC)] != SQLITE_MAGIC:
        raise BadInputError(f"{db}: not an Optuna study (no SQLite database); {hint}")
    try:
        return optuna.create_study(
            study_name=name,
            storage=optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}"),
            direction=_direction(base.metric),
            # Steps are epochs counted from 1: pruning may start after the warm-up epochs, not during them.
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=2, n_warmup_steps=warmup_epochs(base.epochs) + 1
            ),
            load_if_exists=True,
        )
    except (SQLAlchemyError, ValueError, RuntimeError) as e:
        reason = " ".join(str(getattr(e, "orig", None) or e).split())[:160]  # the driver's words
        raise BadInputError(f"{db}: cannot open the Optuna study ({reason}); {hint}") from None


def warmup_epochs(epochs: int) -> int:
    """The first third of the epochs (at least one) no trial is pruned in: early on the OneCycle rate is a
    few percent of its peak, so every trial looks alike and a median cut there is noise. The pruner is not
    stored in study.db nor in its recorded settings, so a study made with another warm-up resumes as it was
    (its pruned trials stay pruned) and its remaining trials use this one."""
    return max(1, -(-epochs // 3))


def _direction(metric: str) -> str:
    return "minimize" if metric == "loss" else "maximize"


def _settings(base: Any, space: dict[str, Param]) -> dict[str, Any]:
    """What defines the study, as JSON: the cache's key (the folder may move), the space, and every train
    option a trial does not draw that changes what it learns (the metric among them)."""
    key = open_manifest(Path(base.cache)).get("key") or Path(base.cache).name
    skip = {*NOT_COMPARED, "cache", "folds", *space}
    options = {k: v for k, v in config_to_dict(base).items() if k not in skip}
    ranges = {name: {k: v for k, v in asdict(p).items() if k != "name"} for name, p in space.items()}
    return json.loads(json.dumps({"cache_key": key, "options": options, "space": ranges}, default=str))


def _check_settings(study: Any, db: Path, settings: dict[str, Any]) -> None:
    """Record a new study's settings; refuse to resume one with others, in one line, before any trial.

    A study made before settings were recorded resumes unchecked, unless its direction betrays another
    metric (a loss would be maximised, and its best trial would be the worst)."""
    from optuna.study import StudyDirection

    recorded = study.user_attrs.get(SETTINGS)
    if not study.trials:  # nothing to mix with: (re)record
        study.set_user_attr(SETTINGS, settings)
        return
    differ: list[str] = []
    if recorded is None:
        metric = settings["options"]["metric"]
        if study.direction != StudyDirection[_direction(metric).upper()]:
            differ.append(
                f"direction {study.direction.name.lower()} (now {_direction(metric)}, for {metric})"
            )
    else:
        if recorded.get("cache_key") != settings["cache_key"]:
            differ.append(f"cache key {recorded.get('cache_key')} (now {settings['cache_key']})")
        # Options both record: one searched now but fixed then (or the reverse) is a change of space, and
        # an option a newer version added is not held against an older study.
        old, new = recorded.get("options", {}), settings["options"]
        differ += [
            f"{k} {old[k]} (now {new[k]})" for k in sorted(old.keys() & new.keys()) if old[k] != new[k]
        ]
        old, new = recorded.get("space", {}), settings["space"]
        changed = [
            f"{k} {'added' if k not in old else 'removed' if k not in new else 'changed'}"
            for k in sorted({*old, *new})
            if old.get(k) != new.get(k)
        ]
        if changed:
            differ.append(f"space: {', '.join(changed)}")
    if differ:
        raise BadInputError(
            f"{db}: the study was made with other settings ({'; '.join(differ)}); re-run it with its own "
            "options and space, or choose another --name for a new study"
        )


def _sampler_seed(seed: int, trials: int) -> int:
    """A fresh study draws from ``--seed`` itself (reproducible); a resumed one mixes in the trials it holds,
    so it draws new parameters instead of the first trials' over again."""
    return seed if trials == 0 else int(np.random.SeedSequence([seed, trials]).generate_state(1)[0])


def _run_trials(study: Any, objective: Callable[[Any], float], n: int) -> None:
    """``study.optimize`` by ask and tell, less its handling of Ctrl-C: Optuna marks the trial failed (so
    it would never be retried) and logs a traceback. Here it stays RUNNING, as a kill leaves it, and the
    next run retries it (``_retry_interrupted``); the CLI prints its one 'interrupted' line."""
    import optuna
    from optuna.trial import TrialState

    for _ in range(n):
        trial = study.ask()
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except KeyboardInterrupt:
            raise
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)


def _finished(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def _retry_interrupted(study: Any, study_dir: Path) -> None:
    """Trials still RUNNING were killed or stopped by Ctrl-C: mark them failed, drop their half runs, and
    propose their parameters again."""
    from optuna.trial import TrialState

    for t in study.trials:
        if t.state == TrialState.RUNNING:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            shutil.rmtree(study_dir / _trial_name(t.number), ignore_errors=True)
            study.enqueue_trial(t.params, skip_if_exists=False)


def _trial_name(number: int) -> str:
    return f"trial-{number:04d}"


def _objective(trial: Any, space: dict, base: Any, study_dir: Path, decoded: Any) -> float:
    import optuna

    from train.fit import _validate

    params = {name: p.suggest(trial) for name, p in space.items()}
    run_cfg = replace(base, **overrides(params), out=study_dir, name=_trial_name(trial.number))
    _validate(run_cfg)

    def report(epoch: int, row: dict[str, Any]) -> None:
        value = row[f"val_{base.metric}"]
        if value != value:  # no val split: prune on what selects best.pt
            value = row[f"train_{base.metric}"]
        trial.report(float(value), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: {base.metric} {value:.4f} below the median")

    run_dir = run_job(decoded, Job(run_cfg), report)
    return float(json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["best"]["value"])


def _outcome(study: Any, db: Path, metric: str) -> str:
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    if not complete:
        return f"study {db}: no complete trial yet ({pruned} pruned)"
    best = study.best_trial
    lines = [
        f"study {db}: {len(complete)} complete, {pruned} pruned",
        f"best trial {best.number} ({_trial_name(best.number)}): {metric} {best.value:.4f}",
        *(f"  {k} = {v}" for k, v in best.params.items()),
        # the trial's own config.yaml repeats it; a new name keeps it from the trial's folder
        f"retrain it: pipeline.py train --config {db.parent / _trial_name(best.number) / 'config.yaml'} "
        "--name NEW_NAME",
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
        lines.append("parameter importances: " + ", ".join(f"{k} {v:.3f}" for k, v in importances.items()))
    except (RuntimeError, ValueError, ZeroDivisionError) as e:
        lines.append(f"parameter importances: not available yet ({' '.join(str(e).split())[:100]})")
    return "\n".join(lines)


def _plot_history(study: Any, metric: str, path: Path) -> None:
    """Each complete trial's value and the best so far, by trial number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not done:
        return
    pick = min if metric == "loss" else max
    best = [pick(t.value for t in done[: i + 1]) for i in range(len(done))]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([t.number for t in done], [t.value for t in done], "o", label="trial")
    ax.step([t.number for t in done], best, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"best {metric}")
    ax.set_title("Optimisation history")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
