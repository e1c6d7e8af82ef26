"""Catching train/val/test leakage before any compute is spent on it.

A video in two splits is an error. Near-identical frames in different splits (the same clip copied under
two names, or one subject filmed twice against one background) are only a warning: they may be
legitimate, but a validation score measured on them flatters the model.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from core.errors import BadInputError
from data.frames import MAX_PIXELS, open_image, read_frames
from data.sampling import sample_indices
from data.sequence import Video

# A thumbnail this flat (e.g. a black fade-in frame) hashes to ~0 and would "match" every other flat frame.
_MIN_THUMB_STD = 2.0
_BLOCK_ELEMENTS = 4_000_000  # bounds the (block, M) XOR matrix to ~32 MB


class LeakageWarning(UserWarning):
    """Near-duplicate frames in different splits."""


@dataclass(frozen=True)
class NearDuplicate:
    """Two videos in different splits whose sampled frames are within ``distance`` bits of each other."""

    key_a: str
    split_a: str
    key_b: str
    split_b: str
    distance: int


@dataclass
class LeakageReport:
    """What the near-duplicate check saw; ``pairs`` is sorted, closest first."""

    pairs: list[NearDuplicate] = field(default_factory=list)
    checked_videos: int = 0
    hashed_frames: int = 0
    unreadable_frames: int = 0
    threshold: int = 4

    @property
    def ok(self) -> bool:
        return not self.pairs

    def warnings(self) -> list[str]:
        """Lines for the caller to print on stderr; empty when nothing looks leaked."""
        return [] if self.ok else [self.message()]

    def message(self, examples: int = 3) -> str:
        """One line for stderr."""
        if self.ok:
            return f"leakage check: no near-duplicate frames across splits ({self.checked_videos} videos)"
        shown = "; ".join(
            f"{p.key_a} ({p.split_a}) ~ {p.key_b} ({p.split_b}), distance {p.distance}"
            for p in self.pairs[:examples]
        )
        return (
            f"possible leakage: {len(self.pairs)} video pair(s) in different splits have near-identical "
            f"frames (64-bit dHash distance <= {self.threshold}), e.g. {shown}; remove duplicates or keep "
            "each subject in one split with --group-regex"
        )


def dhash(gray: np.ndarray) -> int | None:
    """64-bit difference hash of a (H, W) grayscale image; None when the image is too flat to tell apart."""
    thumb = np.asarray(Image.fromarray(gray).resize((9, 8), Image.Resampling.BOX), dtype=np.float32)  # (8, 9)
    if thumb.std() < _MIN_THUMB_STD:
        return None
    bits = (thumb[:, 1:] > thumb[:, :-1]).ravel()  # (64,)
    return int(np.packbits(bits).view(">u8")[0])


def _gray_frame(path: Path) -> np.ndarray | None:
    """Cheap grayscale decode for hashing; JPEG ``draft`` decodes at reduced scale. None if unreadable:
    ``read_frames`` reports bad frames properly later, this check only needs the readable ones."""
    try:
        with open_image(path) as image:
            if image.size[0] * image.size[1] > MAX_PIXELS:
                return None
            image.draft("L", (64, 64))
            return np.asarray(image.convert("L"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _video_hashes(video: Video, frames_per_video: int) -> tuple[list[int], int]:
    """dHashes of a few frames spread over the video, and how many frames could not be read."""
    indices = video.start + np.unique(sample_indices(video.num_frames, frames_per_video)[0])
    if video.video_file is not None:
        try:
            grays = [np.asarray(Image.fromarray(f).convert("L")) for f in read_frames(video, indices)]
        except BadInputError:
            return [], len(indices)
    else:
        grays = [_gray_frame(video.frames[int(i)]) for i in indices]
    hashes = [h for g in grays if g is not None and (h := dhash(g)) is not None]
    return hashes, sum(g is None for g in grays)


def _popcount(values: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    return np.unpackbits(values.view(np.uint8).reshape(*values.shape, 8), axis=-1).sum(-1)


def _conflict_message(video: Video, splits: set[str]) -> str:
    source = video.video_file or (video.frames[0] if video.frames else video.root)
    names = " and ".join(sorted(splits))
    return (
        f"{source}: video '{video.key}' is in both {names}; keep each video in one split "
        "(remove it from one split folder, or fix the split file)"
    )


def check_leakage(
    videos: Iterable[Video],
    assignment: dict[str, str],
    threshold: int = 4,
    frames_per_video: int = 3,
    warn: bool = False,
) -> LeakageReport:
    """Raise ``BadInputError`` if a video key is in two splits; report video pairs in different splits
    whose sampled frames have 64-bit dHashes within ``threshold`` bits. Only ``frames_per_video`` frames
    per video are hashed. The caller prints ``report.warnings()`` on stderr; ``warn=True`` also raises a
    ``LeakageWarning`` through ``warnings.warn`` (off by default so the line is not printed twice)."""
    videos = list(videos)
    splits_of: dict[str, set[str]] = defaultdict(set)
    for video in videos:
        if video.split is not None:
            splits_of[video.key].add(video.split)
        if video.key in assignment:
            splits_of[video.key].add(assignment[video.key])
    for video in videos:
        if len(splits_of[video.key]) > 1:
            raise BadInputError(_conflict_message(video, splits_of[video.key]))

    report = LeakageReport(threshold=threshold)
    hashes: dict[str, list[tuple[int, int]]] = defaultdict(list)  # split -> [(hash, video index)]
    placed = [(i, v) for i, v in enumerate(videos) if v.key in assignment]
    if len({assignment[v.key] for _, v in placed}) < 2:
        return report  # a single split cannot leak into another
    for index, video in tqdm(placed, desc="leakage check", unit="video", leave=False, disable=None):
        video_hashes, unreadable = _video_hashes(video, frames_per_video)
        report.checked_videos += 1
        report.hashed_frames += len(video_hashes)
        report.unreadable_frames += unreadable
        hashes[assignment[video.key]].extend((h, index) for h in video_hashes)

    closest: dict[tuple[int, int], int] = {}
    names = sorted(hashes)
    for a_pos, split_a in enumerate(names):
        for split_b in names[a_pos + 1 :]:
            h_a = np.array([h for h, _ in hashes[split_a]], dtype=np.uint64)  # (Ma,)
            h_b = np.array([h for h, _ in hashes[split_b]], dtype=np.uint64)  # (Mb,)
            owner_a = [i for _, i in hashes[split_a]]
            owner_b = [i for _, i in hashes[split_b]]
            block = max(1, _BLOCK_ELEMENTS // max(1, len(h_b)))
            for start in range(0, len(h_a), block):
                distance = _popcount(h_a[start : start + block, None] ^ h_b[None, :])  # (block, Mb)
                for row, col in zip(*np.nonzero(distance <= threshold), strict=True):
                    pair = (owner_a[start + row], owner_b[col])
                    closest[pair] = min(closest.get(pair, 64), int(distance[row, col]))

    report.pairs = sorted(
        (
            NearDuplicate(
                videos[a].key, assignment[videos[a].key], videos[b].key, assignment[videos[b].key], d
            )
            for (a, b), d in closest.items()
        ),
        key=lambda p: (p.distance, p.key_a, p.key_b),
    )
    if report.pairs and warn:
        warnings.warn(report.message(), LeakageWarning, stacklevel=2)
    return report
