"""One training epoch and one evaluation pass; setup (data, model, optimiser) lives in fit.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from core.ranks import bar_disable
from train.metrics import epoch_metrics
from train.runtime import Loader, Precision

# (y_true, y_pred, loss sum, count) of this rank -> the same over all ranks
EpochGather = Callable[[np.ndarray, np.ndarray, float, int], tuple[np.ndarray, np.ndarray, float, int]]


def batch_inputs(batch: dict[str, torch.Tensor], fields: tuple[str, ...], device: torch.device) -> dict:
    """The model's keyword inputs for one collated batch, on ``device``."""
    inputs = {k: batch[k].to(device, non_blocking=True) for k in fields}
    inputs["valid"] = batch["valid"].to(device, non_blocking=True).bool()  # (B, T)
    return inputs


def train_one_epoch(
    model: nn.Module,
    loader: Loader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    precision: Precision,
    device: torch.device,
    grad_clip: float = 0.0,
    desc: str = "train",
    gather: EpochGather | None = None,
    objective: nn.Module | None = None,
) -> dict[str, float]:
    """One pass over ``loader`` with AMP (when enabled), clipping and a per-step LR schedule.

    Returns loss, acc and f1 over the epoch's training predictions (dropout on). ``model`` may be
    DDP-wrapped; ``gather`` then pools predictions and loss over the ranks. ``objective(embedding,
    labels, signers)`` adds its loss (train/signer.py) to the class loss; the reported loss is the sum.
    """
    model.train()
    core = getattr(model, "module", model)  # DDP keeps the GestureModel in .module
    total, n = 0.0, 0
    preds, targets = [], []
    bar = tqdm(loader, desc=desc, leave=False, unit="batch", dynamic_ncols=True, disable=bar_disable())
    for batch in bar:
        y = batch["label"].to(device)  # (B,)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            logits, aux = model(**batch_inputs(batch, core.fields, device))  # (B, C)
            loss = loss_fn(logits.float(), y)
            if objective is not None:
                signers = batch["signer"].to(device) if "signer" in batch else None  # (B,)
                loss = loss + objective(aux["embedding"], y, signers)
        precision.scaler.scale(loss).backward()
        if grad_clip > 0:
            precision.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        precision.scaler.step(optimizer)
        precision.scaler.update()
        scheduler.step()
        b = y.shape[0]
        total += float(loss.detach()) * b
        n += b
        preds.append(logits.detach().argmax(1).cpu())
        targets.append(y.cpu())
        bar.set_postfix(loss=f"{total / n:.4f}")
    y_true = torch.cat(targets).numpy() if targets else np.zeros(0, np.int64)
    y_pred = torch.cat(preds).numpy() if preds else np.zeros(0, np.int64)
    if gather is not None:
        y_true, y_pred, total, n = gather(y_true, y_pred, total, n)
    if n == 0:
        return epoch_metrics(np.zeros(0), np.zeros(0), 0, float("nan"))
    return epoch_metrics(y_true, y_pred, core.args.num_classes, total / n)


@dataclass
class EvalOutputs:
    """Per-sequence outputs of one evaluation pass, as NumPy arrays in loader order.

    ``aux`` holds "embedding" (N, d), "channel_weights" (N, T, 12), "frame_weights" (N, T),
    "frame_gate" (N, T) (mean over dims) and "stream_gate" (N,) where the model has them.
    """

    loss: float
    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray
    valid: np.ndarray
    aux: dict[str, np.ndarray] = field(default_factory=dict)

    def metrics(self, num_classes: int) -> dict[str, float]:
        return epoch_metrics(self.y_true, self.y_pred, num_classes, self.loss)


@torch.no_grad()
def evaluate_epoch(
    model: nn.Module,
    loader: Loader,
    loss_fn: nn.Module,
    precision: Precision,
    device: torch.device,
    collect_aux: bool = False,
    desc: str = "eval",
) -> EvalOutputs:
    """Forward every batch in eval mode; collect predictions (and attention/gates if asked)."""
    model.eval()
    total, n = 0.0, 0
    probs, targets, valids = [], [], []
    aux: dict[str, list[np.ndarray]] = {}
    for batch in tqdm(
        loader, desc=desc, leave=False, unit="batch", dynamic_ncols=True, disable=bar_disable()
    ):
        y = batch["label"].to(device)
        inputs = batch_inputs(batch, model.fields, device)
        with precision.autocast():
            logits, extra = model(**inputs)
        logits = logits.float()
        total += float(loss_fn(logits, y)) * y.shape[0]
        n += y.shape[0]
        probs.append(torch.softmax(logits, 1).cpu().numpy())
        targets.append(y.cpu().numpy())
        valids.append(batch["valid"].bool().numpy())
        if collect_aux:
            for k, v in _summarise_aux(extra).items():
                aux.setdefault(k, []).append(v)
    num_classes = model.args.num_classes
    p = np.concatenate(probs) if probs else np.zeros((0, num_classes), np.float32)
    return EvalOutputs(
        loss=total / n if n else float("nan"),
        y_true=np.concatenate(targets) if targets else np.zeros(0, np.int64),
        y_pred=p.argmax(1) if len(p) else np.zeros(0, np.int64),
        probs=p,
        valid=np.concatenate(valids) if valids else np.zeros((0, 0), bool),
        aux={k: np.concatenate(v) for k, v in aux.items()},
    )


def _summarise_aux(extra: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Shrink the model's aux outputs to what reports and plots use."""
    out = {}
    for k in ("embedding", "channel_weights", "frame_weights"):
        if k in extra:
            out[k] = extra[k].float().cpu().numpy()
    if "frame_gate" in extra:
        out["frame_gate"] = extra["frame_gate"].float().mean(-1).cpu().numpy()  # (B, T)
    if "stream_gate" in extra:
        out["stream_gate"] = extra["stream_gate"].float().mean(-1).cpu().numpy()  # (B,)
    return out
