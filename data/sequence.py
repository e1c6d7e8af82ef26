"""The two records the data stage hands to everything downstream."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The cache stores sequence ids in fixed-length fields of this many UTF-8 bytes (cache.schema.ID_BYTES).
SEQUENCE_ID_BYTES = 256
# Room kept for the "#a<k>" suffix of augmented copies.
MAX_VIDEO_KEY_BYTES = SEQUENCE_ID_BYTES - 8


@dataclass(frozen=True)
class Video:
    """One sample: a segment of a source, where a source is a video file or a folder of frames.

    ``frames`` holds the source's frame files in numeric order (empty for a video file); any sequence of
    paths (a tuple, or a lazy ``data.framelist.FrameList``). The segment is source frames
    ``start .. start + num_frames - 1`` (0-based, inclusive); ``source_frames`` is the length of the whole
    source (0: the segment is the whole source). ``split`` is the official split when the dataset ships
    one (pre-split folders, a format's split files). ``subject`` is the person, when the format knows it.
    ``annotations`` carries per-sample annotations a format parsed (HaGRID boxes and landmarks).
    """

    class_name: str
    label: int
    video_id: str
    num_frames: int
    root: Path
    frames: SequenceOf[Path] = ()
    video_file: Path | None = None
    group: str = ""
    split: str | None = None
    start: int = 0
    source_frames: int = 0
    subject: str | None = None
    annotations: Mapping[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        # A corpus has a few class names over many samples: one string object per name, so a memo of
        # the parsed corpus pickles (and a warm plan unpickles) each name once, not once per sample.
        object.__setattr__(self, "class_name", sys.intern(self.class_name))

    @property
    def source_length(self) -> int:
        """Frames in the whole source (the recording the segment lies in)."""
        return self.source_frames or self.start + self.num_frames

    @property
    def end(self) -> int:
        """Last frame of the segment, 0-based inclusive, as an index into the source."""
        return self.start + self.num_frames - 1

    @property
    def is_segment(self) -> bool:
        """True when the sample is a part of its source, not all of it."""
        return self.start > 0 or self.end < self.source_length - 1

    @property
    def key(self) -> str:
        """Readable, unique id: ``<class>/<video_id>``, plus ``@<start>-<end>`` for a segment."""
        base = f"{self.class_name}/{self.video_id}"
        return f"{base}@{self.start}-{self.end}" if self.is_segment else base

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file whose bytes this video depends on."""
        return (self.video_file,) if self.video_file is not None else self.frames


@dataclass(frozen=True)
class Sequence:
    """T sampled frames of one video, plus which augmented copy it is.

    ``indices`` (T,) int32 index into the source's frames (within the segment), non-decreasing.
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
