"""From what a format parsed (label names, sources, bounds) to a checked ``Dataset`` of ``Video`` samples.

Every format ends here, so the rules hold for all of them: bounds are 0-based inclusive and inside the
recording, labels belong to the label list, ids are unique and fit the cache, and every problem is one
line naming the annotation file and line (or a counted skip under ``--on-bad-frame skip``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import BadInputError
from data.discovery import Dataset, _Problems
from data.framelist import FrameList, ListingMemo
from data.frames import probe_video
from data.sequence import MAX_VIDEO_KEY_BYTES, Video

Problems = _Problems  # one bad-input policy for discovery and formats


@dataclass
class RawSample:
    """One annotated sample as a format read it, before checks. ``start``/``end`` are 0-based inclusive
    source frames (formats convert 1-based corpora); ``end=None`` means the last frame."""

    label: str
    video_id: str  # the recording's readable name, unique in the dataset
    source: Path | FrameList  # a video file, or the frames of a folder
    where: str  # "file:line" of the annotation, or the file itself, for messages
    start: int = 0
    end: int | None = None
    subject: str | None = None
    split: str | None = None
    annotations: Mapping[str, Any] | None = field(default=None, repr=False)
    written: str | None = None  # the bounds as the line writes them ("t_start 5, t_end 2"), for messages


class _Lengths:
    """Frames per source, probing each video file once however many segments it holds, and, with a
    ``memo``, once while the file is unchanged (``ListingMemo.video_length``)."""

    def __init__(self, memo: ListingMemo | None = None) -> None:
        self.known: dict[Path, int] = {}
        self.probe = memo.video_length if memo is not None else probe_video

    def __call__(self, source: Path | FrameList) -> int:
        if isinstance(source, FrameList):
            return len(source)
        if source not in self.known:
            self.known[source] = self.probe(source)
        return self.known[source]


def build_dataset(
    root: Path,
    format_name: str,
    raws: Iterable[RawSample],
    problems: Problems,
    classes: list[str] | None = None,
    label_file: str = "the label list",
    notes: list[str] | None = None,
    memo: ListingMemo | None = None,
    source: Path | None = None,
) -> Dataset:
    """Check every raw sample and turn it into a ``Video``. ``classes`` fixes the label order (a corpus's
    label file); without it the classes are the sorted label names that occur. ``source``: the one
    annotation file the samples come from, named when none of them is usable."""
    raws = list(raws)
    root = Path(root)  # one object shared by every sample (a memo pickles it once)
    if classes is None:
        fixed = False
        classes = sorted({raw.label for raw in raws})
    else:
        fixed = True
    label_of = {name: index for index, name in enumerate(classes)}
    lengths = _Lengths(memo)
    videos: list[Video] = []
    seen: dict[tuple[str, int, int], tuple[str, str]] = {}  # segment -> where, label
    for raw in raws:
        if "/" in raw.label:  # a sequence id is <label>/<video id>: its first '/' must end the label
            problems.report(
                f"{raw.where}: label {raw.label!r} holds '/', which ends a label in cached ids; rename it"
            )
            continue
        if raw.label not in label_of:
            problems.report(
                f"{raw.where}: label {raw.label!r} is not in {label_file}; fix the line or add it"
            )
            continue
        try:
            length = lengths(raw.source)
        except BadInputError as error:
            problems.report(f"{raw.where}: {error}")
            continue
        if length == 0:
            problems.report(f"{raw.where}: {_name(raw.source)} holds no frames; add them or drop the line")
            continue
        end = length - 1 if raw.end is None else raw.end
        # quoted as the annotation writes them: a 1-based corpus's user never sees the 0-based numbers
        shown = raw.written or f"start {raw.start}, end {end}, 0-based"
        if raw.start < 0:
            problems.report(f"{raw.where}: segment starts before the first frame ({shown}); fix it")
            continue
        if raw.start > end:
            problems.report(f"{raw.where}: segment starts after it ends ({shown}); fix it")
            continue
        if end >= length:
            problems.report(
                f"{raw.where}: segment ends past the end of {_name(raw.source)} ({shown}; it has {length} "
                "frames); fix the bounds"
            )
            continue
        is_file = not isinstance(raw.source, FrameList)
        video = Video(
            class_name=raw.label,
            label=label_of[raw.label],
            video_id=raw.video_id,
            num_frames=end - raw.start + 1,
            root=root,
            frames=() if is_file else raw.source,
            video_file=raw.source if is_file else None,
            group=raw.subject or "",
            split=raw.split,
            start=raw.start,
            source_frames=length,
            subject=raw.subject,
            annotations=raw.annotations,
        )
        try:
            key_bytes = len(video.key.encode())
        except UnicodeEncodeError:
            problems.report(f"{ascii(raw.where)}: name is not valid UTF-8; rename it")
            continue
        if key_bytes > MAX_VIDEO_KEY_BYTES:
            problems.report(
                f"{raw.where}: id '{video.key}' is {key_bytes} bytes, over the {MAX_VIDEO_KEY_BYTES}-byte "
                "limit of cached ids; shorten the names"
            )
            continue
        # One segment of one recording is one sample, whatever its label: the same clip under two labels
        # (in one split or across two) would teach both, or leak between splits.
        segment = (raw.video_id, raw.start, end)
        if segment in seen:
            where, label = seen[segment]
            problems.report(
                f"{raw.where}: sample '{video.key}' is already given at {where}"
                + ("; drop one" if label == raw.label else f" with label {label!r}; keep the right one")
            )
            continue
        seen[segment] = (raw.where, raw.label)
        videos.append(video)
    if not videos:
        example = f", e.g. {problems.skipped[0]}" if problems.skipped else ""
        raise BadInputError(
            f"{source or root}: no usable samples in this {format_name} dataset{example}; give its "
            "annotations lines whose files are present"
        )
    used = sorted({video.class_name for video in videos})
    if not fixed and used != classes:  # a class whose samples were all skipped: relabel densely
        label_of = {name: index for index, name in enumerate(used)}
        videos = [replace(video, label=label_of[video.class_name]) for video in videos]
        classes = used
    return Dataset(
        root=root,
        classes=list(classes),
        videos=videos,
        skipped=problems.skipped,
        presplit=any(video.split is not None for video in videos),
        format=format_name,
        notes=list(notes or []),
    )


def path_inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` when it stays inside root (no absolute path, no climbing out with ``..``)."""
    if not relative or os.path.isabs(relative) or PurePosixPath(relative).is_absolute():
        return None
    normal = os.path.normpath(relative.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return None
    return root / normal


def _name(source: Path | FrameList) -> str:
    return str(source.folder if isinstance(source, FrameList) else source)
