"""`predict`: extract features for new inputs exactly as the training cache did, then classify.

The one place that runs encoders and heads together (DESIGN §1). The extraction stage is
imported lazily so importing train never pulls in an encoder.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_path, refuse_unwritable
from core.device import resolve_device
from core.errors import BadInputError
from data.windows import parse_windows
from models.heads.derived import derivation_of
from train.checkpoint import load_checkpoint
from train.config import PredictConfig
from train.derived import add_derived
from train.evaluate import model_from_checkpoint
from train.runtime import precision_for


def run_predict(cfg: PredictConfig) -> list[dict[str, Any]]:
    """Classify every input; print the top-k classes per input; return them as dicts.

    Each result: {"input": str, "id": str, "prediction": class, "top": [{"class", "probability"}, ...]}
    (with ``start``/``end`` per window). With ``cfg.csv``, they are also written there as a table.
    Errors from extraction (bad input, weights unavailable) propagate as UserErrors.
    """
    if not cfg.inputs:
        raise BadInputError("predict needs at least one INPUT (a video file or a frame folder)")
    if cfg.top_k < 1:
        raise BadInputError(f"--top-k must be at least 1, got {cfg.top_k}")
    ckpt = load_checkpoint(cfg.checkpoint)
    device = resolve_device(cfg.device)
    model = model_from_checkpoint(ckpt, device, cfg.checkpoint)
    from extract.single import extract_inputs, sample_only_fields  # lazy: only predict loads encoders

    windows = parse_windows(cfg.windows) if cfg.windows else None
    manifest = dict(ckpt["cache"])  # the cache's manifest, as the checkpoint recorded it
    _note_time_scale(cfg.checkpoint, manifest.get("config") or {}, windows)
    if cfg.csv is not None:
        refuse_unwritable(Path(cfg.csv), "--csv")
    extra = {"windows": windows} if windows else {}
    if cfg.landmarks_npz is not None:
        extra["landmarks_npz"] = cfg.landmarks_npz
    items = extract_inputs([Path(p) for p in cfg.inputs], manifest, device.type, **extra)
    class_names = list(ckpt["class_names"])
    k = min(cfg.top_k, len(class_names))
    precision = precision_for(device)
    results = []
    for item in items:  # encoded a few at a time: only the (small) results are kept
        if not results:
            _warn_sample_only(cfg.checkpoint, sample_only_fields(manifest, _stored_reads(model.fields, item)))
        path = item["input"]
        probs = _probabilities(model, item, device, precision)  # (classes,)
        order = np.argsort(-probs, kind="stable")[:k]
        top = [{"class": class_names[i], "probability": float(probs[i])} for i in order]
        result = {"input": str(path), "id": str(item["video_id"])}
        result.update(prediction=top[0]["class"], top=top)
        results.append(result)
        if windows is not None:  # a timeline: one line per window
            result.update(start=int(item["start"]), end=int(item["end"]))
            if len(results) == 1 or results[-2]["input"] != str(path):
                print(f"{path}\n  {'start':>7} {'end':>7}  {'class':<24} probability")
            best = top[0]
            print(f"  {result['start']:>7} {result['end']:>7}  {best['class']:<24} {best['probability']:.4f}")
            continue
        print(str(path))
        for rank, t in enumerate(top, 1):
            print(f"  {rank}. {t['class']:<24} {t['probability']:.4f}")
    if cfg.csv is not None:
        _write_csv(Path(cfg.csv), results, k, windowed=windows is not None)
        print(f"predictions: {cfg.csv} ({len(results)} rows)", file=sys.stderr)
    return results


def _note_time_scale(checkpoint: Path, extracted: dict[str, Any], windows: tuple[int, int] | None) -> None:
    """A head trained on windows of W frames learned gestures at that time scale: say so when predict
    samples a different span into the same number of frames."""
    trained = extracted.get("windows")
    if not trained:
        return
    width, _ = parse_windows(str(trained))
    if windows is not None and windows[0] == width:
        return
    span = (
        f"windows of {windows[0]} frames" if windows is not None else "whole inputs, whatever their length,"
    )
    print(
        f"note: {checkpoint} was trained on windows of {width} frames (extract --windows {trained}); "
        f"{span} are sampled to {extracted.get('frames')} frames, so gestures play at another speed than "
        f"in training. Pass --windows {width}:S to match",
        file=sys.stderr,
    )


def _warn_sample_only(checkpoint: Path, empty: list[str]) -> None:
    if empty:
        print(
            f"warning: {checkpoint} reads {', '.join(empty)}, which only the dataset's own annotations "
            "fill; new inputs have none, so this prediction sees them empty (no annotated hands). Predict "
            "with a run that does not read them",
            file=sys.stderr,
        )


def _write_csv(path: Path, results: list[dict[str, Any]], k: int, windowed: bool) -> None:
    """One row per result: input, id, [start, end,] prediction, probability, then ranks 2..k as
    class_R, probability_R. Written whole, atomically: a killed predict leaves no partial table."""
    span = ["start", "end"] if windowed else []
    ranks = [c for r in range(2, k + 1) for c in (f"class_{r}", f"probability_{r}")]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["input", "id", *span, "prediction", "probability", *ranks])
        for r in results:
            cells = [c for t in r["top"][1:] for c in (t["class"], f"{t['probability']:.6f}")]
            where = [r["start"], r["end"]] if windowed else []
            writer.writerow(
                [r["input"], r["id"], *where, r["prediction"], f"{r['top'][0]['probability']:.6f}", *cells]
            )


def _stored_reads(fields: tuple[str, ...], item: dict[str, Any]) -> set[str]:
    """The stored fields behind the model's inputs: a derived input (the hand track) counts by its source."""
    out: set[str] = set()
    for name in fields:
        d = derivation_of(name)
        out.update((d.source(item) or ()) if d is not None else (name,))
    return out


@torch.no_grad()
def _probabilities(model, item: dict[str, np.ndarray], device: torch.device, precision) -> np.ndarray:
    """Softmax over classes for one extracted input (a batch of one)."""
    item = {**item, **add_derived(item, model.fields)}  # a hand track, exactly as training computed it
    inputs = {
        k: torch.as_tensor(np.asarray(item[k]), dtype=torch.float32)[None].to(device) for k in model.fields
    }
    inputs["valid"] = torch.as_tensor(np.asarray(item["valid"]).astype(bool))[None].to(device)  # (1, T)
    with precision.autocast():
        logits, _ = model(**inputs)
    return torch.softmax(logits.float(), dim=1)[0].cpu().numpy()
