"""`train`: fit the heads on a cache, keep the best checkpoint, then evaluate and plot.

Setup lives here; the epoch loops are in train/loop.py.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from cache.manifest import splits_digest
from core.atomic import atomic_path, write_json_atomic
from core.config import config_to_dict, save_config, to_plain
from core.device import resolve_device
from core.errors import BadInputError, CacheError
from core.ranks import Ranks, bar_disable, process_group
from models.heads.model import GestureModel, ModelArgs
from models.heads.normalize import feature_statistics
from train.checkpoint import (
    cache_record,
    save_checkpoint,
    trained_videos,
)
from train.config import TrainConfig
from train.corpus import corpus_held
from train.distributed import (
    eval_sampler,
    gather_epoch,
    gather_eval,
    per_rank_batch,
    set_epoch,
    sync_buffers,
    train_sampler,
    wrap_model,
)
from train.evaluate import evaluate_split, format_summary
from train.loop import evaluate_epoch, train_one_epoch
from train.metrics import is_better
from train.plots import plot_curves
from train.runtime import (
    Loader,
    Precision,
    deterministic_run,
    make_loader,
    make_optimizer,
    open_manifest,
    precision_for,
    split_count,
    split_dataset,
)
from train.signer import signer_objective

CSV_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "train_f1", "val_loss", "val_acc", "val_f1")


def run_train(
    cfg: TrainConfig, source: Any = None, on_epoch: Callable[[int, dict[str, Any]], None] | None = None
) -> Path:
    """Train, write best.pt/last.pt/metrics.csv/config.yaml/report.json/plots; return the run dir.

    One seed fixes weights, shuffling and dropout: the same seed on the same machine gives an
    identical metrics.csv. ``source`` (a train.arrays.SplitSource) supplies already decoded splits
    (sweeps, folds, tune) in place of the cache files; ``on_epoch(epoch, metrics row)`` may stop the
    run by raising (a pruned tune trial).
    """
    _validate(cfg)
    with process_group(cfg.device) as ranks, deterministic_run(cfg.seed):
        return _train(cfg, ranks, source, on_epoch)


@dataclass
class _Run:
    """Everything one training run holds, built once by ``_prepare``."""

    cfg: TrainConfig
    ranks: Ranks
    run_dir: Path
    device: torch.device
    precision: Precision
    model: GestureModel
    net: nn.Module  # what trains: ``model`` itself, or DDP around it under torchrun
    train_loader: Loader
    val_loader: Loader | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: nn.Module
    base: dict[str, Any]  # checkpoint entries that do not change between epochs
    manifest: dict[str, Any]
    source: Any = None  # train.arrays.SplitSource, or None: the cache's split files
    objective: nn.Module | None = None  # signer adversary / SupCon (train/signer.py), or None
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None

    @property
    def selection_split(self) -> str:
        return "val" if self.val_loader is not None else "train"


def _train(cfg: TrainConfig, ranks: Ranks, source: Any = None, on_epoch: Callable | None = None) -> Path:
    run = replace(_prepare(cfg, ranks, source), on_epoch=on_epoch)
    history, best = _fit(run)
    if not ranks.is_main:  # rank 0 alone plots, evaluates and reports
        return run.run_dir
    plot_curves(history, cfg.metric, best["epoch"], run.run_dir / "curves.png")
    run.model.load_state_dict(best["state"])
    reports = _final_reports(run)
    write_json_atomic(
        run.run_dir / "run.json",
        {
            "name": run.run_dir.name,
            "cache": str(cfg.cache),
            "cache_key": run.base["cache_key"],
            "splits_sha256": run.base["splits_sha256"],
            "streams": cfg.streams,
            "world_size": ranks.world_size,
            "epochs_run": len(history),
            "best": {k: best[k] for k in ("metric", "split", "value", "epoch")},
            "test": {k: reports["test"][k] for k in ("accuracy", "f1_macro", "loss")}
            if "test" in reports
            else None,
        },
    )
    return run.run_dir


def _warn_constant_inputs(statistics: dict[str, tuple[torch.Tensor, torch.Tensor]], cache_dir: Path) -> None:
    """A field with the same value in every train frame (hand boxes where no hand was ever detected, a
    stream of fill values) gives its head nothing to learn from; training it would still run, quietly."""
    constant = [
        name for name, (mean, std) in statistics.items() if bool((std <= 1e-6 * (1 + mean.abs())).all())
    ]
    if constant:
        print(
            f"warning: {', '.join(constant)}: the same value in every train frame of cache {cache_dir}; a "
            "head reading only that learns nothing from it (check the extraction, or leave that stream out)",
            file=sys.stderr,
        )


def _prepare(cfg: TrainConfig, ranks: Ranks, source: Any = None) -> _Run:
    """Open the cache, create the run folder, build model, loaders, optimiser and schedule.

    Under torchrun, rank 0 creates the run folder and computes the feature statistics, and every
    rank gets both (train/distributed.py).
    """
    device = resolve_device(cfg.device, ranks)
    cache_dir = Path(cfg.cache)
    manifest = open_manifest(cache_dir) if source is None else source.manifest
    try:  # the choices come from the cache: its recorded fields and the registered heads
        args = ModelArgs.from_manifest(manifest, cfg.streams, cfg.hidden, cfg.dropout)
    except ValueError as exc:
        raise BadInputError(f"{cache_dir}: {exc}") from None
    fields = tuple(args.inputs)
    if split_count(manifest, "train") == 0:
        raise CacheError(
            f"cache {cache_dir} has an empty train split; extract a dataset with training videos"
        )
    has_val = split_count(manifest, "val") > 0
    if not has_val and ranks.is_main:
        print(
            f"warning: cache {cache_dir} has no val sequences; best.pt is picked by train {cfg.metric}",
            file=sys.stderr,
        )
    if source is not None:
        train_ds, val_ds = source.dataset("train", fields), source.dataset("val", fields)
    else:
        train_ds = split_dataset(cache_dir, manifest, "train", fields, cfg.preload)
        val_ds = split_dataset(cache_dir, manifest, "val", fields, cfg.preload) if has_val else None

    run_dir = ranks.from_main(lambda: _make_run_dir(cfg))
    resolved = replace(cfg, name=run_dir.name, device=device.type)
    if ranks.is_main:
        save_config(resolved, run_dir / "config.yaml")

    model = GestureModel(args)
    stats_loader = make_loader(train_ds, 64, False, cfg.seed, cfg.workers, torch.device("cpu"))
    statistics = ranks.from_main(lambda: feature_statistics(stats_loader, fields))
    if ranks.is_main:
        _warn_constant_inputs(statistics, cache_dir)
    model.set_statistics(statistics)
    model = model.to(device)
    net = wrap_model(model, ranks, device)
    if ranks.distributed:  # same weights everywhere (DDP broadcasts rank 0's); dropout masks differ
        torch.manual_seed(cfg.seed + ranks.rank)
    train_ds, objective = signer_objective(cfg, manifest, train_ds, fields, model.embed_dim)
    if objective is not None:
        objective = objective.to(device)
    batch = per_rank_batch(cfg.batch_size, ranks)
    sampler = train_sampler(train_ds, ranks, cfg.seed)
    train_loader = make_loader(train_ds, batch, True, cfg.seed, cfg.workers, device, sampler)
    val_loader = (
        make_loader(val_ds, cfg.batch_size, False, cfg.seed, cfg.workers, device, eval_sampler(val_ds, ranks))
        if val_ds
        else None
    )
    params = [*model.parameters(), *(objective.parameters() if objective is not None else ())]
    optimizer = make_optimizer(params, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=len(train_loader)
    )
    base = {
        "model_args": args.to_dict(),
        "config": config_to_dict(resolved),
        "class_names": list(manifest["class_names"]),
        "cache_key": str(manifest["key"]),
        "cache_path": str(cache_dir.resolve()),  # evaluate finds the cache from another working dir
        "cache": to_plain(cache_record(manifest)),
        "trained_videos": trained_videos(train_ds.sequence_ids),  # evaluate refuses a re-split cache
        # the cache's own splits, not a fold's: a resumed sweep or folds refuses a run of an older split
        "splits_sha256": splits_digest(source.decoded.manifest if source is not None else manifest),
        "versions": {"torch": str(torch.__version__)},
    }
    return _Run(
        cfg=cfg,
        ranks=ranks,
        run_dir=run_dir,
        device=device,
        precision=precision_for(device),
        model=model,
        net=net,
        train_loader=train_loader,
        val_loader=val_loader,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        base=base,
        manifest=manifest,
        source=source,
        objective=objective,
    )


def _fit(run: _Run) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The epoch loop: metrics.csv, best.pt by the selection metric, last.pt, early stopping."""
    cfg, split = run.cfg, run.selection_split
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"metric": cfg.metric, "split": split, "value": None, "epoch": None, "state": None}
    main = run.ranks.is_main
    bar = tqdm(
        range(1, cfg.epochs + 1), desc="epochs", unit="epoch", dynamic_ncols=True, disable=bar_disable()
    )
    for epoch in bar:
        lr = run.optimizer.param_groups[0]["lr"]
        set_epoch(run.train_loader, epoch)
        tr = train_one_epoch(
            run.net,
            run.train_loader,
            run.optimizer,
            run.scheduler,
            run.loss_fn,
            run.precision,
            run.device,
            cfg.grad_clip,
            f"epoch {epoch}",
            gather_epoch if run.ranks.distributed else None,
            run.objective,
        )
        va = _val_metrics(run)
        row = {"epoch": epoch, "lr": lr, **_prefixed("train", tr), **_prefixed("val", va)}
        history.append(row)
        if main:
            _write_csv(run.run_dir / "metrics.csv", history)
        if run.on_epoch is not None:
            run.on_epoch(epoch, row)
        monitored = (va if split == "val" else tr)[cfg.metric]
        state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
        improved = is_better(cfg.metric, monitored, best["value"])
        if improved:
            best.update(value=monitored, epoch=epoch, state=state)
        if main:  # the other ranks hold the same weights and metrics; one writer is enough
            payload = _payload(run, state, epoch, tr, va, best)
            if improved:
                save_checkpoint(run.run_dir / "best.pt", payload)
            save_checkpoint(run.run_dir / "last.pt", payload)
            tqdm.write(_epoch_line(row, cfg.metric, improved), file=sys.stderr)
        bar.set_postfix(best=f"{best['value']:.4f}" if best["value"] is not None else "-")
        # Every rank sees the same gathered metrics, so every rank stops at the same epoch.
        if cfg.patience > 0 and best["epoch"] is not None and epoch - best["epoch"] >= cfg.patience:
            if main:
                tqdm.write(
                    f"early stopping: no {split} {cfg.metric} gain for {cfg.patience} epochs", file=sys.stderr
                )
            break
    bar.close()
    if best["state"] is None:  # every monitored value was NaN (diverged): best.pt = the last weights
        best.update(value=float("nan"), epoch=history[-1]["epoch"], state=state)
        if main:
            save_checkpoint(run.run_dir / "best.pt", _payload(run, state, best["epoch"], tr, va, best))
    return history, best


def _val_metrics(run: _Run) -> dict[str, float]:
    if run.val_loader is None:
        return {"loss": float("nan"), "acc": float("nan"), "f1": float("nan")}
    sync_buffers(run.model, run.ranks)  # evaluate (and checkpoint) rank 0's BatchNorm statistics
    out = evaluate_epoch(run.model, run.val_loader, run.loss_fn, run.precision, run.device, desc="val")
    return gather_eval(out, run.ranks).metrics(run.model.args.num_classes)


def _payload(
    run: _Run,
    state: dict[str, torch.Tensor],
    epoch: int,
    train_metrics: dict[str, float],
    val_metrics: dict[str, float],
    best: dict[str, Any],
) -> dict[str, Any]:
    """A checkpoint: tensors plus plain types only, so weights_only loading works."""
    return {
        **to_plain(run.base),
        "state_dict": state,
        "epoch": epoch,
        "train_metrics": to_plain(train_metrics),
        "val_metrics": to_plain(val_metrics),
        "best_metric": to_plain({k: best[k] for k in ("metric", "split", "value", "epoch")}),
    }


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def _validate(cfg: TrainConfig) -> None:
    """Refuse option values that would crash later (after training, in a plot) or train on NaN: every
    float must be finite (``inf`` passes a ``> 0`` test and turns the schedule into NaN)."""
    floats = (
        cfg.lr,
        cfg.weight_decay,
        cfg.grad_clip,
        cfg.signer_adversarial,
        cfg.supcon,
        cfg.supcon_temperature,
    )
    finite = all(math.isfinite(v) for v in floats)
    checks = [
        (
            finite,
            "--lr, --weight-decay, --grad-clip, --signer-adversarial, --supcon and --supcon-temperature "
            "must be finite numbers",
        ),
        (cfg.epochs >= 1, "--epochs must be at least 1"),
        (cfg.batch_size >= 1, "--batch-size must be at least 1"),
        (cfg.lr > 0, "--lr must be positive"),
        (cfg.weight_decay >= 0, "--weight-decay must be 0 or more"),
        (cfg.grad_clip >= 0, "--grad-clip must be 0 (off) or more"),
        (cfg.patience >= 0, "--patience must be 0 (off) or more"),
        (0 <= cfg.seed < 2**32, "--seed must be in 0 .. 2**32 - 1"),
        (0.0 <= cfg.label_smoothing < 1.0, "--label-smoothing must be in [0, 1)"),
        (0.0 <= cfg.dropout < 1.0, "--dropout must be in [0, 1)"),
        (cfg.hidden >= 1, "--hidden must be at least 1"),
        (cfg.workers >= 0, "--workers must be 0 or more"),
        (bool(cfg.streams.strip(", ")), "--streams must name at least one stream, or all"),
        # an unset shell variable (--folds "$K") would otherwise train one plain run, not cross-validate
        (
            cfg.folds is None or bool(str(cfg.folds).strip()),
            "--folds is empty: give K or loso, or leave it out",
        ),
        (cfg.signer_adversarial >= 0 and cfg.supcon >= 0, "--signer-adversarial and --supcon must be >= 0"),
        (cfg.supcon_temperature > 0, "--supcon-temperature must be positive"),
        (cfg.pseudo_signers >= 0, "--pseudo-signers must be 0 or more"),
    ]
    for ok, message in checks:
        if not ok:
            raise BadInputError(message)


def _make_run_dir(cfg: TrainConfig) -> Path:
    """A fresh folder under cfg.out; an explicit --name that exists is refused, never overwritten."""
    out = Path(cfg.out)
    if cfg.name:
        if cfg.name in (".", "..") or "/" in cfg.name or "\\" in cfg.name:
            raise BadInputError(f"--name {cfg.name!r}: give a plain folder name; --out says where runs go")
        run_dir = out / cfg.name
        if run_dir.exists():
            raise BadInputError(f"{run_dir}: run folder already exists; choose another --name or remove it")
    else:
        streams = cfg.streams.replace(",", "+").replace("/", "_")
        stem = f"{streams}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir, k = out / stem, 1
        while run_dir.exists():
            k += 1
            run_dir = out / f"{stem}-{k}"
    run_dir.mkdir(parents=True)
    return run_dir


def _write_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewritten whole each epoch (tiny) so a crash never leaves a half line."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for row in history:
            writer.writerow([_fmt(row[c]) for c in CSV_COLUMNS])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.6g}"  # NaN (empty val split) → empty cell
    return str(v)


def _epoch_line(row: dict[str, Any], metric: str, improved: bool) -> str:
    val = (
        ""
        if row["val_loss"] != row["val_loss"]
        else (f" | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} f1 {row['val_f1']:.4f}")
    )
    mark = f"  * best {metric}" if improved else ""
    return (
        f"epoch {row['epoch']:3d} | lr {row['lr']:.2e} | train loss {row['train_loss']:.4f} "
        f"acc {row['train_acc']:.4f} f1 {row['train_f1']:.4f}{val}{mark}"
    )


def _final_reports(run: _Run) -> dict[str, dict[str, Any]]:
    """Evaluate the best weights on val and test (train when neither has sequences); print summaries."""
    splits = [s for s in ("val", "test") if split_count(run.manifest, s) > 0] or ["train"]
    if splits == ["train"]:
        print("warning: no val or test sequences; the report describes the train split", file=sys.stderr)
    reports = {}
    with corpus_held():  # the figures of both splits draw over one read of the corpus
        for split in splits:
            cache_dir = Path(run.cfg.cache)
            best_pt = run.run_dir / "best.pt"
            dataset = run.source.dataset(split, run.model.fields) if run.source is not None else None
            report = evaluate_split(
                run.model, run.base, cache_dir, run.manifest, split, run.device, run.run_dir, best_pt, dataset
            )
            if report is not None:
                reports[split] = report
                print(format_summary(report))
    return reports
