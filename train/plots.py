"""PNG figures of a run: curves, confusion matrix, attention maps, t-SNE, DINO attention.

Agg backend only (no display in CI or on servers). Every function writes one file and
returns its path, or None when the data cannot make a meaningful figure.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cache.schema import decode_id  # noqa: E402
from core.errors import UserError  # noqa: E402
from train.corpus import corpus_videos  # noqa: E402

DPI = 130


def save_figure(fig: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_curves(history: list[dict[str, float]], metric: str, best_epoch: int | None, path: Path) -> Path:
    """Loss and the selection metric per epoch, train and val, with the best epoch marked."""
    shown = metric if metric != "loss" else "acc"
    epochs = [int(r["epoch"]) for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], shown, _metric_title(shown))):
        for split, style in (("train", "-o"), ("val", "-s")):
            ys = [float(r.get(f"{split}_{key}", np.nan)) for r in history]
            if not np.all(np.isnan(ys)):
                ax.plot(epochs, ys, style, ms=3, lw=1.5, label=split)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best (epoch {best_epoch})")
        ax.set(title=title, xlabel="epoch", ylabel=key)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    if shown != "loss":
        axes[1].set_ylim(-0.02, 1.02)
    fig.suptitle("Training curves")
    return save_figure(fig, path)


def _metric_title(metric: str) -> str:
    return {"acc": "Accuracy", "f1": "Macro F1"}.get(metric, metric)


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> Path:
    """Counts annotated in each cell; colour is the row-normalised rate so rare classes show."""
    cm = np.asarray(cm)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = max(4.5, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                color = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color, fontsize=8)
    return save_figure(fig, path)


def plot_channel_frame_attention(
    weights: np.ndarray, channel_names: Sequence[str], path: Path, title: str
) -> Path:
    """weights (T, C): mean channel attention per frame position, channels on the y axis."""
    t, c = weights.shape
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * t + 3), 0.35 * c + 2))
    im = ax.imshow(weights.T, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="mean channel weight")
    ax.set_yticks(range(c), channel_names)
    step = max(1, t // 16)
    ax.set_xticks(range(0, t, step))
    ax.set(xlabel="frame", ylabel="channel", title=title)
    return save_figure(fig, path)


def plot_tsne(
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    title: str,
    seed: int = 0,
) -> Path | None:
    """2-D t-SNE of sequence embeddings; perplexity shrinks for small sets. None below 5 points, and when
    every point is the same (a head fed nothing: ``--streams hands`` where no hand was ever detected)."""
    from sklearn.manifold import TSNE

    n = len(embeddings)
    if n < 5 or not np.isfinite(embeddings).all():  # too few points, or a diverged model
        return None
    if np.allclose(embeddings, embeddings[:1]):  # no spread: t-SNE's PCA start divides by zero
        return None
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    # Exact gradients are faster than Barnes-Hut for the few hundred points of a val split.
    method = "exact" if n <= 300 else "barnes_hut"
    xy = TSNE(
        n_components=2, perplexity=perplexity, init="pca", method=method, random_state=seed
    ).fit_transform(embeddings.astype(np.float64))
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for k, name in enumerate(class_names):
        sel = labels == k
        if sel.any():
            ax.scatter(xy[sel, 0], xy[sel, 1], s=22, color=cmap(k % cmap.N), label=name, alpha=0.85)
    ax.set(title=f"{title}\nN={n}, perplexity {perplexity:.0f}", xticks=[], yticks=[])
    if len(class_names) <= 20:
        ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    return save_figure(fig, path)


def plot_dino_attention(
    split_file: Path,
    extract_config: dict[str, Any],
    path: Path,
    title: str,
    max_sequences: int = 4,
    frames_per_sequence: int = 5,
) -> Path | None:
    """Cached DINO CLS→patch attention for a few sequences, over the original frames if they exist.

    The cache holds no pixels, so frames are re-read from the dataset root recorded in the
    manifest config; when it is gone (or unreadable) the maps are shown alone.
    """
    with h5py.File(split_file, "r", locking=False) as f:
        n = len(f["labels"])
        if n == 0:
            return None
        labels = f["labels"][:]
        rows = _one_per_class(labels, max_sequences)
        attn = [f["dino_attention"][i].astype(np.float32) for i in rows]  # each (T, h, w)
        valid = [f["valid"][i].astype(bool) for i in rows]
        indices = [f["frame_indices"][i] for i in rows]
        ids = [decode_id(f["sequence_ids"][i]) for i in rows]
    picks = [_spread(np.flatnonzero(v) if v.any() else np.arange(len(v)), frames_per_sequence) for v in valid]
    shown = [ix[p] for ix, p in zip(indices, picks, strict=True)]
    images = _load_frames(extract_config, ids, shown, Path(split_file).parent.parent)
    cols = max(len(p) for p in picks)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.3 * cols + 0.8, 2.3 * len(rows)), squeeze=False)
    im = None
    for r, (seq_attn, pick, seq_id) in enumerate(zip(attn, picks, ids, strict=True)):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(pick):
                ax.axis("off")
                continue
            amap = seq_attn[pick[c]]  # (h, w)
            amap = amap / max(float(amap.max()), 1e-12)
            frame = images[r][c] if images is not None else None
            if frame is not None:
                hgt, wid = frame.shape[:2]
                ax.imshow(frame)
                im = ax.imshow(
                    amap,
                    cmap="inferno",
                    alpha=0.55,
                    extent=(0, wid, hgt, 0),
                    vmin=0,
                    vmax=1,
                    interpolation="bilinear",
                )
            else:
                im = ax.imshow(amap, cmap="inferno", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"frame {int(indices[r][pick[c]])}", fontsize=8)
            if c == 0:
                ax.set_ylabel(seq_id if len(seq_id) <= 28 else "…" + seq_id[-27:], fontsize=8)
    source = "over frames" if images is not None else "maps only (dataset frames not found)"
    fig.suptitle(f"{title} — {source}")
    if im is not None:
        fig.colorbar(
            im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01, label="attention (max-normalised)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # tight_layout cannot place a shared colorbar
    plt.close(fig)
    return path


def _one_per_class(labels: np.ndarray, limit: int) -> list[int]:
    """First sequence of each class (then more) up to ``limit``, so the figure shows variety."""
    firsts = [int(np.flatnonzero(labels == k)[0]) for k in np.unique(labels)]
    rest = [i for i in range(len(labels)) if i not in set(firsts)]
    return sorted((firsts + rest)[:limit])


def _spread(candidates: np.ndarray, k: int) -> np.ndarray:
    if len(candidates) <= k:
        return candidates
    return candidates[np.linspace(0, len(candidates) - 1, k).round().astype(int)]


def _load_frames(
    extract_config: dict[str, Any], ids: list[str], frame_indices: list[np.ndarray], cache_root: Path
) -> list[list[np.ndarray]] | None:
    """Frames (H, W, 3) per sequence from the original dataset, or None if any is unavailable.

    Augmented copies (``#a<k>``) are skipped: their pixels were flipped/cropped, so the raw
    frames would not line up with the maps.
    """
    if any("#a" in s for s in ids):
        return None
    try:
        from data.frames import read_frames

        videos = corpus_videos(extract_config, cache_root)
        if videos is None:
            return None
        return [
            list(read_frames(videos[s], np.asarray(ix))) for s, ix in zip(ids, frame_indices, strict=True)
        ]
    except (ImportError, UserError, OSError, KeyError, ValueError) as exc:
        print(f"warning: DINO attention plot shows maps only ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
