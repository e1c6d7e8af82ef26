"""Sequence-consistent augmentation: one set of random parameters for every frame of a clip.

Frames of one gesture must move together: a flip, a distortion or a colour shift that changed from frame
to frame would be motion the hand never made. So the recipe is sampled once on the first frame with
Albumentations' ``ReplayCompose`` and replayed on every frame. Replay also reuses data-dependent params,
so even the noise (GaussNoise's noise map, ISONoise's seed) is the same on every frame.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Extraction runs offline: without this, importing albumentations asks PyPI for a newer version (up to
# 2 s when the network drops the packets), in the main process and in the worker server alike.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from core.errors import UserError  # noqa: E402
from data.warp import Warp  # noqa: E402

RECIPE_NAME = "gesture-sequence-aug/1"
# INTER_AREA for both the plain resize and the augmented path, so copy 0 and copies k >= 1 share pixels'
# resampling and differ only by the augmentation itself.
_INTERPOLATION = cv2.INTER_AREA


def build_recipe(image_size: int, flip: bool = True) -> A.ReplayCompose:
    """The augmentation recipe. Strengths are moderate: hue barely moves, so colour stays a usable cue."""
    transforms: list[Any] = [A.Resize(image_size, image_size, interpolation=_INTERPOLATION, p=1.0)]
    if flip:
        transforms.append(A.HorizontalFlip(p=0.5))
    transforms += [
        A.OneOf(
            [
                A.OpticalDistortion(distort_limit=(-0.1, 0.1), p=1.0),
                A.GridDistortion(num_steps=5, distort_limit=(-0.2, 0.2), p=1.0),
            ],
            p=0.5,
        ),
        A.OneOf(
            [
                A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1.0),
                A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03, p=1.0),
            ],
            p=0.8,
        ),
        A.OneOf(
            [
                A.GaussNoise(std_range=(0.02, 0.08), p=1.0),
                A.ISONoise(color_shift=(0.01, 0.04), intensity=(0.1, 0.4), p=1.0),
            ],
            p=0.6,
        ),
        A.OneOf([A.MotionBlur(blur_limit=(3, 7), p=1.0), A.GaussianBlur(blur_limit=(3, 5), p=1.0)], p=0.6),
    ]
    return A.ReplayCompose(transforms)


def parse_flip_swap(
    flip_swap: Mapping[str, str] | Iterable[str], class_names: Iterable[str]
) -> dict[str, str]:
    """``("swipe_left:swipe_right",)`` or ``{"swipe_left": "swipe_right"}`` -> a map that swaps both ways."""
    pairs = list(flip_swap.items()) if isinstance(flip_swap, Mapping) else []
    if not isinstance(flip_swap, Mapping):
        for item in flip_swap:
            left, sep, right = str(item).partition(":")
            if not sep or not left or not right or ":" in right:
                raise UserError(f"--flip-swap {item!r} must look like 'class_a:class_b'")
            pairs.append((left.strip(), right.strip()))
    known = set(class_names)
    swap: dict[str, str] = {}
    for left, right in pairs:
        for name in (left, right):
            if name not in known:
                raise UserError(
                    f"--flip-swap names unknown class {name!r}; classes are {', '.join(sorted(known))}"
                )
        if left == right:
            raise UserError(f"--flip-swap {left}:{right} swaps a class with itself; drop it")
        for a, b in ((left, right), (right, left)):
            if swap.get(a, b) != b:
                raise UserError(f"--flip-swap maps {a!r} to both {swap[a]!r} and {b!r}; keep one")
            swap[a] = b
    return swap


def _comparable(value: Any) -> Any:
    """Params in a form ``==`` can compare; arrays (noise maps, distortion grids) become digests."""
    if isinstance(value, np.ndarray):
        digest = hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
        return ("array", value.shape, str(value.dtype), digest)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def _applied_params(transform: Any) -> list[tuple[str, dict[str, Any]]]:
    """[(transform name, params)] of the leaf transforms a replayed pipeline actually applied."""
    if isinstance(transform, A.BaseCompose):
        return [item for child in transform.transforms for item in _applied_params(child)]
    if getattr(transform, "applied_in_replay", False):
        return [(type(transform).__name__, _comparable(transform.params))]
    return []


def _distortion(transform: Any) -> Warp | None:
    """The applied distortion's remap maps (the recipe applies at most one, after the flip)."""
    if isinstance(transform, A.BaseCompose):
        found = [w for child in transform.transforms if (w := _distortion(child)) is not None]
        if len(found) > 1:
            raise AssertionError("the recipe applied two distortions; data/warp.py follows one")
        return found[0] if found else None
    if getattr(transform, "applied_in_replay", False) and "map_x" in transform.params:
        return Warp.from_maps(transform.params["map_x"], transform.params["map_y"])
    return None


@dataclass
class AugmentResult:
    """``frames`` (T, S, S, 3) uint8; ``params[t]`` lists what was applied to frame t, for inspection."""

    frames: np.ndarray
    label: int
    flipped: bool
    params: list[list[tuple[str, dict[str, Any]]]]
    # the distortion applied after any flip (None: none was), so annotations can follow the pixels
    warp: Warp | None = None


class SequenceAugmenter:
    """Resize (and, given a seed, augment) all T frames of a sequence with one set of parameters.

    Picklable, so it can live in DataLoader workers; every call reseeds, so results depend only on
    (frames, seed), never on call order or worker.
    """

    def __init__(
        self,
        image_size: int,
        flip: bool = True,
        flip_swap: Mapping[str, str] | Iterable[str] = (),
        class_names: Iterable[str] = (),
    ) -> None:
        self.image_size = int(image_size)
        self.flip = bool(flip)
        self.class_names = list(class_names)
        self.swap = parse_flip_swap(flip_swap, self.class_names)
        index = {name: i for i, name in enumerate(self.class_names)}
        self._label_swap = {index[a]: index[b] for a, b in self.swap.items()}
        self._resize = A.Resize(self.image_size, self.image_size, interpolation=_INTERPOLATION, p=1.0)
        self._recipe = build_recipe(self.image_size, self.flip)

    def describe(self) -> dict[str, Any]:
        """Everything that changes the output bytes; belongs in a cache key."""
        return {
            "name": RECIPE_NAME,
            "image_size": self.image_size,
            "flip": self.flip,
            "flip_swap": sorted(f"{a}:{b}" for a, b in self.swap.items() if a < b),
            "albumentations": A.__version__,
            "recipe": A.to_dict(self._recipe),
        }

    def __call__(self, frames: np.ndarray, label: int, seed: int | None) -> tuple[np.ndarray, int]:
        """(T, H, W, 3) uint8 -> ((T, S, S, 3) uint8, label after a flip swap). ``seed=None``: resize only."""
        result = self.augment(frames, label, seed)
        return result.frames, result.label

    def augment(self, frames: np.ndarray, label: int, seed: int | None) -> AugmentResult:
        """Like ``__call__``, plus the params applied to each frame, so tests can see they agree."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        if seed is None:
            out = np.stack([self._resize(image=frame)["image"] for frame in frames])  # (T, S, S, 3)
            return AugmentResult(out, int(label), False, [[] for _ in frames])
        # One generator shared by all transforms (set_random_seed would give each the same stream and
        # correlate their coin flips).
        self._recipe.set_random_state(np.random.default_rng(seed), random.Random(seed))
        replay = self._recipe(image=frames[0])["replay"]
        pipeline = A.ReplayCompose._restore_for_replay(replay)  # params fixed; calls only replay them
        out_frames, params = [], []
        for frame in frames:
            out_frames.append(pipeline(image=frame, force_apply=True)["image"])
            params.append(_applied_params(pipeline))
        flipped = any(name == "HorizontalFlip" for name, _ in params[0])
        new_label = self._label_swap.get(int(label), int(label)) if flipped else int(label)
        return AugmentResult(np.stack(out_frames), new_label, flipped, params, _distortion(pipeline))
