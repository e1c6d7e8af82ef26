"""Config dataclasses of `sweep` and `tune`: the train options plus their own.

Nesting ``TrainConfig`` makes every train flag a flag here too (cli/config_args.py flattens it); those
give the values every run shares, and the grid or search space varies the rest. ``--name`` names the
sweep's or study's folder under ``--out``; the same command again resumes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from train.config import TrainConfig


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class SweepConfig:
    """`pipeline.py sweep`: train every combination of a grid over one decoded cache."""

    # --help of a nested train flag that means something else here
    FLAG_HELP: ClassVar[dict[str, str]] = {
        "name": "sweep folder name under --out (default: sweep-<hash of the grid and the shared options>)",
        "folds": "refused here: cross-validate the best config with train --folds",
    }

    train: TrainConfig
    grid: str = _f("", "'flag=v1,v2 flag=v1,...' over train flags, or a YAML file {flag: [values]}")
    parallel: int = _f(1, "trainings at once, sharing one decoded copy of the cache")


@dataclass
class TuneConfig:
    """`pipeline.py tune`: Optuna search (TPE, median pruning) over train options on one cache."""

    FLAG_HELP: ClassVar[dict[str, str]] = {
        "name": "study folder name under --out (default: tune-<streams>-<metric>)",
        "folds": "refused here: cross-validate the best config with train --folds",
    }

    train: TrainConfig
    trials: int = _f(20, "finished trials the study should hold (a resumed study counts its old ones)")
    space: Path | None = _f(
        None,
        "YAML search space: flag: {low, high[, log]} or flag: [choices]; without it lr, weight_decay, "
        "hidden and dropout are searched",
    )
