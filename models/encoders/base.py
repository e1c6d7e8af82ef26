"""The encoder interface, the name registry and the presets.

Every frozen encoder is an ``Encoder``: it carries its own preprocessing (timm's ``PretrainedCfg`` idea), so
no script ever repeats a mean, a std or an input size. Encoders are built only through ``create_encoder``,
which owns naming, weight identity (for the cache key) and seeding of random weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import WeightsUnavailableError

from .weights import LocalWeights, WeightSource, resolve_weights

WEIGHTS: tuple[str, ...] = ("pretrained", "random")


@dataclass(frozen=True)
class PreprocessConfig:
    """How frames in [0, 1] become this encoder's input; travels with the encoder."""

    input_size: tuple[int, int]  # (H, W)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    channels_last: bool = False  # CNNs run ~1.45x faster on CPU in channels_last

    @property
    def normalises(self) -> bool:
        return self.mean != (0.0, 0.0, 0.0) or self.std != (1.0, 1.0, 1.0)


class DinoOutput(NamedTuple):
    """DINO stream for a batch of frames."""

    cls: torch.Tensor  # (B, Dd) CLS token after the final norm
    attention: torch.Tensor  # (B, h, w) last-block CLS->patch attention, mean over heads
    heads: torch.Tensor  # (B, H, h, w) the same per head (what the mean is taken over)
    patches: torch.Tensor  # (B, h, w, Dd) patch tokens after the final norm (pooled inside hand masks)


class HandOutput(NamedTuple):
    """Hand detections, padded to a fixed K so they stack into one array."""

    boxes: torch.Tensor  # (B, K, 6) float32: x1 y1 x2 y2 in [0, 1], conf, cls; rows >= count are zero
    count: torch.Tensor  # (B,) int64


class Encoder(nn.Module):
    """A frozen feature extractor: ``forward(prepare(frames))``.

    Subclasses set ``role``, ``out_dim`` and ``preprocess`` in ``__init__``; ``create_encoder`` sets ``name``
    and ``identity``. The module always stays in eval mode: BatchNorm statistics and dropout must never switch
    to training behaviour, even when a parent module calls ``.train()``.
    """

    name: str
    role: str
    out_dim: int
    preprocess: PreprocessConfig
    identity: dict[str, str]

    def __init__(self, role: str, out_dim: int, preprocess: PreprocessConfig) -> None:
        super().__init__()
        self.name = ""
        self.role = role
        self.out_dim = int(out_dim)
        self.preprocess = preprocess
        self.identity = {}
        # Non-persistent: they follow .to(device) but stay out of state_dict (weights compare cleanly).
        self.register_buffer("_mean", torch.tensor(preprocess.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(preprocess.std).view(1, 3, 1, 1), persistent=False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] at any size -> (B, 3, h, w) resized and normalised model input."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected frames of shape (B, 3, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{self.name}: expected float frames in [0, 1], got {x.dtype}")
        cfg = self.preprocess
        if tuple(x.shape[-2:]) != cfg.input_size:
            x = F.interpolate(
                x, size=cfg.input_size, mode=cfg.interpolation, align_corners=False, antialias=True
            )
            if cfg.interpolation == "bicubic":
                x = x.clamp(0.0, 1.0)  # bicubic overshoots [0, 1]; PIL (timm's own eval transforms) clips
        if cfg.normalises:
            x = (x - self._mean.to(x.dtype)) / self._std.to(x.dtype)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def train(self, mode: bool = True) -> Encoder:
        return super().train(False)

    def freeze(self) -> Encoder:
        """Eval mode and no gradients: encoders are never trained here."""
        self.requires_grad_(False)
        return self.eval()


Builder = Callable[[LocalWeights | None], Encoder]


@dataclass(frozen=True)
class EncoderSpec:
    """One registry entry. ``source`` says where the real weights live; None means random-only (tiny)."""

    name: str
    role: str
    source: WeightSource | None
    build: Builder


_REGISTRY: dict[str, EncoderSpec] = {}


def register_encoder(
    name: str, role: str, source: WeightSource | None = None
) -> Callable[[Builder], Builder]:
    """Decorator: register ``build(weights: LocalWeights | None) -> Encoder`` under ``name``.

    ``build`` gets the resolved weight files, or None for a seeded random init; it never looks weights up
    itself, so what it loads is exactly what the encoder's identity (and the cache key) records.
    """

    def decorate(build: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} is registered twice")
        _REGISTRY[name] = EncoderSpec(name, role, source, build)
        return build

    return decorate


def unregister_encoder(name: str) -> None:
    """Remove a registration (test-only streams register encoders for one test)."""
    _REGISTRY.pop(name, None)


def list_encoders(role: str | None = None) -> list[str]:
    """Registered encoder names (sorted), optionally only those of one role."""
    return sorted(n for n, spec in _REGISTRY.items() if role is None or spec.role == role)


def encoder_spec(name: str) -> EncoderSpec:
    """The registry entry for ``name``; unknown names raise ValueError listing the valid ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; valid names: {', '.join(list_encoders())}")
    return _REGISTRY[name]


def _derived_seed(name: str, seed: int) -> int:
    # Stable across processes (unlike hash()), and distinct per encoder so two roles never share an init.
    digest = hashlib.sha256(f"{name}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


@contextmanager
def seeded_init(name: str, seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG for one construction without disturbing the caller's RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_derived_seed(name, seed))
        yield


def _check_weights(spec: EncoderSpec, weights: str) -> None:
    if weights not in WEIGHTS:
        raise ValueError(
            f"unknown weights {weights!r} for encoder {spec.name!r}; valid: {', '.join(WEIGHTS)}"
        )
    if weights == "pretrained" and spec.source is None:
        raise WeightsUnavailableError(
            f"Encoder '{spec.name}' is a tiny test model without pretrained weights: use `--weights random`."
        )


def encoder_identity(
    name: str, weights: str = "pretrained", seed: int = 0, revision: str | None = None
) -> dict:
    """What a cache key records of one encoder, without building it.

    Random weights: ``{"name", "weights": "random:<seed>"}``. Real weights: the hub repo (or URL), the
    resolved revision (commit hash) and the sha256 of every weight file, so a newer upload or another
    file makes another key. Missing weights raise ``WeightsUnavailableError`` here already.
    """
    spec = encoder_spec(name)
    _check_weights(spec, weights)
    if weights == "random":
        return {"name": name, "weights": f"random:{seed}"}
    return {"name": name, "weights": "pretrained", **resolve_weights(spec.source, name, revision).identity()}


def create_encoder(
    name: str, weights: str = "pretrained", seed: int = 0, revision: str | None = None
) -> Encoder:
    """Build a frozen encoder by registry name.

    ``weights="pretrained"`` loads the real weights (at ``revision`` when given) or raises
    ``WeightsUnavailableError``; it never falls back to random. ``weights="random"`` builds the same
    architecture with a seeded init (same seed, same weights).
    """
    spec = encoder_spec(name)
    _check_weights(spec, weights)
    local = resolve_weights(spec.source, name, revision) if weights == "pretrained" else None
    with seeded_init(name, seed):
        encoder = spec.build(local)
    if encoder.role != spec.role:
        raise TypeError(f"encoder {name!r} was registered as {spec.role!r} but built a {encoder.role!r}")
    encoder.name = name
    encoder.identity = (
        {"name": name, "weights": "pretrained", **local.identity()}
        if local is not None
        else {"name": name, "weights": f"random:{seed}"}
    )
    return encoder.freeze()
