"""What ``predict`` and ``show`` run over: video files, still images, frame folders in any numeric naming,
folders of such frame folders (one clip each), ``FOLDER/<video_id>`` (one video of a folder of
``<video_id>_frame_<n>`` frames), id lists.

An id list is a text file (``.csv``, ``.txt``, ``.lst``) with one clip a line, the first ``;`` or ``,``
field naming a frame folder beside the list or in a ``20bn-jester-v1/`` folder beside the list or its
folder (the CSVs may sit in ``label/``), which is how the Jester test CSV (ids only) is classified:
``predict --checkpoint best.pt jester/jester-v1-test.csv``.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from pathlib import Path
from typing import Any

from core.errors import BadInputError, UserError
from data.discovery import FRAME_NAME, input_videos, is_hidden
from data.formats import sensor_video_owner
from data.framelist import IMAGE_SUFFIXES, FrameList, frame_names, number_frames
from data.sequence import Video
from data.video import VIDEO_EXTENSIONS

ID_LIST_SUFFIXES = frozenset({".csv", ".txt", ".lst"})
JESTER_FRAMES = "20bn-jester-v1"


def _numbered_folder(folder: Path) -> Video | None:
    """One unlabelled video of a folder of numbered frames (00001.jpg, img_12.png), or None when the
    frames follow the ``<video_id>_frame_<n>`` naming (several videos in one folder)."""
    names = frame_names(folder)
    if not names or any(FRAME_NAME.match(name.rsplit(".", 1)[0]) for name in names):
        return None
    frames = number_frames(folder, names)
    return Video("?", -1, folder.name, len(frames), folder.parent, frames=frames)


def _natural(name: str) -> list[Any]:
    """Sort key that puts clip 2 before clip 10 and rgb2 before rgb10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _clip_folders(folder: Path) -> list[Video] | None:
    """Each clip of a folder that holds only numbered-frame folders (Jester's ``20bn-jester-v1/``,
    EgoGesture's ``Color/``), in natural order; None when the folder holds files (or nothing)."""
    try:
        with os.scandir(folder) as scan:
            entries = [(e.name, e.is_dir()) for e in scan if not is_hidden(e.name)]
    except OSError as error:
        raise BadInputError(f"{folder}: cannot list folder ({error.strerror or error}); check it") from None
    if not entries or not all(is_dir for _, is_dir in entries):
        return None
    names = sorted((name for name, _ in entries), key=_natural)
    videos = []
    for name in names:
        video = _numbered_folder(folder / name)
        if video is None:
            raise BadInputError(
                f"{folder / name}: holds no numbered frames; {folder} is read as a folder of clip folders, "
                "each holding one clip's frames (00001.jpg, ...): move it out or pass the clips one by one"
            )
        videos.append(video)
    return videos


def _id_list(path: Path, stills: bool) -> list[Video]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: cannot be read ({error}); pass a text file of ids") from None
    videos = []
    for number, line in enumerate(lines, 1):
        clip = line.replace(",", ";").split(";", 1)[0].strip()
        if not clip:
            continue
        places = (path.parent, path.parent / JESTER_FRAMES, path.parent.parent / JESTER_FRAMES)
        folder = next((place / clip for place in places if (place / clip).is_dir()), None)
        fields = re.split(r"[,;\t ]+", line.strip())
        if folder is None and len(fields) > 2:  # a header or an annotation row (IPN's, NVGesture's lists)
            raise BadInputError(
                f"{path}:{number}: reads as an annotation table, not a list of clip ids ({fields[0]!r} is no "
                "frame folder); to classify the gestures a dataset annotates, extract it and run "
                "`pipeline.py evaluate --split test`, or pass the videos themselves"
            )
        if folder is None:
            raise BadInputError(
                f"{path}:{number}: id {clip!r} has no frame folder beside the list or in a "
                f"{JESTER_FRAMES}/ beside it or its folder; fix the line or add the frames"
            )
        videos.extend(predict_inputs(folder, stills))
    if not videos:
        raise BadInputError(f"{path}: lists no ids; put one clip id a line")
    return videos


def _is_media(path: Path) -> bool:
    """A video file or a still image (HaGRID's ``<class>/<image_id>.jpg``)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_SUFFIXES and path.is_file()


def _colour_only(folder: Path, videos: list[Video]) -> list[Video]:
    """``videos`` of a folder less a corpus recording's depth and infrared videos (NVGesture's
    ``sk_depth.avi`` beside ``sk_color.avi``): a model trained on colour frames would classify them
    as if they were colour. Named by path, such a video is still classified; so is a folder of them."""
    sensor = [v.video_file is not None and sensor_video_owner(v.video_id) is not None for v in videos]
    kept = [v for v, other in zip(videos, sensor, strict=True) if not other]
    left = sorted(v.video_file.name for v, other in zip(videos, sensor, strict=True) if other)  # type: ignore[union-attr]
    if left and kept:
        owner = sensor_video_owner(Path(left[0]).stem)
        print(
            f"note: {folder}: left out {', '.join(left)} ({owner}'s depth and infrared videos; the model "
            "reads colour frames); pass one by its path to classify it anyway",
            file=sys.stderr,
        )
        return kept
    return videos


def _still(path: Path) -> Video:
    """One image as a one-frame video (HaGRID)."""
    return Video("?", -1, path.stem, 1, path.parent, frames=FrameList(path.parent, (path.name,)))


def predict_inputs(path: Path, stills: bool = False) -> list[Video]:
    """Unlabelled videos (label -1) for ``predict`` from one INPUT argument. ``stills``: the model reads
    single images (a cache of ``--frames 1``), so a folder of images is that many inputs (a HaGRID class
    folder), not the frames of one video."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() in ID_LIST_SUFFIXES:
        return _id_list(path, stills)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:  # a still image (HaGRID): one frame
        return [_still(path)]
    if path.is_dir() and stills and (images := frame_names(path)):
        return [_still(path / name) for name in sorted(images, key=_natural)]
    if path.is_dir():
        video = _numbered_folder(path)
        if video is not None:
            return [video]
        clips = _clip_folders(path)
        return clips if clips is not None else _colour_only(path, input_videos(path))
    if not path.exists() and path.parent.is_dir():  # FOLDER/<video_id>: one video of a shared folder
        named = sorted(f for f in path.parent.glob(f"{glob.escape(path.name)}.*") if _is_media(f))
        if len(named) == 1:  # its video or image file: no need to open every other video of the folder
            return predict_inputs(named[0])
        try:
            found = [v for v in input_videos(path.parent) if v.video_id == path.name]
        except UserError:
            found = []
        if found:
            return found
    return input_videos(path)
