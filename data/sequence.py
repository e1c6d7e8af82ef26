"""The two records the data stage hands to everything downstream."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The cache stores sequence ids in fixed-length fields of this many UTF-8 bytes (cache.schema.ID_BYTES).
SEQUENCE_ID_BYTES = 256
# Room kept for the "#a<k>" suffix of augmented copies.
MAX_VIDEO_KEY_BYTES = SEQUENCE_ID_BYTES - 8


@dataclass(frozen=True)
class Video:
    """One gesture video: a folder's frames of one ``video_id``, or one video file.

    ``frames`` holds frame files in numeric order (empty for a video file).
    ``split`` is set only when the dataset root is pre-split (train/ val/ test/).
    """

    class_name: str
    label: int
    video_id: str
    num_frames: int
    root: Path
    frames: tuple[Path, ...] = ()
    video_file: Path | None = None
    group: str = ""
    split: str | None = None

    @property
    def key(self) -> str:
        """Readable, unique id: ``<class>/<video_id>``."""
        return f"{self.class_name}/{self.video_id}"

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file whose bytes this video depends on."""
        return (self.video_file,) if self.video_file is not None else self.frames


@dataclass(frozen=True)
class Sequence:
    """T sampled frames of one video, plus which augmented copy it is.

    ``indices`` (T,) int32 index into the video's frames, non-decreasing.
    ``valid`` (T,) uint8 is 0 where a short video repeats the previous frame.
    ``aug_index`` 0 means resize only; k >= 1 is augmented copy k.
    """

    video: Video
    indices: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    length: int
    split: str
    aug_index: int = 0

    @property
    def sequence_id(self) -> str:
        """``<class>/<video_id>``, plus ``#a<k>`` for augmented copy k."""
        base = self.video.key
        return f"{base}#a{self.aug_index}" if self.aug_index else base

    @property
    def label(self) -> int:
        return self.video.label
