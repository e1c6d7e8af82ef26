"""The `tune` search space: a YAML file over train flags, checked before any trial runs.

    lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # a range: float flags -> suggest_float, int -> suggest_int
    hidden: [64, 128, 256]                        # choices -> suggest_categorical
    streams: [twelve, dino-swav]
    fusion: [true, false]                         # true: streams=all (gated fusion); false: streams

Every name is a train flag (or ``fusion``), every bound and choice is checked as that flag would be (its type
here, its value by train's own checks), and an empty range or an empty list of choices is refused: each one
a one-line error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from core.config import coerce_option, read_yaml_mapping
from core.errors import BadInputError, UserError
from train.config import TrainConfig

FIXED = ("cache", "out", "name", "folds")
# Searched when no --space is given: the optimiser and head options every cache can train. Streams and
# fusion depend on what the cache holds, so they are searched only when a space file names them.
DEFAULT_SPACE = {
    "lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
    "weight_decay": {"low": 1.0e-6, "high": 1.0e-2, "log": True},
    "hidden": [64, 128, 256],
    "dropout": {"low": 0.0, "high": 0.5},
}


@dataclass(frozen=True)
class Param:
    """One searched option: a numeric range, or a list of choices."""

    name: str
    low: Any = None
    high: Any = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if isinstance(self.low, int):
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


def read_space(path: Path | None, base: TrainConfig, given: frozenset[str] | None = None) -> dict[str, Param]:
    """Parse and check the space file (None: ``DEFAULT_SPACE`` less the options in ``given``, the ones the
    user set; None there: less those that differ from their default); ``base`` supplies the streams when
    ``streams`` is not searched."""
    src = str(path) if path is not None else "the default space"
    what = "train flags to {low, high} ranges or lists"
    data = read_yaml_mapping(path, what) if path is not None else _default_space(base, given)
    if not data and path is None:
        raise BadInputError(
            f"every option tune searches by default ({', '.join(DEFAULT_SPACE)}) was given a value; "
            "pass --space FILE to choose what to search"
        )
    if not data:
        raise BadInputError(f"{path}: expected a mapping of {what}")
    space = {}
    for raw_name, spec in data.items():
        name = str(raw_name).replace("-", "_")
        if name in FIXED:
            raise BadInputError(f"{src}: '{raw_name}' cannot be searched; pass --{name} once instead")
        space[name] = _param(name, spec, src)
    _check_fusion(space, base, src)
    _check_values(space, base, src)
    return space


def _default_space(base: TrainConfig, given: frozenset[str] | None) -> dict[str, Any]:
    """``DEFAULT_SPACE`` less the options given a value of their own (``--hidden 64`` stays fixed, and so
    does ``--hidden 128``, the default, when the command line says it)."""
    if given is not None:
        return {name: spec for name, spec in DEFAULT_SPACE.items() if name not in given}
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    return {name: spec for name, spec in DEFAULT_SPACE.items() if getattr(base, name) == defaults[name]}


def _param(name: str, spec: Any, src: str) -> Param:
    option = "streams" if name == "fusion" else name
    if isinstance(spec, list):
        if not spec:
            raise BadInputError(f"{src}: '{name}' has an empty list of choices")
        if name == "fusion":
            if any(not isinstance(v, bool) for v in spec):
                raise BadInputError(f"{src}: 'fusion' choices must be true or false")
            return Param(name, choices=tuple(dict.fromkeys(spec)))
        return Param(
            name, choices=tuple(dict.fromkeys(coerce_option(TrainConfig, option, v, src) for v in spec))
        )
    if not isinstance(spec, dict) or set(spec) - {"low", "high", "log"} or not {"low", "high"} <= set(spec):
        raise BadInputError(
            f"{src}: '{name}' needs {{low: ..., high: ...[, log: true]}} or a list of choices"
        )
    low = coerce_option(TrainConfig, name, spec["low"], src)
    high = coerce_option(TrainConfig, name, spec["high"], src)
    if not isinstance(low, (int, float)) or isinstance(low, bool):
        raise BadInputError(f"{src}: '{name}' is not numeric; give a list of choices instead of a range")
    if isinstance(low, int):  # a float bound for an int flag was refused above; keep both ints
        high = int(high)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise BadInputError(f"{src}: '{name}': log must be true or false")
    if not low < high:
        raise BadInputError(f"{src}: '{name}' has an empty range (low {low} is not below high {high})")
    if log and low <= 0:
        raise BadInputError(f"{src}: '{name}': a log range needs low > 0 (got {low})")
    return Param(name, low, high, log)


def _check_fusion(space: dict[str, Param], base: TrainConfig, src: str) -> None:
    """fusion: false must leave a single stream to train on."""
    if "fusion" not in space or False not in space["fusion"].choices:
        return
    streams = space["streams"].choices if "streams" in space else (base.streams,)
    if "all" in streams:
        raise BadInputError(
            f"{src}: fusion: false needs single-stream choices, but streams may be 'all'; "
            "search streams: [twelve, dino-swav] (fusion: true is streams=all)"
        )


def _check_values(space: dict[str, Param], base: TrainConfig, src: str) -> None:
    """Every choice and both ends of every range pass train's own checks, so no trial draws a value that
    fails mid-study (train's checks are intervals: a range whose ends pass holds no bad value)."""
    from train.fit import _validate

    for name, p in space.items():
        values = [("choice", v) for v in p.choices] if p.choices else [("low", p.low), ("high", p.high)]
        for which, value in values:
            try:
                _validate(replace(base, **overrides({name: value})))
            except UserError as e:
                raise BadInputError(
                    f"{src}: '{name}' {which} {value!r}: {e}; change it in the space"
                ) from None


def overrides(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled values as train options: ``fusion`` decides whether streams is 'all'."""
    out = {k: v for k, v in params.items() if k != "fusion"}
    if params.get("fusion") is True:
        out["streams"] = "all"
    return out


def possible_streams(space: dict[str, Param], base: TrainConfig) -> set[str]:
    """Every streams value a trial may train: which fields the decoded cache must hold."""
    streams = set(space["streams"].choices) if "streams" in space else {base.streams}
    if "fusion" in space and True in space["fusion"].choices:
        streams.add("all")
    return streams
