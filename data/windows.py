"""Continuous recognition: sliding windows over whole recordings, labelled by overlap with segments.

``--windows W:S`` turns a segment-annotated dataset into windows of W frames every S frames over each
recording. A window takes the label that covers most of it, when that label covers at least half of it;
otherwise the background label (``--background-label``, default ``no_gesture``). A recording shorter than
W becomes one window over its whole length, and one note says how many did.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from core.errors import BadInputError, UserError
from data.discovery import Dataset
from data.sequence import Video


def parse_windows(text: str, flag: str = "--windows") -> tuple[int, int]:
    """'W:S' -> (W, S), both at least 1."""
    try:
        width, stride = (int(part) for part in text.split(":"))
    except ValueError:
        raise UserError(f"{flag} {text!r} must be W:S, window and stride in frames, e.g. 32:16") from None
    if width < 1 or stride < 1:
        raise UserError(f"{flag} {text!r}: window and stride must be at least 1 frame")
    return width, stride


def window_starts(length: int, width: int, stride: int) -> list[int]:
    """First frames of the windows over a recording of ``length`` frames; one short window if it is
    shorter than ``width``, and a last window flush with the end so no tail goes unseen."""
    if length <= width:
        return [0]
    starts = list(range(0, length - width + 1, stride))
    if starts[-1] + width < length:
        starts.append(length - width)
    return starts


def window_label(start: int, end: int, segments: list[Video], background: str) -> str:
    """The label covering most of frames ``start..end`` (inclusive) if it covers at least half."""
    cover: dict[str, int] = defaultdict(int)
    for seg in segments:
        cover[seg.class_name] += max(0, min(end, seg.end) - max(start, seg.start) + 1)
    if not cover:
        return background
    best = min(cover, key=lambda name: (-cover[name], name))
    return best if 2 * cover[best] >= end - start + 1 else background


def make_windows(dataset: Dataset, spec: str, background: str) -> Dataset:
    """The dataset's recordings cut into windows; every window is a sample with its frame range."""
    width, stride = parse_windows(spec)
    recordings: dict[str, list[Video]] = defaultdict(list)
    for video in dataset.videos:
        recordings[video.video_id].append(video)
    windows: list[Video] = []
    short: list[int] = []  # lengths of the recordings shorter than one window
    for segments in recordings.values():
        first = segments[0]
        if len({(s.video_file, s.source_length) for s in segments}) > 1:
            raise BadInputError(
                f"{first.video_file or first.root}: recording '{first.video_id}' names two "
                "different sources; give each recording one name"
            )
        if first.source_length < width:
            short.append(first.source_length)
        for start in window_starts(first.source_length, width, stride):
            end = min(start + width, first.source_length) - 1
            label = window_label(start, end, segments, background)
            windows.append(
                replace(
                    first,
                    class_name=label,
                    label=-1,
                    start=start,
                    num_frames=end - start + 1,
                    annotations=None,
                )
            )
    classes = sorted({w.class_name for w in windows})
    label_of = {name: index for index, name in enumerate(classes)}
    windows = [replace(w, label=label_of[w.class_name]) for w in windows]
    note = (
        f"windows {width}:{stride}: {len(windows)} windows over {len(recordings)} recording(s), "
        f"{sum(w.class_name == background for w in windows)} labelled '{background}'"
    )
    if background in dataset.classes:  # a corpus' own no-gesture class (IPN's D0X) may be meant; say it
        note += ", which is also a class of the annotations: windows without a gesture join its samples"
    notes = [*dataset.notes, note]
    if short:  # said once for all of them: each such window's T frames span fewer source frames than W
        span = f"{min(short)}" if min(short) == max(short) else f"{min(short)} to {max(short)}"
        notes.append(
            f"windows {width}:{stride}: {len(short)} of {len(recordings)} recording(s) are shorter than the "
            f"{width}-frame window ({span} frames); each became one window over its whole length, so its "
            "frames are sampled over less time than a full window's"
        )
    return replace(dataset, classes=classes, videos=windows, notes=notes)
