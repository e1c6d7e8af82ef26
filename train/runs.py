"""`runs`: one table comparing finished training runs, grouped by cache key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from core.errors import BadInputError

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
