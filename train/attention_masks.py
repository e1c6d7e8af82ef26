"""Does DINO look at the hands? Its thresholded attention against the cached hand masks.

For every valid frame with at least one valid hand mask:

- **IoU**: between the attention region (the patches holding the top ``attention_mass`` share of the
  CLS->patch attention: the very threshold SwAV's crop box uses, ``extract/crops.attention_box``) and the
  union of the valid hands' masks.
- **mass share**: the share of the attention map's mass that falls inside that union.

Resolution. The mask (64x64) is brought to the attention grid (h x w, 14x14 for a ViT-S/16), not the
reverse: each patch gets the *fraction of its area* the mask covers (an exact area average, also for
grids that do not divide 64). Since one attention value holds for a whole patch, both figures are then
exact areas in image space: no 0.5 threshold on the mask and no interpolated attention. With coverage
``c`` and the kept patches ``K`` (equal-area patches), IoU = sum_K c / (|K| + sum_notK c), and the mass
share = sum A c / sum A.

A sequence's figure is the mean over its counted frames; a split's is the mean over sequences that
have at least one. Masks are read through ``unpack_masks``, which accepts both storage layouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cache.masks import MASK_SOURCES
from cache.masks import unpack_masks as stored_masks
from core.errors import CacheError

MASK_SIDE = 64  # the mask stream stores 64x64 masks per hand
MASK_FIELDS = ("hand_masks", "mask_valid")
PROMPTED_BY_ATTENTION = MASK_SOURCES.index("attention")
DEFAULT_ATTENTION_MASS = 0.6  # StreamOptions' default, for a manifest that records none


def unpack_masks(stored: np.ndarray, side: int = MASK_SIDE) -> np.ndarray:
    """Hand masks as (..., side, side) bool, from the stored layout or a dense one.

    ``stored`` is the cache's bit-packed rows (..., side, side/8) uint8 (``cache/masks.py``, the one place
    that layout is defined), or (..., side, side) 0/1 (masks made in memory)."""
    stored = np.asarray(stored)
    if stored.shape[-2:] == (side, side):
        return stored.astype(bool)
    if stored.shape[-2:] != (side, side // 8) or stored.dtype != np.uint8:
        raise ValueError(f"hand masks of shape {stored.shape} {stored.dtype} are neither 64x64 nor packed")
    return stored_masks(stored)


def attention_keep(attn: np.ndarray, mass: float) -> np.ndarray:
    """(..., h, w) attention -> (..., h, w) bool: the patches, taken in descending order, until their
    summed attention first reaches ``mass`` of the total (at least one). SwAV's crop threshold."""
    *lead, h, w = attn.shape
    flat = attn.reshape(-1, h * w).astype(np.float64)
    order = np.argsort(-flat, axis=1, kind="stable")
    vals = np.take_along_axis(flat, order, axis=1)
    share = np.cumsum(vals, axis=1) / np.maximum(vals.sum(axis=1, keepdims=True), 1e-12)
    keep_sorted = np.concatenate([np.ones_like(share[:, :1], bool), share[:, :-1] < mass], axis=1)
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return keep.reshape(*lead, h, w)


def _overlap(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in): the share of output cell i's length covered by input cell j (rows sum to 1)."""
    edges_out = np.arange(n_out + 1) / n_out
    edges_in = np.arange(n_in + 1) / n_in
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    return np.clip(hi - lo, 0.0, None) * n_out


def mask_coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(..., H, W) bool mask -> (..., h, w) share of each grid cell's area the mask covers."""
    rows = _overlap(grid[0], mask.shape[-2])  # (h, H)
    cols = _overlap(grid[1], mask.shape[-1])  # (w, W)
    return np.einsum("hH,...HW,wW->...hw", rows, mask.astype(np.float64), cols)


def frame_agreement(attn: np.ndarray, union: np.ndarray, mass: float) -> tuple[np.ndarray, np.ndarray]:
    """IoU and mass share per frame: ``attn`` (F, h, w), ``union`` (F, H, W) bool -> two (F,) arrays."""
    attn = np.clip(attn.astype(np.float64), 0.0, None)
    keep = attention_keep(attn, mass)  # (F, h, w)
    cover = mask_coverage(union, attn.shape[-2:])  # (F, h, w)
    inter = (cover * keep).sum(axis=(1, 2))
    union_area = keep.sum(axis=(1, 2)) + (cover * ~keep).sum(axis=(1, 2))
    iou = inter / np.maximum(union_area, 1e-12)
    share = (attn * cover).sum(axis=(1, 2)) / np.maximum(attn.sum(axis=(1, 2)), 1e-12)
    return iou, share


def sequence_agreement(
    attn: np.ndarray, masks: np.ndarray, mask_valid: np.ndarray, valid: np.ndarray, mass: float
) -> tuple[float, float, int] | None:
    """(mean IoU, mean mass share, frames counted) of one sequence, or None when no frame counts.

    ``attn`` (T, h, w); ``masks`` (T, 2, 64, 64) or packed (T, 2, 64, 8); ``mask_valid`` (T, 2);
    ``valid`` (T,). A frame counts when it is valid (not a repeat), has a valid hand and some attention.
    """
    hands = unpack_masks(masks) & np.asarray(mask_valid).astype(bool)[..., None, None]  # (T, 2, S, S)
    attn = np.asarray(attn, dtype=np.float64)
    use = np.asarray(valid).astype(bool) & np.asarray(mask_valid).astype(bool).any(axis=1)
    use &= attn.sum(axis=(1, 2)) > 0
    if not use.any():
        return None
    iou, share = frame_agreement(attn[use], hands[use].any(axis=1), mass)
    return float(iou.mean()), float(share.mean()), int(use.sum())


def has_attention_and_masks(manifest: Mapping[str, Any]) -> bool:
    """Whether the cache holds both the DINO map and the hand masks (else there is nothing to report)."""
    fields = (manifest.get("dims") or {}).get("fields") or {}
    return "dino_attention" in fields and all(f in fields for f in MASK_FIELDS)


def attention_mass(manifest: Mapping[str, Any]) -> float:
    """The mass threshold the cache's SwAV crop used (recorded stream options, else the config)."""
    for source in (manifest.get("stream_options"), manifest.get("config")):
        if isinstance(source, Mapping) and isinstance(source.get("attention_mass"), int | float):
            return float(source["attention_mass"])
    return DEFAULT_ATTENTION_MASS


def dino_flavour(manifest: Mapping[str, Any]) -> str:
    """The DINO model id the cache's attention came from, as the manifest records it."""
    spec = (manifest.get("encoders") or {}).get("dino")
    name = spec.get("name") if isinstance(spec, Mapping) else spec
    return str(name) if name else "unknown"


def split_agreement(split_file: Path, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The split's attention-vs-mask figures keyed by DINO flavour, or None without attention and masks.

    ``{flavour: {"iou": mean, "mass_share": mean, "sequences": n, "frames": m, "attention_mass": p}}``;
    means are over sequences (each the mean of its counted frames). None also when no frame counts.
    """
    if not has_attention_and_masks(manifest):
        return None
    mass = attention_mass(manifest)
    ious, shares, frames = [], [], 0
    try:
        with h5py.File(split_file, "r", locking=False) as f:
            for i in range(len(f["labels"])):
                usable = f["mask_valid"][i].astype(bool)  # (T, 2)
                if "mask_source" in f:  # a mask SAM2 drew from attention's own peaks proves nothing here
                    usable &= f["mask_source"][i] != PROMPTED_BY_ATTENTION
                got = sequence_agreement(
                    f["dino_attention"][i], f["hand_masks"][i], usable, f["valid"][i], mass
                )
                if got is not None:
                    ious.append(got[0])
                    shares.append(got[1])
                    frames += got[2]
    except (OSError, KeyError, ValueError) as exc:  # a damaged chunk, or masks of an unknown layout
        raise CacheError(
            f"{split_file}: cannot read attention or masks ({exc}); run `pipeline.py cache verify`"
        ) from None
    if not ious:
        return None
    figures = {
        "iou": float(np.mean(ious)),
        "mass_share": float(np.mean(shares)),
        "sequences": len(ious),
        "frames": frames,
        "attention_mass": mass,
    }
    return {dino_flavour(manifest): figures}
