"""Synthetic per-sequence features shaped and distributed like the real encoders' outputs.

Compression ratios and decode times depend on the values, so i.i.d. noise (incompressible) or constants
(free) would both mislead. What real features look like, and what is generated here:

- ViT / DINO CLS (after a final LayerNorm): per-dimension offsets and scales shared by all images, a few
  outlier dimensions with large magnitude, and image content in a low-rank subspace. Here: a fixed
  ``mu + sigma * (A @ z_t)`` with a 16-d latent ``z_t`` per view.
- CNN / SwAV pooled ReLU features: non-negative and right-skewed (lognormal per-channel means), with a
  few channels that are exactly zero. Here: ``m * exp(0.5 * B @ z_t)``, 3% of channels dead.
- Video: consecutive frames are alike. ``z_t`` is an AR(1) walk (rho 0.9) from a per-sequence start, plus
  a class direction, so sequences of one class share structure; a little i.i.d. noise on top.
- DINO attention (CLS -> patches, 14 x 14): a Gaussian blob that drifts over the clip, softmax-like
  normalised to 0.9 of the mass (the rest is CLS -> CLS), plus faint background.

All of it is then stored exactly as extraction stores it (float16 streams, the 12-channel layout with
zero-padded CNN chunks), so byte counts are the cache's, not an estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from cache.schema import Dims

LATENT = 16
RHO = 0.9


@dataclass(frozen=True)
class Sizes:
    """Encoder output sizes of a synthetic cache: what the default streams' encoders would give.

    ``dims()`` asks the registered streams themselves for their fields at these sizes, so a synthetic
    cache has exactly the layout an extraction would write.
    """

    frames: int
    embed_dim: int = 768
    dino_dim: int = 384
    attn_hw: tuple[int, int] = (14, 14)
    swav_dim: int = 2048
    max_hands: int = 4
    float_dtype: str = "float16"

    def dims(self) -> Dims:
        from extract.streams import StreamOptions, active_streams, preset_models, stream_fields

        stand_ins = {
            "vit": SimpleNamespace(out_dim=self.embed_dim),
            "cnn": SimpleNamespace(out_dim=3 * self.embed_dim),
            "dino": SimpleNamespace(out_dim=self.dino_dim, attn_hw=self.attn_hw, num_heads=1),
            "swav": SimpleNamespace(out_dim=self.swav_dim),
            "hands": SimpleNamespace(max_hands=self.max_hands),
        }
        options = StreamOptions()
        streams = active_streams(preset_models("full"), options)
        return Dims(self.frames, stream_fields(streams, stand_ins, options), self.float_dtype)


@dataclass
class _Space:
    """Fixed per-dimension structure of one feature stream (what the encoder is), shared by all clips."""

    offset: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    basis: np.ndarray  # (D, LATENT)
    positive: bool

    @classmethod
    def make(cls, rng: np.random.Generator, dim: int, positive: bool) -> _Space:
        basis = rng.normal(0, 1 / math.sqrt(LATENT), (dim, LATENT))
        if positive:  # pooled ReLU: lognormal channel means, some dead channels
            offset = rng.lognormal(-1.0, 1.0, dim) * (rng.random(dim) > 0.03)
            return cls(offset, np.full(dim, 0.5), basis, True)
        offset = rng.normal(0, 0.3, dim)
        scale = rng.lognormal(-0.3, 0.3, dim)
        outliers = rng.choice(dim, max(1, dim // 128), replace=False)
        offset[outliers] = rng.normal(0, 6, len(outliers))  # LayerNorm'd ViTs have a few huge dims
        return cls(offset, scale, basis, False)

    def sample(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(T, LATENT) latents -> (T, D) features."""
        u = z @ self.basis.T  # (T, D)
        if self.positive:
            return (self.offset * np.exp(self.scale * u)).astype(np.float32)
        noise = rng.normal(0, 0.05, u.shape)
        return (self.offset + self.scale * (u + noise)).astype(np.float32)


def _latents(rng: np.random.Generator, t: int, class_dir: np.ndarray) -> np.ndarray:
    """(T, LATENT) AR(1) walk around a class direction: smooth over frames, class-specific."""
    z = np.empty((t, LATENT))
    z[0] = class_dir + rng.normal(0, 1, LATENT)
    for i in range(1, t):
        z[i] = RHO * z[i - 1] + (1 - RHO) * class_dir + math.sqrt(1 - RHO**2) * rng.normal(0, 0.5, LATENT)
    return z


def _attention(rng: np.random.Generator, t: int, hw: tuple[int, int]) -> np.ndarray:
    """(T, h, w) CLS -> patch attention: a drifting blob holding 0.9 of the mass."""
    h, w = hw
    ys, xs = np.mgrid[0:h, 0:w]
    start, end = rng.uniform(0.2, 0.8, 2), rng.uniform(0.2, 0.8, 2)
    width = rng.uniform(1.0, 2.5)
    out = np.empty((t, h, w))
    for i in range(t):
        cy, cx = (start + (end - start) * i / max(1, t - 1)) * (h, w)
        blob = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * width**2)) + 0.02 * rng.random((h, w))
        out[i] = 0.9 * blob / blob.sum()
    return out.astype(np.float32)


class FeatureSynth:
    """Draws whole sequences' records (the dicts ``ShardStore.write_shard`` takes) for given sizes."""

    def __init__(self, sizes: Sizes, num_classes: int, cnn_dim: int = 2048, seed: int = 0) -> None:
        self.sizes, self.dims, self.cnn_dim = sizes, sizes.dims(), cnn_dim
        self.rng = np.random.default_rng(seed)
        self.vit = _Space.make(self.rng, sizes.embed_dim, positive=False)
        self.cnn = _Space.make(self.rng, cnn_dim, positive=True)
        self.dino = _Space.make(self.rng, sizes.dino_dim, positive=False)
        self.swav = _Space.make(self.rng, sizes.swav_dim, positive=True)
        self.class_dirs = self.rng.normal(0, 1, (num_classes, LATENT))

    def _embeddings(self, label: int) -> np.ndarray:
        """(T, 12, D): left/right/whole ViT and zero-padded 3-chunk CNN, in the cache's channel order."""
        t, d = self.sizes.frames, self.sizes.embed_dim
        views = {}
        for view in ("left", "right", "whole"):
            z = _latents(self.rng, t, self.class_dirs[label])
            cnn = np.zeros((t, 3 * d), np.float32)
            cnn[:, : self.cnn_dim] = self.cnn.sample(z, self.rng)
            views[view] = (self.vit.sample(z, self.rng)[:, None], cnn.reshape(t, 3, d))
        order = [views["left"][0], views["right"][0], views["left"][1], views["right"][1]]
        order += [views["whole"][0], views["whole"][1]]
        return np.concatenate(order, axis=1)  # (T, 12, D)

    def record(self, index: int, label: int, class_name: str) -> dict[str, object]:
        dims, t = self.sizes, self.sizes.frames
        z = _latents(self.rng, t, self.class_dirs[label])
        boxes = np.tile(np.array([0.3, 0.2, 0.7, 0.8], np.float32), (t, 1))
        hands = np.zeros((t, dims.max_hands, 6), np.float32)
        hands[:, 0] = [0.4, 0.3, 0.6, 0.6, 0.8, 0.0]
        return {
            "embeddings": self._embeddings(label).astype(dims.float_dtype),
            "dino_cls": self.dino.sample(z, self.rng).astype(dims.float_dtype),
            "dino_attention": _attention(self.rng, t, dims.attn_hw).astype(dims.float_dtype),
            "swav": self.swav.sample(z, self.rng).astype(dims.float_dtype),
            "swav_boxes": boxes,
            "hand_boxes": hands,
            "hand_count": np.ones(t, np.uint8),
            "labels": label,
            "frame_indices": np.arange(t, dtype=np.int32),
            "valid": np.ones(t, np.uint8),
            "sequence_ids": f"{class_name}/s{index:05d}",
            "content_ids": f"{index:064x}",
            "aug_index": 0,
        }
