"""Evaluate a model on one cache split: metrics, attention statistics, report.json and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from cache.manifest import dataset_format
from core.atomic import refuse_unwritable, write_json_atomic
from core.device import resolve_device
from core.errors import CacheError, UserError
from models.heads.model import GestureModel
from train.attention_masks import attention_mass, split_agreement
from train.checkpoint import (
    CheckpointError,
    check_compatible,
    check_unseen,
    load_checkpoint,
)
from train.config import EvaluateConfig
from train.corpus import corpus_held, source_config
from train.loop import EvalOutputs, evaluate_epoch
from train.mask_plots import plot_attention_masks
from train.metrics import attention_stats, classification_summary
from train.plots import (
    plot_channel_frame_attention,
    plot_confusion,
    plot_dino_attention,
    plot_tsne,
)
from train.runtime import (
    make_loader,
    open_manifest,
    precision_for,
    split_count,
    split_dataset,
    split_path,
)
from train.signer import evaluate_signers

MAX_MISCLASSIFIED = 50


def model_from_checkpoint(
    ckpt: dict[str, Any], device: torch.device, path: Path | str = "checkpoint"
) -> GestureModel:
    """Rebuild the heads from the checkpoint's model args and load its weights (eval mode)."""
    try:
        model = GestureModel.from_args(ckpt["model_args"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, KeyError, ValueError, RuntimeError) as exc:  # args or weights that do not fit
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(
            f"{path}: model args or weights are damaged ({reason}); "
            "pass a checkpoint written by `pipeline.py train`"
        ) from exc
    return model.to(device).eval()


def evaluate_split(
    model: GestureModel,
    ckpt: dict[str, Any],
    cache_dir: Path,
    manifest: dict[str, Any],
    split: str,
    device: torch.device,
    out_dir: Path,
    checkpoint_path: Path | str = "",
    dataset: Dataset | None = None,
) -> dict[str, Any] | None:
    """Metrics, attention stats and plots of ``split``; merged into ``out_dir/report.json``.

    Returns the split's report, or None when the split is empty. ``dataset``: the split already
    decoded (sweeps, folds); the cache is then not read, and the DINO attention figure (a picture
    of the cache, the same for every run) is left out.
    """
    if split_count(manifest, split) == 0:
        return None
    cfg = ckpt["config"]
    in_memory = dataset is not None
    if dataset is None:
        dataset = split_dataset(cache_dir, manifest, split, model.fields, preload=False)
    loader = make_loader(dataset, int(cfg["batch_size"]), False, 0, int(cfg.get("workers", 0)), device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(cfg.get("label_smoothing", 0.0)))
    out = evaluate_epoch(model, loader, loss_fn, precision_for(device), device, collect_aux=True, desc=split)
    class_names = list(ckpt["class_names"])
    channel_names = list(manifest.get("channel_layout") or [])
    if not channel_names and "channel_weights" in out.aux:  # a cache that did not name its channels
        channel_names = [f"channel_{i}" for i in range(out.aux["channel_weights"].shape[-1])]
    report: dict[str, Any] = {
        "split": split,
        "checkpoint": str(checkpoint_path),
        "cache": str(cache_dir),
        "cache_key": manifest["key"],
        "streams": ckpt["model_args"]["streams"],
        "num_sequences": int(len(out.y_true)),
        "loss": float(out.loss),
        **classification_summary(out.y_true, out.y_pred, class_names),
        "class_names": class_names,
        "attention": attention_stats(
            out.aux.get("channel_weights"),
            out.aux.get("frame_weights"),
            out.valid,
            channel_names,
            out.aux.get("frame_gate"),
            out.aux.get("stream_gate"),
            ckpt["model_args"]["streams"],
        ),
        "misclassified": _misclassified(out, list(dataset.sequence_ids), class_names),
    }
    if not in_memory:  # where DINO's attention falls against the hand masks, when the cache has both
        agreement = split_agreement(split_path(cache_dir, manifest, split), manifest)
        if agreement is not None:
            report["attention_masks"] = agreement
    probe, signers, signer_names = evaluate_signers(
        out.aux["embedding"], dataset, cache_dir, manifest, model.fields, cfg
    )
    if probe is not None:
        report["signer_probe"] = probe  # lower accuracy (vs its chance) = a more signer-invariant embedding
    report["plots"] = _plots(
        out,
        report,
        None if in_memory else cache_dir,
        manifest,
        split,
        out_dir,
        channel_names,
        int(cfg["seed"]),
    )
    if signers is not None:
        tsne = plot_tsne(
            out.aux["embedding"],
            signers,
            signer_names,
            Path(out_dir) / f"tsne_signer_{split}.png",
            f"t-SNE of sequence embeddings by signer ({split})",
            seed=int(cfg["seed"]),
        )
        if tsne is not None:
            report["plots"]["tsne_signer"] = tsne.name
    _merge_report(Path(out_dir) / "report.json", split, report)
    return report


def _misclassified(out: EvalOutputs, ids: list[str], class_names: list[str]) -> list[dict[str, Any]]:
    """The most confident mistakes first: the ones most worth looking at."""
    wrong = np.flatnonzero(out.y_true != out.y_pred)
    conf = out.probs[wrong, out.y_pred[wrong]] if len(wrong) else np.zeros(0)
    order = wrong[np.argsort(-conf, kind="stable")][:MAX_MISCLASSIFIED]
    return [
        {
            "sequence_id": ids[i],
            "true": class_names[int(out.y_true[i])],
            "predicted": class_names[int(out.y_pred[i])],
            "confidence": float(out.probs[i, out.y_pred[i]]),
        }
        for i in order
    ]


def _plots(
    out: EvalOutputs,
    report: dict[str, Any],
    cache_dir: Path | None,
    manifest: dict[str, Any],
    split: str,
    out_dir: Path,
    channel_names: list[str],
    seed: int,
) -> dict[str, str]:
    """Write the split's figures; returns {figure: file name} for the report."""
    out_dir = Path(out_dir)
    names = report["class_names"]
    files: dict[str, Path | None] = {
        "confusion": plot_confusion(
            np.array(report["confusion_matrix"]),
            names,
            out_dir / f"confusion_{split}.png",
            f"Confusion matrix ({split}, accuracy {report['accuracy']:.3f})",
        ),
        "tsne": plot_tsne(
            out.aux["embedding"],
            out.y_true,
            names,
            out_dir / f"tsne_{split}.png",
            f"t-SNE of sequence embeddings ({split})",
            seed=seed,
        ),
    }
    if "channel_weights" in out.aux:
        files["channel_attention"] = plot_channel_frame_attention(
            _valid_mean(out.aux["channel_weights"], out.valid),
            channel_names,
            out_dir / f"attention_{split}.png",
            f"Channel attention per frame (mean over {split})",
        )
    # drawn when the cache holds DINO maps (whatever the heads read); not for in-memory sweeps
    if "dino_attention" in ((manifest.get("dims") or {}).get("fields") or {}) and cache_dir is not None:
        files["dino_attention"] = plot_dino_attention(
            split_path(cache_dir, manifest, split),
            source_config(manifest),
            out_dir / f"dino_attention_{split}.png",
            f"DINO attention ({split})",
        )
    if "attention_masks" in report and cache_dir is not None:
        files["attention_masks"] = plot_attention_masks(
            split_path(cache_dir, manifest, split),
            source_config(manifest),
            attention_mass(manifest),
            out_dir / f"attention_masks_{split}.png",
            f"DINO attention vs hand masks ({split})",
        )
    return {k: p.name for k, p in files.items() if p is not None}


def _valid_mean(weights: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """weights (N, T, C) averaged over the sequences whose frame t is valid → (T, C)."""
    v = valid[..., None].astype(np.float64)  # (N, T, 1)
    return (weights * v).sum(axis=0) / np.maximum(v.sum(axis=0), 1.0)


def default_out(checkpoint: Path) -> Path:
    """Where evaluate writes without --out: a run's report.json (what `runs` compares) is its best.pt's,
    so another checkpoint (last.pt, a copy) reports into ``eval-<name>/`` beside it."""
    return (
        checkpoint.parent if checkpoint.name == "best.pt" else checkpoint.parent / f"eval-{checkpoint.stem}"
    )


def _merge_report(path: Path, split: str, report: dict[str, Any]) -> None:
    """report.json holds one entry per split, so evaluating test keeps the val results."""
    existing: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            existing = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError:
            existing = {}
    existing[split] = report
    write_json_atomic(path, existing)


def format_summary(report: dict[str, Any]) -> str:
    """A readable multi-line summary of one split's report."""
    lines = [
        f"{report['split']}: {report['num_sequences']} sequences | accuracy {report['accuracy']:.4f} | "
        f"macro F1 {report['f1_macro']:.4f} | weighted F1 {report['f1_weighted']:.4f} | "
        f"loss {report['loss']:.4f}",
    ]
    width = max(10, *(len(n) for n in report["class_names"]))
    lines.append(f"  {'class':<{width}}  precision  recall     f1  support")
    absent = set(report.get("absent_classes", []))  # no row of zeros for a class the split lacks
    for name in report["class_names"]:
        if name in absent:
            continue
        r = report["per_class"][name]
        lines.append(
            f"  {name:<{width}}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['f1-score']:5.3f}"
            f"  {int(r['support']):7d}"
        )
    if absent:
        names = ", ".join(n for n in report["class_names"] if n in absent)
        lines.append(f"  absent from this split (left out of the macro averages): {names}")
    att = report["attention"]
    if "channel_weights" in att:
        cw = att["channel_weights"]
        most, least = att["most_attended_channel"], att["least_attended_channel"]
        lines.append(f"  channels: most attended {most} ({cw[most]:.3f}), least {least} ({cw[least]:.3f})")
    if "frame_weights" in att:
        fw = att["frame_weights"]
        most, least = att["most_attended_frame"], att["least_attended_frame"]
        lines.append(f"  frames: most attended {most} ({fw[most]:.3f}), least {least} ({fw[least]:.3f})")
    if "signer_probe" in report:
        p = report["signer_probe"]
        lines.append(
            f"  signer probe: accuracy {p['accuracy']:.3f} (chance {p['chance']:.3f}, {p['signers']} "
            f"{p['source']}; lower is more signer-invariant)"
        )
    gates = att.get("fusion_gate", {})
    if gates:  # "dino_vs_swav" inside the DINO⊕SwAV head; "<earlier streams>_vs_<last>" between streams
        named = {"dino_vs_swav": "DINO share vs SwAV"}
        labels = [f"{named.get(k, k.replace('_vs_', ' share vs '))} {v:.3f}" for k, v in gates.items()]
        lines.append("  mean fusion gate: " + ", ".join(labels))
    for flavour, fig in (report.get("attention_masks") or {}).items():
        lines.append(
            f"  attention vs hand masks ({flavour}, top {fig['attention_mass']:.0%} of mass): "
            f"IoU {fig['iou']:.3f}, mass in mask {fig['mass_share']:.3f} over {fig['sequences']} sequences"
        )
    return "\n".join(lines)


def _trained_cache(ckpt: dict[str, Any]) -> Path:
    """The cache the checkpoint was trained on: as given at training time, else its absolute path."""
    given = Path(ckpt["config"]["cache"])
    absolute = ckpt.get("cache_path")
    return given if given.is_dir() or not absolute else Path(absolute)


def _unlabelled_test_hint(manifest: dict[str, Any], cfg: EvaluateConfig) -> str:
    """Where the corpus ships its test clips unlabelled (Jester), how to classify them instead."""
    from data.formats import format_class

    fmt = dataset_format(manifest)
    try:
        listed = format_class(fmt).unlabelled_test if fmt != "auto" else ""
    except UserError:  # a format this version no longer knows
        return ""
    if not listed:
        return ""
    return (
        f" ({fmt}'s test set is unlabelled: classify it with `pipeline.py predict --checkpoint "
        f"{cfg.checkpoint} {listed} --csv FILE`)"
    )


def run_evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Evaluate ``cfg.checkpoint`` on ``cfg.split``; write report.json + plots; print a summary.

    Refuses (CacheError) a cache whose key, classes, channel layout or dims differ from the
    checkpoint's (its features would be silently meaningless to the model), and a split that
    holds videos the model was trained on (the cache was re-split since).
    """
    ckpt = load_checkpoint(cfg.checkpoint)
    cache_dir = Path(cfg.cache) if cfg.cache is not None else _trained_cache(ckpt)
    manifest = open_manifest(cache_dir)
    check_compatible(ckpt, manifest, cache_dir, cfg.checkpoint)
    check_unseen(ckpt, manifest, cfg.split, cache_dir, cfg.checkpoint)
    device = resolve_device(cfg.device)
    out_dir = Path(cfg.out) if cfg.out is not None else default_out(Path(cfg.checkpoint))
    refuse_unwritable(out_dir / "report.json", "--out")
    model = model_from_checkpoint(ckpt, device, cfg.checkpoint)
    with corpus_held():  # its figures draw over one read of the corpus
        report = evaluate_split(model, ckpt, cache_dir, manifest, cfg.split, device, out_dir, cfg.checkpoint)
    if report is None:
        raise CacheError(
            f"cache {cache_dir} has an empty '{cfg.split}' split; evaluate another --split"
            + (_unlabelled_test_hint(manifest, cfg) if cfg.split == "test" else "")
        )
    print(format_summary(report))
    print(f"report: {out_dir / 'report.json'}")
    return report
