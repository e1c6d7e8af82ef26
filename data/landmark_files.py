"""Where a video's imported landmarks live (``--landmarks npz:DIR``): one lookup for extraction, which
reads them, and ``show``, which must know before loading any encoder whether a new clip has them."""

from __future__ import annotations

from pathlib import Path

from data.sequence import Video


def npz_names(video: Video) -> list[str]:
    """The names looked for under DIR, in order: ``<class>/<video_id>.npz`` for a labelled video (a corpus
    sample), then ``<video_id>.npz`` (an unlabelled input of predict or show has no class folder)."""
    names = [f"{video.video_id}.npz"]
    if video.label >= 0:
        names.insert(0, f"{video.class_name}/{video.video_id}.npz")
    return names


def find_npz(folder: Path, video: Video) -> Path | None:
    """The first of ``npz_names`` that is a file under ``folder``, or None."""
    return next((folder / name for name in npz_names(video) if (folder / name).is_file()), None)
