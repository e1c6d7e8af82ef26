"""A synthetic hand-gesture dataset, generated in seconds, for demos and end-to-end tests.

Each class differs in motion (swipes in four directions, a circle, a push where the hand grows) *and*
in the hand's shape and colour, so even encoders with random weights separate the classes. Videos come
from pseudo-subjects (ids like ``s03_v007``, grouped by ``^(s\\d+)_``) who share a background texture and
hand size, which makes subject leakage and grouped splits testable. Output is the frame-folder layout.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from core.atomic import publish
from core.errors import UserError

GENERATOR = "gesture-demo/1"
MARKER = ".gesture-demo.json"  # hidden, so discovery ignores it
GROUP_REGEX = r"^(s\d+)_"
MIN_FRAMES, MAX_FRAMES = 20, 48

# name -> (hand shape, RGB colour)
CLASSES: dict[str, tuple[str, tuple[int, int, int]]] = {
    "circle": ("star", (200, 50, 220)),
    "push": ("hexagon", (30, 205, 215)),
    "swipe_down": ("diamond", (240, 205, 30)),
    "swipe_left": ("ellipse", (230, 60, 40)),
    "swipe_right": ("square", (40, 90, 230)),
    "swipe_up": ("triangle", (40, 190, 60)),
}


def _unit_outline(shape: str) -> list[tuple[float, float]]:
    """Polygon of a hand shape with radius ~1 around (0, 0)."""
    if shape == "star":
        return [
            ((1.0 if k % 2 == 0 else 0.45) * math.cos(math.pi * k / 5 - math.pi / 2),
             (1.0 if k % 2 == 0 else 0.45) * math.sin(math.pi * k / 5 - math.pi / 2))
            for k in range(10)
        ]  # fmt: skip
    if shape == "hexagon":
        return [(math.cos(math.pi * k / 3), math.sin(math.pi * k / 3)) for k in range(6)]
    if shape == "diamond":
        return [(0.0, -1.1), (0.7, 0.0), (0.0, 1.1), (-0.7, 0.0)]
    if shape == "square":
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if shape == "triangle":
        return [(0.0, -1.0), (0.95, 0.8), (-0.95, 0.8)]
    return [
        (math.cos(2 * math.pi * k / 24), 0.75 * math.sin(2 * math.pi * k / 24)) for k in range(24)
    ]  # ellipse


def _trajectory(class_name: str, progress: float, width: int, height: int, jitter: np.ndarray) -> tuple:
    """(x, y, scale) of the hand at ``progress`` in [0, 1]; ``jitter`` (4,) varies each video a little."""
    wobble = 0.03 * height * math.sin(2 * math.pi * (progress + jitter[0]))
    across = 0.2 + 0.6 * progress  # 0.2 -> 0.8 of the frame
    x0, y0 = (0.5 + 0.1 * jitter[1]) * width, (0.5 + 0.1 * jitter[2]) * height
    if class_name == "swipe_left":
        return (1 - across) * width, y0 + wobble, 1.0
    if class_name == "swipe_right":
        return across * width, y0 + wobble, 1.0
    if class_name == "swipe_up":
        return x0 + wobble, (1 - across) * height, 1.0
    if class_name == "swipe_down":
        return x0 + wobble, across * height, 1.0
    if class_name == "circle":
        angle = 2 * math.pi * (progress + jitter[3])
        radius = 0.27 * min(width, height)
        return x0 + radius * math.cos(angle), y0 + radius * math.sin(angle), 1.0
    return x0, y0, 0.55 + 1.0 * progress  # push: the hand comes towards the camera


def _backgrounds(rng: np.random.Generator, base: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    """Three noisy variants of one textured background (H, W, 3) uint8, cycled over the frames.

    Texture and stripes are drawn per video, so different videos never look alike by accident (which the
    leakage check would rightly flag)."""
    # Mostly luminance texture on a muted base: the saturated hand colours stay the one strong colour cue.
    coarse = rng.uniform(-25, 25, (max(2, height // 12), max(2, width // 12))).astype(np.float32)
    luminance = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)  # (H, W)
    coarse_tint = rng.uniform(-8, 8, (max(2, height // 24), max(2, width // 24), 3)).astype(np.float32)
    texture = luminance[:, :, None] + cv2.resize(coarse_tint, (width, height), interpolation=cv2.INTER_LINEAR)
    angle, period, phase = (
        rng.uniform(0, math.pi),
        rng.uniform(0.05, 0.2) * width,
        rng.uniform(0, 2 * math.pi),
    )
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    stripes = 8 * np.sin((xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period) + phase)
    background = base[None, None, :] + texture + stripes[:, :, None]  # (H, W, 3)
    return [
        np.clip(background + 7 * rng.standard_normal(background.shape, dtype=np.float32), 0, 255).astype(
            np.uint8
        )
        for _ in range(3)
    ]


def _write_video(
    folder: Path,
    video_id: str,
    class_name: str,
    rng: np.random.Generator,
    subject: dict,
    size: tuple[int, int],
) -> list[list[float]]:
    """Write one video's frames; return the hand's true box per frame, (x1, y1, x2, y2) in [0, 1]."""
    width, height = size
    shape, colour = CLASSES[class_name]
    num_frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    if subject["short"]:
        num_frames = int(rng.integers(MIN_FRAMES, 32))
    backgrounds = _backgrounds(rng, subject["background"], width, height)
    outline = _unit_outline(shape)
    radius = 0.24 * min(width, height) * subject["hand_scale"] * float(rng.uniform(0.9, 1.1))
    tilt = float(rng.uniform(-0.3, 0.3))
    fill = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in colour)
    edge = tuple(c // 2 for c in fill)
    jitter = rng.uniform(-1, 1, 4)
    cos_t, sin_t = math.cos(tilt), math.sin(tilt)
    boxes = []
    for i in range(num_frames):
        progress = 0.5 - 0.5 * math.cos(math.pi * i / (num_frames - 1))  # ease in and out
        x, y, scale = _trajectory(class_name, progress, width, height, jitter)
        r = radius * scale
        points = [(x + r * (u * cos_t - v * sin_t), y + r * (u * sin_t + v * cos_t)) for u, v in outline]
        image = Image.fromarray(backgrounds[i % 3])
        ImageDraw.Draw(image).polygon(points, fill=fill, outline=edge, width=max(1, width // 160))
        image.save(folder / f"{video_id}_frame_{i}.jpg", "JPEG", quality=90)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        box = (min(xs) / width, min(ys) / height, max(xs) / width, max(ys) / height)
        boxes.append([round(float(np.clip(c, 0.0, 1.0)), 5) for c in box])
    return boxes


def write_demo_dataset(
    out: Path,
    size: tuple[int, int] = (160, 120),
    videos_per_class: int = 12,
    seed: int = 0,
    subjects: int = 4,
) -> Path:
    """Write the demo dataset to ``out`` (``out/<class>/<sN>_<vNNN>_frame_<i>.jpg``) and return ``out``.

    ``size`` is (width, height). Deterministic for given arguments. An existing demo dataset at ``out``
    is replaced; any other non-empty folder is left alone and refused.
    """
    out = Path(out)
    width, height = int(size[0]), int(size[1])
    if width < 32 or height < 32 or videos_per_class < 1 or subjects < 1:
        raise UserError("demo dataset needs size >= 32x32, videos_per_class >= 1 and subjects >= 1")
    if out.exists() and not (out / MARKER).exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not a demo dataset; choose another --out or empty it")

    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    people = []
    for s in range(subjects):
        rng = np.random.default_rng([seed, 1_000 + s])
        base = rng.uniform(70, 170) + rng.uniform(-20, 20, 3)  # a muted room colour per subject
        people.append({"background": base, "hand_scale": float(rng.uniform(0.85, 1.15))})
    lengths: dict[str, int] = {}
    truth: dict[str, list[list[float]]] = {}
    for class_index, class_name in enumerate(sorted(CLASSES)):
        folder = staging / class_name
        folder.mkdir()
        for v in range(videos_per_class):
            number = class_index * videos_per_class + v + 1
            s = v % subjects
            video_id = f"s{s + 1:02d}_v{number:03d}"
            rng = np.random.default_rng([seed, class_index, v])
            subject = {**people[s], "short": v == 0}  # every class gets a video shorter than 32 frames
            boxes = _write_video(folder, video_id, class_name, rng, subject, size)
            lengths[f"{class_name}/{video_id}"] = len(boxes)
            truth[f"{class_name}/{video_id}"] = boxes

    marker = {
        "generator": GENERATOR,
        "size": [width, height],
        "videos_per_class": videos_per_class,
        "seed": seed,
        "subjects": subjects,
        "classes": sorted(CLASSES),
        "group_regex": GROUP_REGEX,
        "frames": lengths,
        "hand_boxes": truth,
    }
    (staging / MARKER).write_text(json.dumps(marker, indent=1))
    if out.exists():
        shutil.rmtree(out)
    publish(staging, out)
    return out


def true_hand_boxes(data_dir: Path) -> dict[str, np.ndarray]:
    """The generator's own hand box per frame, ``class/video`` -> (frames, 4) x1 y1 x2 y2 in [0, 1].

    The ground truth that box fidelity (``--hands-every``) and the demo's hand track are measured against.
    """
    marker = Path(data_dir) / MARKER
    try:
        boxes = json.loads(marker.read_text(encoding="utf-8"))["hand_boxes"]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{marker}: no demo hand boxes ({exc}); regenerate the demo dataset") from None
    return {video: np.asarray(b, dtype=np.float32).reshape(-1, 4) for video, b in boxes.items()}
