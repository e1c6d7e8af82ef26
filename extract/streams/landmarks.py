"""The landmarks stream: 21 keypoints per hand for two hands per frame, from MediaPipe or imported.

Writes ``landmarks`` (2, 21, 3) float (x, y normalised to the frame, z; slot 0 the left hand, slot 1 the
right) and ``landmark_valid`` (2,) uint8. ``--landmarks`` picks the source:

- ``mediapipe``: MediaPipe's HandLandmarker on every frame (models/landmarker.py), ``--landmark-model``
  naming the ``hand_landmarker.task``; keyed by the file's sha256 and the MediaPipe release.
- ``npz:DIR``: the landmark system's ``.npz`` per video (``DIR/<class>/<video_id>.npz`` or
  ``DIR/<video_id>.npz``) with ``left_hand`` and ``right_hand`` (T, 21, C) and optional ``pose``
  (T, 33, C), rows indexed by source frame. Also writes ``pose`` (33, 3) float and ``pose_valid`` ()
  uint8 (0 for files without pose). The files join each video's fingerprint (``sources``), so a changed
  file re-extracts its video only. They describe the original video: a flipped augmented copy carries
  them mirrored (x to 1 - x, left and right hands and pose sides swapped; data/mirror.py) and a
  distorted one carries them moved as its pixels were (data/warp.py), as the annotations stream does.
- ``annotations``: the hand landmarks the dataset's format annotates (``--format hagrid``: HaGRIDv2's
  ``hand_landmarks`` or HaGRID v1's ``landmarks``), x, y as annotated and z 0 (as ``.npz`` files with
  C = 2). HaGRID names no handedness per hand: the gesturing hand goes to the slot ``leading_hand`` names
  where the annotation has one, else the hands are ordered by x (data/formats/hagrid_hands.py says when,
  and what that means). The annotation is part of each sample's content address (cache/fingerprint.py),
  so editing it re-extracts that sample. A format without annotated landmarks is a one-line error; a
  dataset where no annotation has a whole hand is a warning before extraction (it would store only
  absences).

Runs no encoder role, so it never becomes part of a preset; ``--landmarks none`` (the default) leaves it out.
"""

from __future__ import annotations

import sys
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cache.schema import FieldSpec
from core.errors import BadInputError, UserError
from data.landmark_files import find_npz, npz_names
from data.mirror import mirror_hands, mirror_pose
from data.warp import Warp, warp_points
from models.landmarker import POINTS, SLOTS, HandLandmarks, check_model, load_landmarker, mediapipe_version

from .base import FrameBatch, Stream, StreamOptions, register_stream

POSE_POINTS = 33  # MediaPipe pose landmarks
# Bump when reading the files or placing the annotated hands changes the stored bytes (v2: flipped copies
# carry them mirrored; v3: distorted copies carry them moved).
NPZ_VERSION = "landmark-npz-v3"
ANNOTATIONS_VERSION = "landmark-annotations-v3"
_landmarkers: dict[str, HandLandmarks] = {}  # model path -> loaded landmarker, one per process


def parse_source(options: StreamOptions) -> tuple[str, Path | None]:
    """``--landmarks`` -> ("none" | "mediapipe" | "npz" | "annotations", DIR or None); anything else is a
    user error."""
    text = (options.landmarks or "none").strip()
    if text in ("none", "mediapipe", "annotations"):
        return text, None
    kind, sep, folder = text.partition(":")
    if kind == "npz" and sep and folder:
        return "npz", Path(folder)
    raise UserError(f"--landmarks {text!r}: expected none, mediapipe, npz:DIR or annotations")


def annotating_format(options: StreamOptions) -> Any:
    """The dataset's format, which must annotate hand landmarks for ``--landmarks annotations``."""
    from data.formats import format_class

    fmt = format_class(options.annotations) if options.annotations else None
    if fmt is None or not fmt.annotates_hands:
        raise UserError(
            f"--landmarks annotations: the {options.annotations or 'dataset'!s} format annotates no hand "
            "landmarks (--format hagrid with HaGRIDv2's hand_landmarks does); use --landmarks npz:DIR or "
            "mediapipe for this corpus"
        )
    return fmt


def landmarker(model: str) -> HandLandmarks:
    """The MediaPipe landmarker of ``model``, loaded once per process (tests put a fake one here)."""
    if model not in _landmarkers:
        _landmarkers[model] = load_landmarker(model)
    return _landmarkers[model]


def npz_file(folder: Path, video: Any) -> Path:
    """The ``.npz`` of one video: under its class folder, else directly in ``folder``. An unlabelled input
    (predict, show) has no class folder."""
    found = find_npz(folder, video)
    if found is not None:
        return found
    names = npz_names(video)
    raise BadInputError(
        f"{folder}: no landmarks for video {video.video_id if video.label < 0 else video.key} (looked for "
        f"{' and '.join(names)}); export them, or leave landmarks out (extract: --landmarks none, predict: "
        "no --landmarks-npz, show: overlays without --landmarks)"
    )


def _points(path: Path, name: str, array: np.ndarray, joints: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, joints, C >= 2) -> (T, joints, 3) float32 with NaN as 0, and (T,) uint8: finite, not all zero."""
    if array.ndim != 3 or array.shape[1] != joints or array.shape[2] < 2:
        raise BadInputError(
            f"{path}: '{name}' has shape {array.shape}, expected (T, {joints}, C) with C >= 2; re-export it"
        )
    xyz = np.zeros((array.shape[0], joints, 3), np.float32)
    xyz[..., : min(3, array.shape[2])] = array[..., :3]
    finite = np.isfinite(xyz).all(axis=(1, 2))
    xyz = np.nan_to_num(xyz, nan=0.0, posinf=0.0, neginf=0.0)
    return xyz, (finite & (np.abs(xyz).sum(axis=(1, 2)) > 0)).astype(np.uint8)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """One landmark file -> ``hands`` (T, 2, 21, 3), ``hands_valid`` (T, 2), ``pose`` (T, 33, 3),
    ``pose_valid`` (T,); a file that is not what the landmark system writes is a one-line error."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {
                k: np.asarray(z[k], dtype=np.float32) for k in ("left_hand", "right_hand", "pose") if k in z
            }
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        if "allow_pickle" in reason:  # numpy's advice to load it unsafely is not ours to give
            reason = "it holds pickled objects, not plain arrays"
        raise BadInputError(f"{path}: cannot be read as .npz ({reason}); re-export it") from None
    missing = [k for k in ("left_hand", "right_hand") if k not in arrays]
    if missing:
        raise BadInputError(
            f"{path}: no {' or '.join(missing)} array (expected left_hand, right_hand (T, 21, C), "
            "optional pose (T, 33, C)); re-export it"
        )
    hands = [_points(path, f"{k}_hand", arrays[f"{k}_hand"], POINTS) for k in SLOTS]  # named as in the file
    t = hands[0][0].shape[0]
    pose, pose_valid = (
        _points(path, "pose", arrays["pose"], POSE_POINTS)
        if "pose" in arrays
        else (np.zeros((t, POSE_POINTS, 3), np.float32), np.zeros(t, np.uint8))
    )
    if {len(hands[1][0]), len(pose)} != {t}:
        raise BadInputError(f"{path}: left_hand, right_hand and pose differ in length (T); re-export it")
    return {
        "hands": np.stack([p for p, _ in hands], axis=1),  # (T, 2, 21, 3)
        "hands_valid": np.stack([v for _, v in hands], axis=1),  # (T, 2)
        "pose": pose,  # (T, 33, 3)
        "pose_valid": pose_valid,  # (T,)
    }


class _NpzFiles:
    """The last few landmark files read, each once (a batch holds T frames of each video); a file
    rewritten since (its size or mtime changed) is read again."""

    def __init__(self, folder: Path, keep: int = 8) -> None:
        self.folder, self.keep = folder, keep
        self.files: OrderedDict[tuple[str, int, int], dict[str, np.ndarray]] = OrderedDict()

    def frame(self, video: Any, index: int) -> dict[str, np.ndarray]:
        path = npz_file(self.folder, video)
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self.files:
            self.files[key] = read_npz(path)
            while len(self.files) > self.keep:
                self.files.popitem(last=False)
        arrays = self.files[key]
        if not 0 <= index < len(arrays["hands"]):
            raise BadInputError(
                f"{path}: has {len(arrays['hands'])} frames, but video {video.key} needs frame {index}; "
                "re-export the landmarks from this video"
            )
        return {k: v[index] for k, v in arrays.items()}


_npz_readers: dict[str, _NpzFiles] = {}
_warned: set[str] = set()


def _warn_once(line: str) -> None:
    """Say it once per process: predict runs the stream once per input and window."""
    if line not in _warned:
        _warned.add(line)
        print(f"warning: {line}", file=sys.stderr)


@register_stream
class Landmarks(Stream):
    name = "landmarks"
    models = {}

    def active(self, options: StreamOptions) -> bool:
        return parse_source(options)[0] != "none"

    def key(self, options: StreamOptions) -> dict[str, Any]:
        kind, _ = parse_source(options)
        if kind == "npz":  # the folder is not keyed: each file's fingerprint is (sources)
            return {"source": "npz", "reader": NPZ_VERSION}
        if kind == "annotations":  # each sample's annotation is in its content address
            return {
                "source": "annotations",
                "format": annotating_format(options).name,
                "reader": ANNOTATIONS_VERSION,
            }
        from models.encoders.digest import file_sha256

        task = check_model(options.landmark_model)
        return {"source": "mediapipe", "mediapipe": mediapipe_version(), "model_sha256": file_sha256(task)}

    def ignored(self, options: StreamOptions, runs: bool) -> list[str]:
        # Only MediaPipe reads the model (and only then is its digest keyed); npz and annotations do not.
        if not options.landmark_model or parse_source(options)[0] == "mediapipe":
            return []
        return [
            f"--landmark-model has no effect: only --landmarks mediapipe runs it, and --landmarks is "
            f"{options.landmarks or 'none'}"
        ]

    def warnings(self, videos: Sequence[Any], options: StreamOptions) -> list[str]:
        if parse_source(options)[0] != "annotations" or not videos:
            return []
        # Stops at the first annotated hand, so it is cheap whenever there is one. Frame 0: the formats that
        # annotate hands (HaGRID) are still images.
        fmt = annotating_format(options)
        if any(v.annotations is not None and fmt.annotated_hands(v, 0)[1].any() for v in videos):
            return []
        return [
            f"--landmarks annotations: none of the {len(videos)} samples' annotations has a hand with all "
            f"{POINTS} landmarks, so every stored landmark is absent; check that the annotation files are "
            "the ones with landmarks, or drop --landmarks"
        ]

    def sources(self, video: Any, options: StreamOptions) -> tuple[Path, ...]:
        kind, folder = parse_source(options)
        return (npz_file(folder, video),) if kind == "npz" and folder is not None else ()

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        hands = (
            FieldSpec("landmarks", (len(SLOTS), POINTS, 3)),
            FieldSpec("landmark_valid", (len(SLOTS),), "uint8", bounds=(0, 1)),
        )
        if parse_source(options)[0] != "npz":
            return hands
        return (
            *hands,
            FieldSpec("pose", (POSE_POINTS, 3)),
            FieldSpec("pose_valid", (), "uint8", bounds=(0, 1)),
        )

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        kind, folder = parse_source(batch.options)
        if kind == "mediapipe":
            frames = batch.frames.mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            with batch.stage("landmarks"):
                points, valid = landmarker(batch.options.landmark_model)(frames)  # (N, 2, 21, 3), (N, 2)
            return {"landmarks": torch.from_numpy(points), "landmark_valid": torch.from_numpy(valid)}
        if kind == "annotations":
            return annotated(batch)
        n = batch.frames.shape[0]
        if batch.samples is None:  # predict's inputs, without --landmarks-npz: stored as absent
            _warn_once(
                "--landmarks npz: no landmark files for these inputs (predict --landmarks-npz DIR gives "
                "them); their landmarks are absent"
            )
            rows = [read_empty()] * n
        else:
            reader = _npz_readers.setdefault(str(folder), _NpzFiles(folder))
            rows = [reader.frame(video, index) for video, index in batch.samples]
            rows = [_mirrored_row(r) if m else r for r, m in zip(rows, batch.flips(), strict=True)]
            rows = [
                r if w is None else _warped_row(r, w) for r, w in zip(rows, batch.distortions(), strict=True)
            ]
        stack = {k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in rows[0]}
        return {
            "landmarks": stack["hands"],  # (N, 2, 21, 3)
            "landmark_valid": stack["hands_valid"],  # (N, 2)
            "pose": stack["pose"],  # (N, 33, 3)
            "pose_valid": stack["pose_valid"],  # (N,)
        }


def annotated(batch: FrameBatch) -> dict[str, torch.Tensor]:
    """The frames' annotated hands; a frame from no annotated sample (predict's inputs) has none."""
    empty = read_empty()
    rows = [(empty["hands"], empty["hands_valid"])] * batch.frames.shape[0]
    if batch.samples is None:
        _warn_once("--landmarks annotations: new inputs have no annotations; their landmarks are absent")
    else:
        fmt = annotating_format(batch.options)
        rows = [
            fmt.annotated_hands(video, index) if getattr(video, "annotations", None) is not None else row
            for (video, index), row in zip(batch.samples, rows, strict=True)
        ]
        rows = [mirror_hands(*row) if m else row for row, m in zip(rows, batch.flips(), strict=True)]
        rows = [
            row if w is None else (warp_points(row[0], row[1], w), row[1])
            for row, w in zip(rows, batch.distortions(), strict=True)
        ]
    return {
        "landmarks": torch.from_numpy(np.stack([p for p, _ in rows])),  # (N, 2, 21, 3)
        "landmark_valid": torch.from_numpy(np.stack([v for _, v in rows])),  # (N, 2)
    }


def _mirrored_row(row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One frame's imported landmarks as they read on the frame flipped left-right."""
    hands, hands_valid = mirror_hands(row["hands"], row["hands_valid"])
    pose = mirror_pose(row["pose"], bool(row["pose_valid"]))
    return {**row, "hands": hands, "hands_valid": hands_valid, "pose": pose}


def _warped_row(row: dict[str, np.ndarray], warp: Warp) -> dict[str, np.ndarray]:
    """One frame's imported landmarks (mirrored first for a flipped copy) moved as the copy's distortion
    moved its pixels; absent hands and pose stay as they were."""
    pose = warp_points(row["pose"][None], np.asarray(row["pose_valid"]).reshape(1), warp)[0]
    return {**row, "hands": warp_points(row["hands"], row["hands_valid"], warp), "pose": pose}


def read_empty() -> dict[str, np.ndarray]:
    """One frame with no landmarks at all (every validity 0)."""
    return {
        "hands": np.zeros((len(SLOTS), POINTS, 3), np.float32),
        "hands_valid": np.zeros(len(SLOTS), np.uint8),
        "pose": np.zeros((POSE_POINTS, 3), np.float32),
        "pose_valid": np.zeros((), np.uint8),
    }
