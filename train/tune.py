"""`tune`: Optuna hyper-parameter search over one decoded cache, resumable.

TPE proposes each trial (train/tune_space.py says over what); every trial is a normal run
``<out>/<name>/trial-<n>`` whose per-epoch validation metric goes to a median pruner. The study lives in
``<out>/<name>/study.db`` (SQLite): the same command again continues until the study holds ``--trials``
finished (complete or pruned) trials, and a trial a kill interrupted is marked failed and proposed again.
At the end: the best trial, parameter importances, and ``optimization_history.png``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.config import given_options
from core.errors import BadInputError
from train.arrays import cache_fields, decode_cache
from train.experiment_config import TuneConfig
from train.jobs import Job, run_job
from train.tune_space import DEFAULT_SPACE, overrides, possible_streams, read_space

SQLITE_MAGIC = b"SQLite format 3\x00"


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
    study_dir.mkdir(parents=True, exist_ok=True)
    db = study_dir / "study.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_study(db, study_dir.name, base)
    _retry_interrupted(study, study_dir)
    remaining = cfg.trials - len(_finished(study))
    if remaining > 0:
        if len(study.trials):
            print(f"resuming study {db}: {len(_finished(study))} of {cfg.trials} trials finished", flush=True)
        fields = cache_fields(Path(base.cache), *possible_streams(space, base))
        decoded = decode_cache(Path(base.cache), fields, study_dir)
        try:
            study.optimize(lambda t: _objective(t, space, base, study_dir, decoded), n_trials=remaining)
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
            direction="minimize" if base.metric == "loss" else "maximize",
            sampler=optuna.samplers.TPESampler(seed=base.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
            load_if_exists=True,
        )
    except (SQLAlchemyError, ValueError, RuntimeError) as e:
        reason = " ".join(str(getattr(e, "orig", None) or e).split())[:160]  # the driver's words
        raise BadInputError(f"{db}: cannot open the Optuna study ({reason}); {hint}") from None


def _finished(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def _retry_interrupted(study: Any, study_dir: Path) -> None:
    """Trials still RUNNING were killed: mark them failed, drop their half runs, propose them again."""
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
