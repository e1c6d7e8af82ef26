"""Image regions fed to the encoders: halves, the DINO-attention crop for SwAV, and hand boxes."""

from __future__ import annotations

import torch
from torchvision.ops import roi_align


def split_halves(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (N, 3, H, W) vertically at the middle column into left and right halves."""
    mid = frames.shape[-1] // 2
    return frames[..., :mid], frames[..., mid:]


def attention_box(attn: torch.Tensor, mass: float, margin: float) -> torch.Tensor:
    """Normalised (N, 4) x1 y1 x2 y2 boxes around the patches that hold the top ``mass`` share of attention.

    ``attn`` is (N, h, w). Patches are taken in descending order until their summed attention reaches
    ``mass`` of the total; the box is their bounding rectangle, widened by ``margin`` of the frame side.
    """
    n, h, w = attn.shape
    flat = attn.reshape(n, -1).float()
    order = flat.argsort(dim=1, descending=True)
    sorted_vals = flat.gather(1, order)
    share = sorted_vals.cumsum(1) / sorted_vals.sum(1, keepdim=True).clamp_min(1e-12)
    # Keep patches until the share first reaches ``mass`` (at least one patch).
    keep_sorted = torch.cat([torch.ones_like(share[:, :1], dtype=torch.bool), share[:, :-1] < mass], dim=1)
    keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted).view(n, h, w)
    return bounding_box(keep, margin)[0]


def bounding_box(keep: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, h, w) bool -> the normalised box around each map's True cells, (N, 4) x1 y1 x2 y2 widened by
    ``margin`` and clamped to [0, 1], and (N,) whether the map had any True cell (else the box is junk)."""
    _, h, w = keep.shape
    rows, cols = keep.any(2), keep.any(1)  # (N, h), (N, w)
    ar_h = torch.arange(h, device=keep.device)
    ar_w = torch.arange(w, device=keep.device)
    y1 = torch.where(rows, ar_h, h).amin(1).float() / h
    y2 = (torch.where(rows, ar_h, -1).amax(1).float() + 1) / h
    x1 = torch.where(cols, ar_w, w).amin(1).float() / w
    x2 = (torch.where(cols, ar_w, -1).amax(1).float() + 1) / w
    box = torch.stack([x1 - margin, y1 - margin, x2 + margin, y2 + margin], dim=1)
    return box.clamp(0.0, 1.0), rows.any(1)


def crop_resize(frames: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop normalised (N, 4) boxes out of (N, 3, H, W) frames and resize each to ``size``.

    roi_align with adaptive sampling averages several samples per output pixel, so large crops are
    downscaled without aliasing, and all crops go through in one batched call.
    """
    n, _, h, w = frames.shape
    scale = boxes.new_tensor([w, h, w, h])
    rois = torch.cat([torch.arange(n, device=frames.device, dtype=boxes.dtype)[:, None], boxes * scale], 1)
    return roi_align(
        frames, rois.to(frames.dtype), output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True
    )


def hand_views(boxes: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left/right view boxes from YOLO detections, falling back to image halves where no hand is found.

    ``boxes`` (N, K, 6) normalised x1 y1 x2 y2 conf cls, sorted by confidence; ``count`` (N,).
    Returns left (N, 4), right (N, 4) and a (N, 2) bool mask of which views came from a detection.
    The two most confident hands are ordered by their centre x; one hand fills the side it is on.
    Batched, with no per-frame loop and no host-device synchronisation: on CUDA a loop reading each
    frame's count waited for the device once per frame.
    """
    n, k = boxes.shape[:2]
    top = boxes[:, :2, :4]  # (N, <=2, 4): the two most confident
    if k < 2:  # a detector keeping one box per frame
        top = torch.cat([top, top.new_zeros(n, 2 - k, 4)], 1)
    hands = count.clamp(max=2)[:, None]  # (N, 1)
    cx = (top[..., 0] + top[..., 2]) / 2  # (N, 2)
    swap = (cx[:, 1] < cx[:, 0])[:, None]  # two hands: the one further left takes the left view
    lo, hi = torch.where(swap, top[:, 1], top[:, 0]), torch.where(swap, top[:, 0], top[:, 1])
    one_left = (hands == 1) & (cx[:, :1] < 0.5)  # one hand fills the side its centre is on
    one_right = (hands == 1) & ~one_left
    left = torch.where(
        hands == 2, lo, torch.where(one_left, top[:, 0], boxes.new_tensor([0.0, 0.0, 0.5, 1.0]))
    )
    right = torch.where(
        hands == 2, hi, torch.where(one_right, top[:, 0], boxes.new_tensor([0.5, 0.0, 1.0, 1.0]))
    )
    found = torch.cat([(hands == 2) | one_left, (hands == 2) | one_right], 1)  # (N, 2)
    return left, right, found


def attention_peaks(attn: torch.Tensor, k: int) -> torch.Tensor:
    """Centres of the ``k`` most attended patches, normalised x y: (N, h, w) -> (N, k, 2), highest first."""
    n, h, w = attn.shape
    top = attn.reshape(n, -1).float().topk(min(k, h * w), dim=1).indices  # (N, k)
    rows, cols = top // w, top % w
    return torch.stack([(cols.float() + 0.5) / w, (rows.float() + 0.5) / h], dim=2)


def mask_box(masks: torch.Tensor, valid: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (N, 4) x1 y1 x2 y2 boxes around the union of the valid hand masks, widened by ``margin``.

    ``masks`` (N, K, S, S) bool over the frame, ``valid`` (N, K) bool. Returns the boxes and a (N,) bool
    of the frames that had any valid mask pixel; the other rows are meaningless (callers fall back).
    """
    union = (masks.bool() & valid.bool()[..., None, None]).any(1)  # (N, S, S)
    return bounding_box(union, margin)
