"""``ipn``: IPN Hand, gestures annotated as segments of long recordings.

Layout::

    frames/<video>/<video>_000001.jpg    the frames of each recording
    videos/<video>.avi                   or, where there is no frames/ folder, the recordings themselves
    Annot_List.txt                       header 'video,label,id,t_start,t_end,frames', one segment a line
    Annot_TrainList.txt, Annot_TestList.txt   (optional) the official split, same columns

The lists may also sit in ``annotations/``, where the dataset's annotation archive unpacks them.

``t_start``/``t_end`` are 1-based and inclusive: the numbers in the frames' names (a missing frame shifts
nothing), or a video's frames counted from 1. The subject is the recording name up to its first '_'
(e.g. ``1CM1`` of ``1CM1_1_R_#217``); ``--group-regex`` overrides it. When the train/test lists exist
they are the official split (validation then comes from the training part); otherwise
``Annot_List.txt`` is read.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import BadInputError
from data.discovery import Dataset
from data.formats import Format, FormatOptions, register
from data.formats.jester import read_lines
from data.framelist import FrameList
from data.samples import Problems, RawSample, build_dataset
from data.video import VIDEO_EXTENSIONS

ALL = "Annot_List.txt"
SPLIT_LISTS = {"train": "Annot_TrainList.txt", "test": "Annot_TestList.txt"}
ANNOTATIONS = "annotations"
FRAMES, VIDEOS = "frames", "videos"
HEADER = ("video", "label", "id", "t_start", "t_end", "frames")


def _lists_dir(root: Path) -> Path | None:
    """Where the annotation lists are: the root itself, else its ``annotations/`` folder."""
    for folder in (root, root / ANNOTATIONS):
        if any((folder / name).is_file() for name in (ALL, *SPLIT_LISTS.values())):
            return folder
    return None


def _video_files(folder: Path) -> dict[str, Path]:
    """Recording name -> its video file in ``folder``, from one listing."""
    try:
        with os.scandir(folder) as entries:
            return {
                Path(e.name).stem: Path(e.path)
                for e in entries
                if Path(e.name).suffix.lower() in VIDEO_EXTENSIONS
            }
    except OSError as error:
        raise BadInputError(f"{folder}: cannot list folder ({error.strerror or error}); check it") from None


def subject_of(video: str) -> str:
    return video.split("_", 1)[0]


@register
class IPNHand(Format):
    name = "ipn"
    segments = True

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        return ((root / FRAMES).is_dir() or (root / VIDEOS).is_dir()) and _lists_dir(root) is not None

    @classmethod
    def annotation_files(cls, root: Path, options: FormatOptions) -> list[Path] | None:
        if not (root / FRAMES).is_dir():
            return None  # read from videos/: their lengths are probed each time, never kept
        lists = _lists_dir(root) or root
        return [lists / ALL, *(lists / name for name in SPLIT_LISTS.values())]

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        lists = _lists_dir(root) or root
        if all((lists / name).is_file() for name in SPLIT_LISTS.values()):
            files = [(split, lists / name) for split, name in SPLIT_LISTS.items()]
        elif (lists / ALL).is_file():
            files = [(None, lists / ALL)]
        else:
            raise BadInputError(
                f"{root / ALL}: annotation list missing (looked in {root} and {root / ANNOTATIONS}); "
                "this is not an IPN Hand root"
            )
        listing = options.listing()
        videos = None if (root / FRAMES).is_dir() else _video_files(root / VIDEOS)
        raws: list[RawSample] = []
        for split, path in files:
            for number, line in enumerate(read_lines(path), 1):
                cells = [c.strip() for c in line.split(",")]
                if number == 1 and cells[0].lower() == "video":
                    continue  # the header
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                if len(cells) != len(HEADER) or not cells[0] or not cells[1]:
                    problems.report(
                        f"{where}: expected {','.join(HEADER)}, got {line.strip()!r}; fix the line"
                    )
                    continue
                try:
                    start, end = int(cells[3]) - 1, int(cells[4]) - 1  # 1-based inclusive -> 0-based
                except ValueError:
                    problems.report(f"{where}: t_start/t_end must be frame numbers, got {line.strip()!r}")
                    continue
                if start < 0:
                    problems.report(f"{where}: t_start must be 1 or more (frames are 1-based); fix the line")
                    continue
                video = cells[0]
                if videos is not None:  # the recording's video file: frame t is index t - 1
                    if video not in videos:
                        problems.report(f"{where}: video {video!r} has no file in {root / VIDEOS}")
                        continue
                    source: FrameList | Path = videos[video]
                else:
                    try:
                        source = listing.frames(root / FRAMES / video)
                    except BadInputError as error:
                        problems.report(f"{where}: video {video!r} has no frame folder ({error})")
                        continue
                    start, end = source.positions(start + 1, end + 1)  # the frames named t_start..t_end
                raws.append(
                    RawSample(
                        cells[1],
                        video,
                        source,
                        where,
                        start,
                        end,
                        subject_of(video),
                        split,
                        written=f"t_start {cells[3]}, t_end {cells[4]}",
                    )
                )
        return build_dataset(
            root,
            self.name,
            raws,
            problems,
            memo=options.memo,
            source=files[0][1] if len(files) == 1 else None,
        )
