"""The device data path: decode workers hand over uint8 frames as decoded, the device does the rest.

With ``--data-path device`` (the default on CUDA) a clean copy does no CPU image work beyond decoding:
its (T, H, W, 3) uint8 frames travel as they are (in pinned memory on CUDA), are copied to the device
on a side stream while the previous batch is still in the encoders, and are resized to the square
``--image-size`` there, in batches. Augmented copies still come out of the albumentations recipe on
CPU (already square), and pass through untouched.

The resize reproduces OpenCV's ``INTER_AREA`` (what the host path's ``A.Resize`` runs) on 8-bit
levels: fractional-area weights when shrinking, OpenCV's fixed-point "area mode" linear weights when
enlarging, and OpenCV's rounding. So both paths feed the encoders the same pixels (a tie rounded the
other way is one level apart) and write the same features: the path is not part of the cache key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

# OpenCV's fixed-point scale of linear resize coefficients for 8-bit images (INTER_RESIZE_COEF_BITS = 11).
_COEF_SCALE = 2048
# Frames resized per call: bounds the float32 working set (64 Full-HD frames would take 1.6 GB).
_RESIZE_CHUNK = 16


@lru_cache(maxsize=64)
def area_weights(src: int, dst: int, linear: bool = False) -> np.ndarray:
    """(dst, src) float64: OpenCV ``INTER_AREA`` weights along one axis, shrinking both axes; with
    ``linear`` (an axis grows: OpenCV then runs its linear resize in "area mode" on both axes) those
    two-tap coefficients instead."""
    m = np.zeros((dst, src))
    scale = src / dst
    if not linear:  # computeResizeAreaTab: each output cell averages the source cells it covers
        for d in range(dst):
            f1 = d * scale
            f2 = f1 + scale
            cell = min(scale, src - f1)
            s1, s2 = math.ceil(f1), math.floor(f2)
            s2 = min(s2, src - 1)
            s1 = min(s1, s2)
            if s1 - f1 > 1e-3:
                m[d, s1 - 1] += (s1 - f1) / cell
            m[d, s1:s2] += 1.0 / cell
            if f2 - s2 > 1e-3:
                m[d, s2] += min(f2 - s2, 1.0, cell) / cell
        return m
    inv = dst / src
    for d in range(dst):  # resize's coefficient table in area mode (INTER_AREA while enlarging)
        s = math.floor(d * scale)
        f = (d + 1) - (s + 1) * inv
        f = 0.0 if f <= 0 else f - math.floor(f)
        if s >= src - 1:
            s, f = src - 1, 0.0
        m[d, s] += 1.0 - f
        if f:
            m[d, s + 1] += f
    return m


def _fixed_point(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: first source index, and the two coefficients as OpenCV's int16 (x 2048)."""
    m = area_weights(src, dst, linear=True)
    first = np.array([np.flatnonzero(row)[0] for row in m])
    c0 = np.rint(m[np.arange(dst), first] * _COEF_SCALE)
    nxt = np.minimum(first + 1, src - 1)
    c1 = np.where(nxt > first, np.rint(m[np.arange(dst), nxt] * _COEF_SCALE), 0)
    return first, c0, c1


@lru_cache(maxsize=64)
def _taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """The area weights as (dst, K) source indices and float32 weights, in OpenCV's order (zero-padded)."""
    m = area_weights(src, dst)
    k = int((m > 0).sum(1).max())
    index = np.zeros((dst, k), np.int64)
    weight = np.zeros((dst, k), np.float32)
    for d, row in enumerate(m):
        nz = np.flatnonzero(row)
        index[d, : nz.size], weight[d, : nz.size] = nz, row[nz]
    return index, weight


@lru_cache(maxsize=128)
def _on_device(table: Any, src: int, dst: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A weight table as tensors on ``device``, copied there once per size pair (not once per batch)."""
    return tuple(torch.from_numpy(np.asarray(a)).to(device) for a in table(src, dst))


def _area_axis(x: torch.Tensor, src: int, dst: int, dim: int) -> torch.Tensor:
    """Area-resize ``x`` along ``dim``: per output cell, tap after tap, each product rounded to float32
    before it is added, as OpenCV's resizeArea sums (a matmul's fused sums can round a tie otherwise)."""
    index, weight = _on_device(_taps, src, dst, x.device)
    shape = [1] * x.ndim
    shape[dim] = dst
    out = torch.zeros_like(x.narrow(dim, 0, 1)).expand(*x.shape[:dim], dst, *x.shape[dim + 1 :]).clone()
    for k in range(index.shape[1]):
        out = out + x.index_select(dim, index[:, k]) * weight[:, k].view(shape)
    return out


def _shrink(x: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    """(N, 3, H, W) float levels -> (N, 3, S, S) levels, both axes shrinking (OpenCV's area paths)."""
    if h % size == 0 and w % size == 0:  # resizeAreaFast: block means
        fy, fx = h // size, w // size
        mean = x.view(*x.shape[:2], size, fy, size, fx).mean(dim=(3, 5))
        # OpenCV's vector loop for 2x2 rounds half up ((sum + 2) >> 2); others round half to even.
        return torch.floor(mean + 0.5) if fy == fx == 2 else torch.round(mean)
    rows = _area_axis(x, w, size, 3)  # (N, 3, H, S): rows first, as OpenCV sums them
    return torch.round(_area_axis(rows, h, size, 2))  # (N, 3, S, S)


def _enlarge(x: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    """(N, 3, H, W) float levels -> (N, 3, S, S) levels, either axis growing: OpenCV's fixed-point linear
    resize (rows via int16 coefficients, then its vectorised vertical pass with its truncations)."""
    dev = x.device
    xi, x0, x1 = _on_device(_fixed_point, w, size, dev)
    yi, y0, y1 = _on_device(_fixed_point, h, size, dev)
    xn, yn = (xi + 1).clamp(max=w - 1), (yi + 1).clamp(max=h - 1)
    # Horizontal: exact integers (at most 255 * 2048 * 2 < 2**24), so float32 holds them exactly.
    rows = x[..., xi] * x0.float() + x[..., xn] * x1.float()  # (N, 3, H, S)
    s0 = rows[..., yi, :].to(torch.int32) >> 4  # (N, 3, S, S)
    s1 = rows[..., yn, :].to(torch.int32) >> 4
    b0 = y0.to(torch.int32).view(-1, 1)
    b1 = y1.to(torch.int32).view(-1, 1)
    out = (((s0 * b0) >> 16) + ((s1 * b1) >> 16) + 2) >> 2
    return out.clamp(0, 255).float()


def resize_area(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 on any device -> (N, 3, S, S) float in [0, 1] on the same device, the pixels
    ``A.Resize(S, S, INTER_AREA)`` gives on CPU (up to a rounding tie)."""
    n, h, w, _ = frames.shape
    x = frames.permute(0, 3, 1, 2)  # (N, 3, H, W) uint8
    if (h, w) == (size, size):
        return x.float().div_(255)
    out = []
    for chunk in x.split(_RESIZE_CHUNK):
        levels = chunk.float()
        if h >= size and w >= size:
            out.append(_shrink(levels, size, h, w))
        else:
            out.append(_enlarge(levels, size, h, w))
    return torch.cat(out).clamp_(0, 255).div_(255)


@dataclass
class Staged:
    """One batch of items on its way to the device: their frames, copied (or being copied) there."""

    items: list[dict[str, Any]]
    frames: list[torch.Tensor]  # per good item, (T, H, W, 3) uint8 on the device
    ready: torch.cuda.Event | None  # recorded on the copy stream after the last copy


class DeviceFrames:
    """Copies worker batches to the device ahead of use and turns them into encoder input there.

    On CUDA, copies run on their own stream from pinned memory, so batch k+1 travels while batch k is
    still in the encoders (``stage`` keeps one batch in hand); the default stream waits on an event
    before reading them. On CPU the same code runs without streams: it is what the equivalence test
    exercises.
    """

    def __init__(self, device: torch.device, image_size: int) -> None:
        self.device = device
        self.image_size = int(image_size)
        cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if cuda else None

    def upload(self, items: list[dict[str, Any]]) -> Staged:
        """Start the copies of every decoded item's frames (errors stay on the host)."""
        good = [it["frames"] for it in items if "error" not in it]
        if self.stream is None:
            return Staged(items, [f.to(self.device) for f in good], None)
        with torch.cuda.stream(self.stream):
            moved = [f.to(self.device, non_blocking=True) for f in good]
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return Staged(items, moved, ready)

    def stage(self, batches: Iterable[list[dict[str, Any]]]) -> Iterator[Staged]:
        """Yield each batch with its copy started one batch ahead of the batch being encoded."""
        held: Staged | None = None
        for items in batches:
            staged = self.upload(items)
            if held is not None:
                yield held
            held = staged
        if held is not None:
            yield held

    def frames(self, staged: Staged, keep: list[int] | None = None) -> torch.Tensor:
        """(N, 3, S, S) float in [0, 1] on the device: the staged frames (the good items ``keep`` picks,
        all by default) resized per frame size, concatenated in item order."""
        if staged.ready is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(staged.ready)
            for f in staged.frames:
                f.record_stream(
                    current
                )  # the allocator must not recycle them while the copy stream owns them
        chosen = staged.frames if keep is None else [staged.frames[i] for i in keep]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, f in enumerate(chosen):
            by_size.setdefault(tuple(f.shape[1:]), []).append(i)
        parts: list[torch.Tensor | None] = [None] * len(chosen)
        for group in by_size.values():  # one resize call per frame size in the batch
            resized = resize_area(torch.cat([chosen[i] for i in group]), self.image_size)
            for i, part in zip(group, resized.split([len(chosen[i]) for i in group]), strict=True):
                parts[i] = part
        return torch.cat(parts)  # (N, 3, S, S)


def resolve_data_path(choice: str, device: torch.device) -> str:
    """``--data-path``: ``auto`` is the device path on CUDA (where CPU resizing would starve the GPU) and
    the host path elsewhere (on CPU both resize on the same cores; the host path overlaps it in workers)."""
    if choice == "auto":
        return "device" if device.type == "cuda" else "host"
    return choice


def compile_backbone(encoder: torch.nn.Module) -> Any:
    """``torch.compile`` the encoder's network: the hand detector's ``model`` in place (its NMS and box
    lists stay eager, outside the graph), every other encoder as a whole."""
    model = getattr(encoder, "model", None)
    if getattr(encoder, "role", "") == "hands" and isinstance(model, torch.nn.Module):
        encoder.model = torch.compile(model)
        return encoder
    return torch.compile(encoder)
