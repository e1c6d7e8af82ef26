"""The attention-versus-mask figure: sample frames with DINO's attention and the hand mask side by side.

Same conventions as ``train/plots.py`` (Agg, one file per call, None when there is nothing to draw):
the cache holds no pixels, so frames are re-read from the dataset root in the manifest when it is there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cache.schema import decode_id
from train.attention_masks import attention_keep, frame_agreement, unpack_masks
from train.plots import _load_frames, _one_per_class, _spread, plt, save_figure


def _picks(rows: list[dict[str, np.ndarray]], per_sequence: int) -> list[np.ndarray]:
    """Frames worth showing per sequence: valid ones with a valid hand mask, spread over the clip."""
    out = []
    for r in rows:
        good = np.flatnonzero(r["valid"].astype(bool) & r["mask_valid"].astype(bool).any(1))
        out.append(_spread(good, per_sequence))
    return out


def plot_attention_masks(
    split_file: Path,
    extract_config: dict[str, Any],
    mass: float,
    path: Path,
    title: str,
    max_sequences: int = 3,
    frames_per_sequence: int = 2,
) -> Path | None:
    """One row per sample frame: attention (with its thresholded region outlined), the union of the
    valid hand masks, and where the two agree. None when no frame has a valid mask."""
    with h5py.File(split_file, "r", locking=False) as f:
        n = len(f["labels"])
        if n == 0:
            return None
        rows_idx = _one_per_class(f["labels"][:], n)
        rows = []
        for i in rows_idx:
            mv = f["mask_valid"][i]
            if not mv.any():
                continue
            rows.append(
                {
                    "attn": f["dino_attention"][i].astype(np.float32),  # (T, h, w)
                    "masks": unpack_masks(f["hand_masks"][i]) & mv.astype(bool)[..., None, None],
                    "mask_valid": mv,
                    "valid": f["valid"][i],
                    "indices": f["frame_indices"][i],
                    "id": decode_id(f["sequence_ids"][i]),
                }
            )
            if len(rows) == max_sequences:
                break
    picks = _picks(rows, frames_per_sequence)
    shown = [(r, p) for r, ps in zip(rows, picks, strict=True) for p in ps]
    if not shown:
        return None
    kept = [r for r, ps in zip(rows, picks, strict=True) if len(ps)]
    kept_picks = [ps for ps in picks if len(ps)]
    images = _load_frames(
        extract_config,
        [r["id"] for r in kept],
        [r["indices"][p] for r, p in zip(kept, kept_picks, strict=True)],
        Path(split_file).parent.parent,
    )
    flat_images = [im for seq in images for im in seq] if images is not None else [None] * len(shown)
    fig, axes = plt.subplots(len(shown), 3, figsize=(8.0, 2.5 * len(shown)), squeeze=False)
    for row, ((r, t), frame) in enumerate(zip(shown, flat_images, strict=True)):
        attn = r["attn"][t]
        union = r["masks"][t].any(0)  # (64, 64)
        keep = attention_keep(attn[None], mass)[0]
        iou, share = frame_agreement(attn[None], union[None], mass)
        wid, hgt = (1, 1) if frame is None else (frame.shape[1], frame.shape[0])
        extent = (-0.5, wid - 0.5, hgt - 0.5, -0.5)  # imshow's pixel-centred frame extent
        # RGBA: both yellow, attention only red, mask only green, neither clear (the frame shows through)
        agree = np.zeros((*union.shape, 4), np.float32)
        region = _resize_nearest(keep, union.shape)  # the patch grid on the mask's 64x64 grid
        agree[..., 0] = region
        agree[..., 1] = union
        agree[..., 3] = np.maximum(region, union) if frame is not None else 1.0
        panels = (
            ("attention", attn / max(float(attn.max()), 1e-12), "inferno"),
            ("hand masks", np.ma.masked_where(~union, union.astype(np.float32)), "Greens"),
            (f"IoU {iou[0]:.2f}, mass in mask {share[0]:.2f}", agree, None),
        )
        for col, (name, img, cmap) in enumerate(panels):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if frame is not None:
                ax.imshow(frame)
            ax.imshow(img, cmap=cmap, alpha=0.6 if frame is not None else 1.0, extent=extent, vmin=0, vmax=1)
            if col == 0:
                xs = (np.arange(union.shape[1]) + 0.5) / union.shape[1] * wid - 0.5
                ys = (np.arange(union.shape[0]) + 0.5) / union.shape[0] * hgt - 0.5
                ax.contour(xs, ys, region, levels=[0.5], colors="cyan", linewidths=1)
                label = r["id"] if len(r["id"]) <= 28 else "…" + r["id"][-27:]
                ax.set_ylabel(f"{label}\nframe {int(r['indices'][t])}", fontsize=7)
            ax.set_title(name, fontsize=8)
    source = "over frames" if images is not None else "maps only (dataset frames not found)"
    fig.suptitle(f"{title}: attention region = top {mass:.0%} of mass (cyan), {source}", fontsize=9)
    return save_figure(fig, path)


def _resize_nearest(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) -> ``shape`` by nearest cell, so a patch grid lines up with the 64x64 mask."""
    rows = (np.arange(shape[0]) * grid.shape[0]) // shape[0]
    cols = (np.arange(shape[1]) * grid.shape[1]) // shape[1]
    return grid[rows][:, cols].astype(np.float32)
