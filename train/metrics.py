"""Classification metrics and attention statistics, as plain JSON-ready dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

# Metrics where a smaller value is better; everything else is maximised.
LOWER_IS_BETTER = {"loss"}


def present_labels(y_true: np.ndarray, num_classes: int) -> list[int]:
    """The classes a split holds (support > 0), which macro averages run over: a class absent from a small
    split has no recall to measure, and counting it as F1 0 would lower a perfect split's score."""
    return [int(c) for c in np.unique(np.asarray(y_true, dtype=np.int64)) if 0 <= c < num_classes]


def epoch_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, loss: float) -> dict[str, float]:
    """The cheap per-epoch numbers: loss, accuracy and macro F1 over the classes present (NaN for an empty
    split); the same F1 as ``classification_summary``'s, so best.pt is chosen on what evaluate reports."""
    if len(y_true) == 0:
        return {"loss": float("nan"), "acc": float("nan"), "f1": float("nan")}
    labels = present_labels(y_true, num_classes)
    return {
        "loss": float(loss),
        "acc": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }


def is_better(metric: str, value: float, best: float | None) -> bool:
    """Strict improvement, so ties keep the earlier (cheaper-to-reach) epoch."""
    if np.isnan(value):
        return False
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def classification_summary(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro/weighted precision-recall-F1 over the classes present, sklearn's per-class report,
    confusion matrix, and ``absent_classes``: the classes the split does not hold, named rather than counted
    as zeros in the averages (their per-class rows stay, with support 0, so every class keeps a row)."""
    labels = list(range(len(class_names)))
    present = present_labels(y_true, len(class_names))
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=present, average=avg, zero_division=0
        )
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)
    out["absent_classes"] = [name for c, name in enumerate(class_names) if c not in present]
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names), output_dict=True, zero_division=0
    )
    out["per_class"] = {name: {k: float(v) for k, v in report[name].items()} for name in class_names}
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def attention_stats(
    channel_weights: np.ndarray | None,
    frame_weights: np.ndarray | None,
    valid: np.ndarray,
    channel_names: Sequence[str],
    frame_gate: np.ndarray | None = None,
    stream_gate: np.ndarray | None = None,
    streams: Sequence[str] = (),
) -> dict[str, Any]:
    """Where the model looked, averaged over a split.

    channel_weights (N, T, C) are averaged over valid frames only (padded repeats would
    double-count frames); frame_weights (N, T) per frame position; frame_gate (N, T) is
    the per-frame mean DINO share and stream_gate (N,) the mean share of the fused ``streams`` before the
    last one against that last one (the model folds its streams left, and the gate is the last fold's).
    """
    out: dict[str, Any] = {}
    v = valid.astype(np.float64)  # (N, T)
    if channel_weights is not None and len(channel_weights):
        cw = (channel_weights * v[..., None]).sum(axis=(0, 1)) / max(v.sum(), 1.0)  # (C,)
        out["channel_weights"] = {name: float(w) for name, w in zip(channel_names, cw, strict=True)}
        out["most_attended_channel"] = channel_names[int(np.argmax(cw))]
        out["least_attended_channel"] = channel_names[int(np.argmin(cw))]
    if frame_weights is not None and len(frame_weights):
        fw = frame_weights.mean(axis=0)  # (T,)
        out["frame_weights"] = [float(w) for w in fw]
        out["most_attended_frame"] = int(np.argmax(fw))
        out["least_attended_frame"] = int(np.argmin(fw))
    gates: dict[str, float] = {}
    if frame_gate is not None and len(frame_gate):
        gates["dino_vs_swav"] = float((frame_gate * v).sum() / max(v.sum(), 1.0))
    if stream_gate is not None and len(stream_gate):
        pair = f"{'+'.join(streams[:-1])}_vs_{streams[-1]}" if len(streams) > 1 else "streams"
        gates[pair] = float(np.mean(stream_gate))
    if gates:
        out["fusion_gate"] = gates
    return out
