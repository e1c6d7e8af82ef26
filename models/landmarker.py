"""MediaPipe HandLandmarker (the Tasks API) as a batch function: frames in, two hand slots out.

MediaPipe is an optional install (``pip install ".[landmarks]"``) and its model is a file the user
downloads (``hand_landmarker.task``); both are checked before anything runs, each with a one-line error
naming the command that fixes it. The landmarker runs in IMAGE mode, one frame at a time, so a frame's
landmarks never depend on which frames were batched with it (VIDEO mode tracks across calls).

Slots are fixed: slot 0 holds the hand MediaPipe labels ``Left``, slot 1 the one it labels ``Right``.
MediaPipe 1.x documents these labels as the subject's hands, not the viewer's (a horizontally mirrored
image swaps them; older 0.10 releases assumed a mirrored selfie image); they are stored as reported.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError, WeightsUnavailableError

POINTS = 21  # MediaPipe hand landmarks per hand
SLOTS = ("left", "right")  # slot order of every stored (2, 21, 3) landmark array
MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/latest/"
    "hand_landmarker.task"
)
INSTALL = 'pip install ".[landmarks]"'


def mediapipe_version() -> str:
    """The installed MediaPipe release; a one-line error naming the install command when it is absent."""
    try:
        if importlib.util.find_spec("mediapipe") is None:
            raise PackageNotFoundError("mediapipe")
        return version("mediapipe")
    except PackageNotFoundError:
        raise UserError(f"--landmarks mediapipe needs MediaPipe, which is not installed: {INSTALL}") from None


def check_model(path: str | Path) -> Path:
    """The ``.task`` file, which must exist; else the error says where to get it."""
    task = Path(path) if str(path) else None
    if task is None or not task.is_file():
        where = f"{task} does not exist" if task is not None else "no --landmark-model given"
        raise WeightsUnavailableError(
            f"--landmarks mediapipe needs hand_landmarker.task ({where}): "
            f"curl -LO {MODEL_URL} and pass --landmark-model hand_landmarker.task"
        )
    return task


def result_slots(result: Any) -> tuple[np.ndarray, np.ndarray]:
    """One ``HandLandmarkerResult`` -> points (2, 21, 3) float32 (x, y normalised, z) and valid (2,) uint8.

    Each detected hand goes to the slot its handedness label names; when both hands carry one label,
    the more confident keeps the slot and the other takes the free one, so no detection is lost.
    """
    points = np.zeros((len(SLOTS), POINTS, 3), np.float32)  # (2, 21, 3)
    valid = np.zeros(len(SLOTS), np.uint8)  # (2,)
    hands = []
    for marks, labels in zip(result.hand_landmarks or [], result.handedness or [], strict=False):
        best = max(labels, key=lambda c: c.score or 0.0) if labels else None
        name = (best.category_name or "").lower() if best is not None else ""
        hands.append(((best.score or 0.0) if best is not None else 0.0, name, marks))
    for _, name, marks in sorted(hands, key=lambda h: -h[0]):
        free = [s for s in range(len(SLOTS)) if not valid[s]]
        if not free or len(marks) != POINTS:
            continue
        slot = SLOTS.index(name) if name in SLOTS and not valid[SLOTS.index(name)] else free[0]
        points[slot] = [(p.x, p.y, p.z) for p in marks]
        valid[slot] = 1
    return points, valid


class HandLandmarks:
    """Runs a landmarker on (N, H, W, 3) uint8 RGB frames -> (N, 2, 21, 3) float32, (N, 2) uint8.

    ``landmarker`` is anything with MediaPipe's ``detect(image) -> HandLandmarkerResult``;
    ``to_image`` turns a frame into what it takes (``mediapipe.Image`` for the real one).
    """

    def __init__(self, landmarker: Any, to_image: Callable[[np.ndarray], Any]) -> None:
        self.landmarker = landmarker
        self.to_image = to_image

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = [result_slots(self.landmarker.detect(self.to_image(np.ascontiguousarray(f)))) for f in frames]
        if not out:
            return np.zeros((0, len(SLOTS), POINTS, 3), np.float32), np.zeros((0, len(SLOTS)), np.uint8)
        return np.stack([p for p, _ in out]), np.stack([v for _, v in out])


def load_landmarker(model: str | Path, max_hands: int = 2) -> HandLandmarks:
    """The real MediaPipe HandLandmarker from ``model`` (a ``hand_landmarker.task``), IMAGE mode."""
    task = check_model(model)
    mediapipe_version()
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(task)),
        running_mode=vision.RunningMode.IMAGE,
        num_hands=max_hands,
    )
    try:
        landmarker = vision.HandLandmarker.create_from_options(options)
    except (RuntimeError, ValueError) as e:
        reason = " ".join(str(e).split())[:200]
        raise WeightsUnavailableError(
            f"{task}: not a usable hand_landmarker.task ({reason}); curl -LO {MODEL_URL}"
        ) from None
    return HandLandmarks(landmarker, lambda f: mp.Image(image_format=mp.ImageFormat.SRGB, data=f))
