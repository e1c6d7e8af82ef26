"""`sweep`: every combination of a grid of train options, as normal runs over one decoded cache.

The grid names train flags (``lr=1e-3,3e-3 streams=all,twelve seed=0,1,2`` or a YAML mapping of flag to
list); each value is checked as the flag itself would be (core/config.py). Runs land in
``<out>/<name>/<flag=value_...>``, each with its own config.yaml; the default name is a hash of the grid and
the shared options, so the same command again resumes the sweep and skips finished runs. Run names list the
flags in one fixed order (sorted, or the order a sweep folder recorded), so the same grid written with its
keys or values in another order, or a value spelled another way (``1e-3``, ``0.001``), resumes the same
runs.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from core.config import coerce_option, read_yaml_mapping
from core.errors import BadInputError, UserError
from core.ranks import process_group
from train.arrays import cache_fields, decode_cache
from train.config import TrainConfig
from train.distributed import run_jobs_on_ranks
from train.experiment_config import SweepConfig
from train.jobs import NOT_COMPARED, Job, is_finished, options_digest, refuse_run_folder

# A grid varies what a run learns; where runs go and which cache they read are the sweep's own.
FIXED = ("cache", "out", "name", "folds")


def parse_grid(grid: str) -> dict[str, list[Any]]:
    """``'flag=v1,v2 ...'`` or a YAML file ``{flag: [values]}`` -> flag -> checked values."""
    if not grid.strip():
        raise BadInputError("--grid is required: e.g. --grid 'lr=1e-3,3e-3 seed=0,1,2' or a YAML file")
    path = Path(grid)
    if grid.endswith((".yaml", ".yml")) or path.is_file():
        source, raw = str(path), _read_grid_file(path)
    else:
        source, raw = "--grid", {}
        for token in grid.split():
            name, sep, values = token.partition("=")
            if not sep or not name or not values:
                raise BadInputError(f"--grid: {token!r} is not flag=value[,value...]")
            if name in raw:
                raise BadInputError(
                    f"--grid: '{name}' is given twice; list all its values once: {name}=v1,v2"
                )
            raw[name] = [yaml.safe_load(v) if v else v for v in values.split(",")]
    out: dict[str, list[Any]] = {}
    for name, values in raw.items():
        key = str(name).replace("-", "_")
        if key in FIXED:
            raise BadInputError(f"{source}: '{name}' cannot vary in a sweep; pass --{key} once instead")
        if key in out:  # weight-decay and weight_decay are one flag
            raise BadInputError(f"{source}: '{name}' is given twice; list all its values under one key")
        values = values if isinstance(values, list) else [values]
        if not values:
            raise BadInputError(f"{source}: '{name}' has no values")
        out[key] = [coerce_option(TrainConfig, key, v, source) for v in values]
        _refuse_repeats(source, name, values, out[key])
    return out


def _refuse_repeats(source: str, name: str, raw: list[Any], values: list[Any]) -> None:
    """Two values that name the same run folder would train it once, then fail on the taken folder."""
    seen: dict[str, Any] = {}
    for spelled_raw, value in zip(raw, values, strict=True):
        spelled = _spelled(value)
        if spelled in seen:
            first, again = str(seen[spelled]), str(spelled_raw)
            alias = "" if first == again else f" (as {first} and {again})"
            raise BadInputError(f"{source}: '{name}' lists {spelled} twice{alias}; give each value once")
        seen[spelled] = spelled_raw


def _read_grid_file(path: Path) -> dict[str, Any]:
    data = read_yaml_mapping(path, "train flags to lists of values")
    if not data:
        raise BadInputError(f"{path}: expected a mapping of train flags to lists of values")
    return data


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def _sweep_dir(base: TrainConfig, grid: dict[str, list[Any]]) -> Path:
    """``<out>/<name>``, or ``sweep-<digest>`` of what the sweep trains: each key's values in one order,
    and the options less those that change no result (``--device``, ``--workers``, ``--preload``), so the
    same sweep written another way or run on another device finds its folder. A folder named by the
    earlier digest (values as typed, every option) is still found."""
    if base.name:
        return Path(base.out) / base.name
    values = {k: sorted(v, key=lambda value: json.dumps(value, default=str)) for k, v in grid.items()}
    now = Path(base.out) / f"sweep-{options_digest(base, values, ignore=NOT_COMPARED)}"
    earlier = Path(base.out) / f"sweep-{options_digest(base, grid)}"
    return earlier if earlier.is_dir() and not now.is_dir() else now


def key_order(sweep_dir: Path, grid: dict[str, list[Any]]) -> list[str]:
    """The order run names list the grid's flags: fixed per sweep folder, whatever order the user typed.

    A new sweep sorts them. A folder keeps the order its sweep.json recorded; one made before the order
    was recorded named its runs in the order typed then, which its first recorded run name shows.
    """
    keys = sorted(grid)
    recorded = _read_sweep_json(sweep_dir)
    old_keys = recorded.get("keys")
    if isinstance(old_keys, list) and sorted(map(str, old_keys)) == keys:
        return [str(k) for k in old_keys]
    runs = recorded.get("runs")
    first = f"_{runs[0]}" if isinstance(runs, list) and runs and isinstance(runs[0], str) else ""
    at = {k: first.find(f"_{k}=") for k in keys}  # "_lr=" cannot match inside "_label_smoothing="
    return sorted(keys, key=at.__getitem__) if all(i >= 0 for i in at.values()) else keys


def _read_sweep_json(sweep_dir: Path) -> dict[str, Any]:
    """What an earlier invocation recorded; unreadable counts as nothing (it is rewritten anyway)."""
    try:
        data = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_name(combo: dict[str, Any]) -> str:
    """A run folder name that says what the run varies, e.g. ``lr=0.001_seed=0_streams=all``."""
    return "_".join(f"{k}={_spelled(v)}" for k, v in combo.items())


def _spelled(value: Any) -> str:
    """A value as run names write it: 1e-3 and 0.001 are both ``0.001``."""
    text = format(value, "g") if isinstance(value, float) else str(value)
    return text.replace("/", "-").replace(" ", "")


def plan(cfg: SweepConfig) -> tuple[Path, list[str], list[Job]]:
    """The sweep folder, its key order and one job per combination; every config is checked first."""
    from train.fit import _validate

    if cfg.parallel < 1:
        raise BadInputError("--parallel must be at least 1")
    grid = parse_grid(cfg.grid)
    base = cfg.train
    if base.folds:
        raise BadInputError(
            "--folds does not combine with sweep; cross-validate one config with train --folds"
        )
    sweep_dir = _sweep_dir(base, grid)
    refuse_run_folder(sweep_dir, "sweep")
    keys = key_order(sweep_dir, grid)
    grid = {k: grid[k] for k in keys}
    jobs = []
    for combo in combinations(grid):
        run_cfg = replace(base, **combo, out=sweep_dir, name=run_name(combo))
        try:
            _validate(run_cfg)
        except UserError as e:
            raise BadInputError(f"--grid: {run_name(combo)}: {e}") from None
        jobs.append(Job(run_cfg))
    return sweep_dir, keys, jobs


def run_sweep(cfg: SweepConfig) -> Path:
    """Decode the cache once, run every unfinished combination, print the grouped comparison.

    Under torchrun the command holds one process group across all its runs (a group set up and torn
    down per run left ranks meeting in different runs' collectives); rank 0 alone writes sweep.json,
    and prints the comparison once every run is written.
    """
    from train.config import RunsConfig
    from train.runs import compare_runs

    sweep_dir, keys, jobs = plan(cfg)
    with process_group(cfg.train.device) as ranks:
        if ranks.distributed and cfg.parallel > 1:
            raise BadInputError("--parallel does not combine with torchrun: the ranks already share each run")
        if ranks.is_main:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            (sweep_dir / "sweep.json").write_text(
                json.dumps({"grid": cfg.grid, "keys": keys, "runs": [j.cfg.name for j in jobs]}, indent=2),
                encoding="utf-8",
            )
        pending = ranks.from_main(lambda: [j.cfg.name for j in jobs if not is_finished(j)])
        if not pending:
            if ranks.is_main:
                print(f"resuming: all {len(jobs)} runs already finished", flush=True)
        else:
            fields = cache_fields(
                Path(cfg.train.cache), *{j.cfg.streams for j in jobs if j.cfg.name in pending}
            )
            decoded = decode_cache(Path(cfg.train.cache), fields, sweep_dir)
            try:
                run_jobs_on_ranks(jobs, decoded, ranks, cfg.parallel)
            finally:
                decoded.remove()
        if ranks.is_main:
            print(compare_runs(RunsConfig(runs_dir=sweep_dir)))
    return sweep_dir
