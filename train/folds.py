"""`train --folds K|loso`: cross-validation over the cache's train+val sequences, test held out.

Folds are formed in memory from the stored sequences: no encoder runs, no split file is rewritten, and
the test split is neither decoded nor scored. A subject (train/subjects.py) never sits on both sides of
a fold; when the cache knows no subjects, a video (with its augmented copies) is the unit instead. The
class balance of the folds follows the data (scikit-learn's StratifiedGroupKFold). Each fold is a normal
run in ``<out>/<name>/fold-<i>`` (with fold.json), then ``summary.json`` holds per-fold metrics and
mean ± std.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from cache.schema import decode_id
from core.atomic import write_json_atomic
from core.errors import BadInputError
from core.ranks import process_group
from train.arrays import cache_fields, decode_cache
from train.config import TrainConfig
from train.distributed import run_jobs_on_ranks
from train.jobs import NOT_COMPARED, Job, is_finished, options_digest, refuse_run_folder
from train.runtime import open_manifest, split_count, split_path
from train.subjects import subjects_of, video_id

POOL = ("train", "val")
METRICS = (("accuracy", "val accuracy"), ("f1_macro", "val macro F1"), ("loss", "val loss"))


def make_folds(
    labels: np.ndarray,
    groups: list[str],
    folds: str,
    seed: int,
    subjects_known: bool,
    class_names: list[str] | None = None,
) -> list[np.ndarray]:
    """Validation indices of each fold; every sequence is in exactly one, groups never split.

    ``folds``: "loso" (one fold per subject) or a count K >= 2, at most the number of groups the
    scarcest class spans, so every fold validates (and trains) on every class.
    """
    names = sorted(set(groups))
    unit = "subjects" if subjects_known else "videos"
    if folds == "loso":
        if not subjects_known:
            raise BadInputError(
                "--folds loso needs subjects, and this cache has none: extract with --group-regex "
                "(e.g. '^(s\\d+)_'), or use --folds K"
            )
        return [np.flatnonzero(np.array(groups) == s) for s in names]
    try:
        k = int(folds)
    except ValueError:
        raise BadInputError(f"--folds {folds!r}: expected a number of folds (>= 2) or 'loso'") from None
    if k < 2:
        raise BadInputError(f"--folds {k}: need at least 2 folds")
    allowed, scarce = _most_folds(labels, groups)
    if k > allowed:
        label = repr(class_names[scarce]) if class_names and 0 <= scarce < len(class_names) else str(scarce)
        scarcity = f"class {label} spans only {allowed} of them"
        advice = (
            f"use --folds {allowed} or fewer" if allowed >= 2 else "K folds need 2 or more for every class"
        )
        advice += " (or --folds loso)" if subjects_known else ""
        if k > len(names):
            why = f"; {scarcity}" if allowed < len(names) else ""
            raise BadInputError(
                f"--folds {k} is more than the {len(names)} {unit} in the cache's train+val splits"
                f"{why}; {advice}"
            )
        raise BadInputError(
            f"--folds {k}: the cache's train+val splits hold {len(names)} {unit} and {scarcity}, "
            f"but each fold must validate on every class; {advice}"
        )
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    # sklearn's "fewer members than n_splits" warning: ruled out above, yet it may still say it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = [val for _, val in splitter.split(np.zeros(len(labels)), labels, groups)]
    if any(len(v) == 0 for v in out):
        raise BadInputError(f"--folds {k}: a fold came out empty; use fewer folds")
    return out


def _most_folds(labels: np.ndarray, groups: list[str]) -> tuple[int, int]:
    """The most folds every class allows (the fewest groups any class spans), and that scarcest class.

    A class spread over g groups can sit on the validation side of at most g folds: asked for more,
    scikit-learn either fails with a traceback or leaves some fold validating without that class.
    """
    spans: dict[int, set[str]] = {}
    for label, group in zip(labels.tolist(), groups, strict=True):
        spans.setdefault(int(label), set()).add(group)
    if not spans:
        return 0, -1
    scarce = min(spans, key=lambda c: (len(spans[c]), c))
    return len(spans[scarce]), scarce


def run_folds(cfg: TrainConfig) -> Path:
    """Train one model per fold over the decoded train+val pool; write and print the summary."""
    from train.fit import _validate

    _validate(cfg)
    cfg = replace(cfg, folds=str(cfg.folds).strip().lower())  # " 3" and "LOSO" are 3 and loso, grouped so
    # One process group for every fold under torchrun: a group set up and torn down per run left ranks
    # meeting in different runs' collectives. Rank 0 alone summarises, once every fold is written.
    with process_group(cfg.device) as ranks:
        manifest = open_manifest(Path(cfg.cache))
        # Named by its options, as a sweep is: the same command again finds the folder and resumes it.
        digest = options_digest(cfg, ignore=NOT_COMPARED)
        cv_dir = Path(cfg.out) / (cfg.name or f"{cfg.streams}-s{cfg.seed}-folds{cfg.folds}-{digest}")
        refuse_run_folder(cv_dir, "cross-validation")
        pool, pool_ids, labels = _pool(Path(cfg.cache), manifest)
        subjects = subjects_of(Path(cfg.cache), manifest, pool_ids)
        groups = subjects if subjects is not None else [video_id(s) for s in pool_ids]
        val_sets = make_folds(
            labels, groups, str(cfg.folds), cfg.seed, subjects is not None, list(manifest["class_names"])
        )
        jobs = [
            _fold_job(cfg, cv_dir, i, len(val_sets), val, pool, pool_ids, groups, subjects is not None)
            for i, val in enumerate(val_sets)
        ]
        cv_dir.mkdir(parents=True, exist_ok=True)
        if any(not is_finished(job) for job in jobs):
            decoded = decode_cache(
                Path(cfg.cache), cache_fields(Path(cfg.cache), cfg.streams), cv_dir, splits=POOL
            )
            try:
                run_jobs_on_ranks(jobs, decoded, ranks)
            finally:
                decoded.remove()
        if ranks.is_main:
            summary = summarize([job.run_dir for job in jobs], cfg)
            write_json_atomic(cv_dir / "summary.json", summary)
            print(format_folds(summary))
    return cv_dir


def _fold_job(
    cfg: TrainConfig,
    cv_dir: Path,
    i: int,
    k: int,
    val: np.ndarray,
    pool: list[tuple[str, int]],
    pool_ids: list[str],
    groups: list[str],
    subjects_known: bool,
) -> Job:
    held = set(val.tolist())
    members: dict[str, list[tuple[str, list[int]]]] = {}
    for split, chosen in (("train", [j for j in range(len(pool)) if j not in held]), ("val", sorted(held))):
        members[split] = [(s, [pool[j][1] for j in chosen if pool[j][0] == s]) for s in POOL]
    extra = {
        "fold": i,
        "folds": k,
        "grouped_by": "subject" if subjects_known else "video",
        "val_groups": sorted({groups[j] for j in held}),
        "val_sequences": [pool_ids[j] for j in sorted(held)],
        "val_count": len(held),
        "train_count": len(pool) - len(held),
    }
    return Job(replace(cfg, out=cv_dir, name=f"fold-{i}"), members, {"fold.json": extra})


def _pool(cache: Path, manifest: dict[str, Any]) -> tuple[list[tuple[str, int]], list[str], np.ndarray]:
    """(split, row) of every train+val sequence, their ids and labels (small datasets only)."""
    pool, ids, labels = [], [], []
    for split in POOL:
        if not split_count(manifest, split):
            continue
        with h5py.File(split_path(cache, manifest, split), "r", locking=False) as h5:
            ids += [decode_id(raw) for raw in h5["sequence_ids"][...]]
            labels.append(h5["labels"][...].astype(np.int64))
        pool += [(split, i) for i in range(split_count(manifest, split))]
    return pool, ids, np.concatenate(labels)


def summarize(run_dirs: list[Path], cfg: TrainConfig) -> dict[str, Any]:
    """Per-fold validation metrics (from each run's report.json) and their mean and sample std."""
    folds = []
    for run_dir in run_dirs:
        val = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))["val"]
        fold = json.loads((run_dir / "fold.json").read_text(encoding="utf-8"))
        folds.append({"run": run_dir.name, **fold, **{m: float(val[m]) for m, _ in METRICS}})
    stats = {
        m: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
        for m, _ in METRICS
        if (v := [f[m] for f in folds])
    }
    return {
        "folds_arg": str(cfg.folds),
        "streams": cfg.streams,
        "seed": cfg.seed,
        "folds": folds,
        "mean_std": stats,
    }


def format_folds(summary: dict[str, Any]) -> str:
    lines = [f"{'fold':<6}{'val':>5}  " + "  ".join(f"{label:>13}" for _, label in METRICS) + "  val groups"]
    for f in summary["folds"]:
        groups = ", ".join(f["val_groups"][:4]) + (" ..." if len(f["val_groups"]) > 4 else "")
        metrics = "  ".join(f"{f[m]:>13.4f}" for m, _ in METRICS)
        lines.append(f"{f['fold']:<6}{f['val_count']:>5}  {metrics}  {groups}")
    ms = summary["mean_std"]
    lines.append(
        f"{'mean':<11}  " + "  ".join(f"{ms[m]['mean']:.4f} ± {ms[m]['std']:.4f}" for m, _ in METRICS)
    )
    lines.append(f"{len(summary['folds'])} folds over train+val; the test split was held out")
    return "\n".join(lines)
