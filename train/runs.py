"""`runs`: tables comparing finished training runs.

``list_runs``: one row per run, one block per cache key. ``compare_runs`` (the `runs` command): runs that
differ only in seed or fold are one group, shown with mean ± std (sample std) and their count.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.atomic import atomic_path, refuse_unwritable
from core.config import split_names
from core.errors import BadInputError
from train.config import RunsConfig

COLUMNS = ("name", "streams", "epochs", "lr", "seed", "best", "test acc")


def list_runs(runs_dir: Path) -> str:
    """A plain-text table of the runs under ``runs_dir``; one block per cache key."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise BadInputError(f"{runs_dir}: runs folder not found; pass the --out folder used by train")
    rows = [r for d in sorted(runs_dir.iterdir()) if d.is_dir() and (r := _read_run(d)) is not None]
    if not rows:
        return f"no runs in {runs_dir}"
    blocks = []
    for key in sorted({r["key"] for r in rows}):
        group = [r["cells"] for r in rows if r["key"] == key]
        cache = next(r["cache"] for r in rows if r["key"] == key)
        blocks.append(f"cache {key} ({cache})\n{_table(group)}")
    return "\n\n".join(blocks)


def _read_run(run_dir: Path) -> dict[str, Any] | None:
    """A run's row, from config.yaml + run.json (never the checkpoint: those are large)."""
    cfg_path, info_path = run_dir / "config.yaml", run_dir / "run.json"
    if not cfg_path.is_file():
        return None
    try:
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    except (yaml.YAMLError, json.JSONDecodeError, OSError):
        return None
    if not isinstance(cfg, dict) or not isinstance(info, dict):
        return None
    best = info.get("best") or {}
    test = info.get("test") or {}
    if best.get("value") is not None:
        best_cell = (
            f"{best.get('split', 'val')} {best.get('metric', '?')} {best['value']:.4f} @{best.get('epoch')}"
        )
    else:
        best_cell = "unfinished"
    cells = (
        run_dir.name,
        str(cfg.get("streams", "?")),
        f"{info['epochs_run']}/{cfg.get('epochs', '?')}"
        if "epochs_run" in info
        else f"-/{cfg.get('epochs', '?')}",
        f"{cfg.get('lr', float('nan')):.2g}",
        str(cfg.get("seed", "?")),
        best_cell,
        f"{test['accuracy']:.4f}" if "accuracy" in test else "-",
    )
    return {
        "key": info.get("cache_key", "unknown"),
        "cache": info.get("cache", cfg.get("cache", "?")),
        "cells": cells,
    }


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(COLUMNS)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*COLUMNS), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


# --- grouped comparison: runs that differ only in seed or fold are one group -------------------------

# Config keys that do not define an experiment: runs differing only in these are repeats of one.
REPEAT_KEYS = ("seed", "name", "out", "device", "workers", "preload")
METRICS = ("best", "val_acc", "val_f1", "val_loss", "test_acc", "test_f1")


def compare_runs(cfg: RunsConfig) -> str:
    """Runs under ``cfg.runs_dir`` (sweep and fold folders included) grouped by config, mean ± std each."""
    if cfg.csv is not None:  # before walking what may be a large sweep tree, not once the table is made
        refuse_unwritable(Path(cfg.csv), "--csv")
    runs_dir = Path(cfg.runs_dir)
    if not runs_dir.is_dir():
        raise BadInputError(f"{runs_dir}: runs folder not found; pass the --out folder used by train")
    read = {p.parent: _run_metrics(p.parent) for p in sorted(runs_dir.rglob("run.json"))}  # None: unreadable
    rows = _grouped(cfg, [r for r in read.values() if r is not None])
    left_out = _left_out(runs_dir, [d for d, r in read.items() if r is None])
    if isinstance(rows, str):
        return rows + left_out
    shown, table = rows
    if cfg.csv is not None:
        _write_csv(Path(cfg.csv), shown, table)
    head = [*shown, "n", *METRICS]
    cells = [
        [*(_cell(g["config"].get(k)) for k in shown), str(g["n"]), *(_mean_std(g[m]) for m in METRICS)]
        for g in table
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*c) for c in cells)]
    return "\n".join(lines) + left_out


def _left_out(runs_dir: Path, unreadable: list[Path], shown: int = 3) -> str:
    """Run folders the table leaves out, said under it: a run stopped before its end (config.yaml, no
    run.json) or one whose records cannot be read would otherwise vanish from a comparison unnoticed."""
    unfinished = sorted(
        p.parent for p in runs_dir.rglob("config.yaml") if not (p.parent / "run.json").is_file()
    )
    lines = []
    for folders, what, todo in (
        (unfinished, "not finished (stopped, or still running)", "re-run its command to resume it"),
        (unreadable, "with unreadable config.yaml, run.json or report.json", "retrain it to show it"),
    ):
        if folders:
            names = ", ".join(str(f.relative_to(runs_dir)) for f in folders[:shown])
            more = f" and {len(folders) - shown} more" if len(folders) > shown else ""
            lines.append(f"left out: {len(folders)} run(s) {what}: {names}{more}; {todo}")
    return "".join(f"\n{line}" for line in lines)


def _grouped(cfg: RunsConfig, runs: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]] | str:
    """``runs`` (``_run_metrics`` rows) filtered by --where and grouped; a line when none is left."""
    runs_dir = Path(cfg.runs_dir)
    where = [_parse_where(w) for w in cfg.where]
    for key, _ in where:
        if runs and all(key not in r["config"] for r in runs):
            raise BadInputError(
                f"--where {key}: no run has that option (options: {', '.join(runs[0]['config'])})"
            )
    where = [(k, _streams_spelling(v) if k == "streams" else v) for k, v in where]
    runs = [r for r in runs if all(_matches(r["config"].get(k), v) for k, v in where)]
    if not runs:
        return f"no finished runs in {runs_dir}" + (" match --where" if where else "")
    groups: dict[str, dict[str, Any]] = {}
    for r in runs:
        key = json.dumps(
            {k: v for k, v in r["config"].items() if k not in REPEAT_KEYS}, sort_keys=True, default=str
        )
        g = groups.setdefault(key, {"config": r["config"], "n": 0, **{m: [] for m in METRICS}})
        g["n"] += 1
        for m in METRICS:
            if r[m] is not None:
                g[m].append(r[m])
    table = list(groups.values())
    keys = [k for k in table[0]["config"] if k not in REPEAT_KEYS]
    shown = [k for k in keys if len({_cell(g["config"].get(k)) for g in table}) > 1] or ["streams"]
    if cfg.sort:
        if cfg.sort not in METRICS:
            raise BadInputError(f"--sort {cfg.sort}: not a metric (choose from {', '.join(METRICS)})")
        sign = 1.0 if cfg.sort.endswith("loss") else -1.0
        table.sort(key=lambda g: sign * float(np.mean(g[cfg.sort])) if g[cfg.sort] else float("inf"))
    return shown, table


def _run_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's config and headline metrics (config.yaml, run.json, report.json)."""
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        report_path = run_dir / "report.json"
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    except (OSError, yaml.YAMLError, json.JSONDecodeError):
        return None
    if not isinstance(cfg, dict) or not isinstance(info, dict) or not isinstance(report, dict):
        return None
    cfg["cache_key"] = info.get("cache_key")
    # Seeds scored on two splits of one cache (re-split in between) are no repeats of one experiment.
    cfg["split"] = str(info["splits_sha256"])[:8] if info.get("splits_sha256") else None
    if isinstance(cfg.get("streams"), str):  # 'twelve,hands' and 'twelve+hands' are one experiment
        cfg["streams"] = _streams_spelling(cfg["streams"])
    val, test = report.get("val") or {}, report.get("test") or info.get("test") or {}
    return {
        "config": cfg,
        "best": (info.get("best") or {}).get("value"),
        "val_acc": val.get("accuracy"),
        "val_f1": val.get("f1_macro"),
        "val_loss": val.get("loss"),
        "test_acc": test.get("accuracy"),
        "test_f1": test.get("f1_macro"),
    }


def _streams_spelling(text: str) -> str:
    """One spelling of a ``--streams`` value: its names joined by '+', as run folders name them, each once
    (``twelve,twelve`` trains the model of ``twelve``)."""
    return "+".join(dict.fromkeys(split_names(text))) or text


def _parse_where(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise BadInputError(f"--where {text!r}: expected FLAG=VALUE, e.g. --where streams=all")
    return key.replace("-", "_"), value


def _matches(have: Any, want: str) -> bool:
    if isinstance(have, (int, float)) and not isinstance(have, bool):
        try:
            return float(want) == float(have)
        except ValueError:
            return False
    return str(have).lower() == want.lower() if isinstance(have, bool) else str(have) == want


def _cell(v: Any) -> str:
    return format(v, "g") if isinstance(v, float) else str(v)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def _write_csv(path: Path, shown: list[str], table: list[dict[str, Any]]) -> None:
    """The compared table, written whole and atomically: an interrupted ``runs`` never leaves a
    truncated table where a plotting script would read it as complete."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*shown, "n", *(f"{m}_{s}" for m in METRICS for s in ("mean", "std"))])
        for g in table:
            stats = []
            for m in METRICS:
                vals = g[m]
                stats += [
                    f"{np.mean(vals):.6g}" if vals else "",
                    f"{np.std(vals, ddof=1):.6g}" if len(vals) > 1 else "",
                ]
            writer.writerow([*(_cell(g["config"].get(k)) for k in shown), g["n"], *stats])
