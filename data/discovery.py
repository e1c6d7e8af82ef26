"""Finding the videos of a dataset folder: class folders of numbered frames or video files.

Layouts::

    root/<class>/<video_id>_frame_<n>.jpg      frames, grouped by video_id, ordered by the number n
    root/<class>/<video_id>.mp4                video files (data.video.VIDEO_EXTENSIONS, any letter case)
    root/{train,val,test}/<class>/...          pre-split: the split of every video is taken as given
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from core.errors import BadInputError, UserError
from data.framelist import ListingMemo
from data.frames import probe_video
from data.sequence import MAX_VIDEO_KEY_BYTES, Video
from data.video import VIDEO_EXTENSIONS

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
FRAME_NAME = re.compile(r"^(?P<video_id>.+)_frame_(?P<number>\d+)$")
# Files that operating systems drop into folders; never the user's data.
_JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini"})
_EXPECTED = "<video_id>_frame_<n>.jpg/.jpeg/.png frames or .mp4/.avi/.mov/.webm files"


@dataclass
class Dataset:
    """Everything discovery found: the classes (sorted, index = label), videos, and what it skipped."""

    root: Path
    classes: list[str]
    videos: list[Video]
    skipped: list[str] = field(default_factory=list)
    presplit: bool = False  # the samples carry an official split (split folders, a format's split files)
    format: str = "folders"
    notes: list[str] = field(default_factory=list)  # one-line remarks for stderr (e.g. missing videos)
    # The corpus's own class order where it names classes no sample is left of (WLASL's glosses whose
    # videos are dead links): ``--classes N`` counts in it, so N stays the published subset. () = classes.
    ranking: tuple[str, ...] = ()

    @property
    def num_frames(self) -> int:
        return sum(video.num_frames for video in self.videos)


class _Problems:
    """One code path for both policies: raise the first bad input, or record it and carry on."""

    def __init__(self, on_bad: str, skippable: bool = True) -> None:
        """``skippable``: reading a dataset, where ``--on-bad-frame skip`` would leave the bad sample out
        (the error says so: one bad line of a 20k-line annotation file need not stop a corpus)."""
        if on_bad not in ("error", "skip"):
            raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
        self.on_bad = on_bad
        self.skippable = skippable
        self.skipped: list[str] = []

    def report(self, message: str) -> None:
        if self.on_bad == "error":
            hint = " (or pass --on-bad-frame skip to leave out and list every such sample)"
            raise BadInputError(message + hint if self.skippable else message)
        self.skipped.append(message)


def compile_group_regex(group_regex: str | None) -> re.Pattern[str] | None:
    """Compile ``--group-regex``; a broken pattern is the user's to fix."""
    if not group_regex:
        return None
    try:
        return re.compile(group_regex)
    except re.error as error:
        raise UserError(
            f"--group-regex {group_regex!r} is not a valid regular expression ({error})"
        ) from None


def group_of(video_id: str, pattern: re.Pattern[str] | None) -> str:
    """The subject a video belongs to: first capture group, else the whole match, else the video id."""
    if pattern is None:
        return video_id
    match = pattern.search(video_id)
    if match is None:
        return video_id
    if pattern.groups and match.group(1):
        return match.group(1)
    return match.group(0) or video_id


def is_hidden(name: str) -> bool:
    """Dot files and the OS's folder litter (Thumbs.db, desktop.ini): never frames, videos or clips."""
    return name.startswith(".") or name in _JUNK_NAMES


def _entries(folder: Path, problems: _Problems) -> list[os.DirEntry[str]]:
    """Visible entries of ``folder`` sorted by name; unreadable folders become bad input."""
    try:
        with os.scandir(folder) as iterator:
            entries = [entry for entry in iterator if not is_hidden(entry.name)]
    except OSError as error:
        problems.report(f"{folder}: cannot list folder ({error.strerror or error}); check its permissions")
        return []
    return sorted(entries, key=lambda entry: entry.name)


def _kind(entry: os.DirEntry[str], problems: _Problems) -> str | None:
    """'dir', 'file', or None (already reported) for links that lead nowhere."""
    path = Path(entry.path)
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
    except OSError as error:
        problems.report(
            f"{path}: cannot be followed ({error.strerror or error}; a symlink loop?); remove the link"
        )
        return None
    if entry.is_symlink():
        problems.report(f"{path}: is a broken symlink; fix or remove the link")
    else:
        problems.report(f"{path}: is not a regular file or folder; remove it")
    return None


def _split_parts(root: Path, problems: _Problems) -> list[tuple[str | None, Path]]:
    """[(split, folder)]: the root itself, or its train/ val/ test/ folders when it is pre-split."""
    folders = [Path(e.path) for e in _entries(root, problems) if _kind(e, problems) == "dir"]
    split_folders = [f for f in folders if f.name.lower() in SPLIT_FOLDERS]
    if not split_folders:
        return [(None, root)]
    others = [f for f in folders if f not in split_folders]
    if others:
        raise BadInputError(
            f"{root}: mixes split folders ({split_folders[0].name}/) with class folders ({others[0].name}/); "
            "put every class folder inside train/, val/ or test/, or none of them"
        )
    parts = [(SPLIT_FOLDERS[f.name.lower()], f) for f in split_folders]
    splits = [split for split, _ in parts]
    if len(set(splits)) != len(splits):
        raise BadInputError(f"{root}: has two folders for one split (e.g. val/ and valid/); merge them")
    return parts


def _scan_class(folder: Path, class_name: str, problems: _Problems) -> dict[str, tuple[Path, ...] | Path]:
    """video_id -> frame paths in numeric order, or -> the video file."""
    frames: dict[str, list[tuple[int, Path]]] = {}
    files: dict[str, Path] = {}
    for entry in _entries(folder, problems):
        path = Path(entry.path)
        kind = _kind(entry, problems)
        if kind is None:
            continue
        if kind == "dir":
            problems.report(
                f"{path}: unexpected folder inside class folder '{class_name}'; frames must sit directly "
                "in the class folder as <video_id>_frame_<n>.jpg"
            )
            continue
        suffix = path.suffix.lower()
        if suffix not in IMAGE_EXTENSIONS and suffix not in VIDEO_EXTENSIONS:
            problems.report(
                f"{path}: is not a frame or video (expected {_EXPECTED}); move it out of the folder"
            )
            continue
        try:
            empty = entry.stat().st_size == 0
        except OSError as error:
            problems.report(f"{path}: cannot be read ({error.strerror or error}); check its permissions")
            continue
        if empty:
            problems.report(f"{path}: is empty (0 bytes); re-export it or delete it")
            continue
        if suffix in VIDEO_EXTENSIONS:
            if path.stem in files:
                problems.report(
                    f"{path}: video id '{path.stem}' is also used by {files[path.stem]}; rename one"
                )
                continue
            files[path.stem] = path
            continue
        match = FRAME_NAME.match(path.stem)
        if match is None:
            problems.report(f"{path}: frame name does not match <video_id>_frame_<n>{suffix}; rename it")
            continue
        frames.setdefault(match["video_id"], []).append((int(match["number"]), path))

    videos: dict[str, tuple[Path, ...] | Path] = {}
    for video_id, numbered in frames.items():
        numbered.sort(key=lambda item: (item[0], item[1].name))
        duplicate = next((i for i in range(1, len(numbered)) if numbered[i][0] == numbered[i - 1][0]), None)
        if duplicate is not None:
            (number, first), (_, second) = numbered[duplicate - 1], numbered[duplicate]
            problems.report(
                f"{second}: has the same frame number {number} as {first.name}, so the frame order is "
                "ambiguous; rename or delete one"
            )
            continue
        if video_id in files:  # often frames extracted next to their source video; keep the frames
            problems.report(
                f"{files[video_id]}: video id '{video_id}' is also used by frames like "
                f"{numbered[0][1].name}; rename one"
            )
            del files[video_id]
        videos[video_id] = tuple(path for _, path in numbered)
    videos.update(files)
    return videos


def discover(
    root: Path, group_regex: str | None = None, on_bad: str = "error", memo: ListingMemo | None = None
) -> Dataset:
    """Find every video under ``root``; bad input raises ``BadInputError`` or, with ``on_bad="skip"``, is
    skipped and listed in ``Dataset.skipped``. Frame contents are checked later, by ``read_frames``. With
    ``memo``, a video file's frame count is probed once while the file is unchanged."""
    root = Path(root).expanduser()
    pattern = compile_group_regex(group_regex)
    problems = _Problems(on_bad)
    if not root.exists():
        raise BadInputError(f"{root}: dataset folder does not exist; check the --data path")
    if not root.is_dir():
        raise BadInputError(
            f"{root}: is a file, not a dataset folder; pass the folder that holds the class folders"
        )
    parts = _split_parts(root, problems)

    found: list[tuple[str | None, str, str, tuple[Path, ...] | Path]] = []
    for split, part in parts:
        for entry in _entries(part, problems):
            if _kind(entry, problems) != "dir":
                continue  # loose files next to class folders (README, split files) are not data
            class_folder = Path(entry.path)
            videos = _scan_class(class_folder, entry.name, problems)
            if not videos:
                problems.report(
                    f"{class_folder}: class folder has no usable frames or videos; "
                    f"add {_EXPECTED} or delete it"
                )
            found.extend((split, entry.name, video_id, source) for video_id, source in videos.items())

    if not found:
        note = f" ({len(problems.skipped)} bad inputs skipped)" if problems.skipped else ""
        raise BadInputError(f"{root}: no videos found{note}; expected class folders holding {_EXPECTED}")

    classes = sorted({class_name for _, class_name, _, _ in found})
    label_of = {name: index for index, name in enumerate(classes)}
    videos: list[Video] = []
    ordered = sorted(found, key=lambda item: (item[1], item[2], item[0] or ""))
    # Probing video files opens each one; show progress for that (only on a terminal, on stderr).
    has_files = any(isinstance(item[3], Path) for item in ordered)
    progress = tqdm(ordered, desc="discover", unit="video", leave=False, disable=None if has_files else True)
    for split, class_name, video_id, source in progress:
        where = source if isinstance(source, Path) else source[0]
        try:  # ids are stored as UTF-8; Linux file names may be any bytes
            key_bytes = len(f"{class_name}/{video_id}".encode())
        except UnicodeEncodeError:
            problems.report(f"{ascii(str(where))}: file or folder name is not valid UTF-8; rename it")
            continue
        if key_bytes > MAX_VIDEO_KEY_BYTES:
            problems.report(
                f"{where}: class folder and video id together are {key_bytes} bytes, over the "
                f"{MAX_VIDEO_KEY_BYTES}-byte limit of cached ids; shorten the folder or file names"
            )
            continue
        if isinstance(source, Path):
            try:
                num_frames = memo.video_length(source) if memo is not None else probe_video(source)
            except BadInputError as error:
                problems.report(str(error))
                continue
            frames: tuple[Path, ...] = ()
            video_file: Path | None = source
        else:
            num_frames, frames, video_file = len(source), source, None
        videos.append(
            Video(
                class_name=class_name,
                label=label_of[class_name],
                video_id=video_id,
                num_frames=num_frames,
                root=root,
                frames=frames,
                video_file=video_file,
                group=group_of(video_id, pattern),
                split=split,
            )
        )
    if not videos:
        raise BadInputError(
            f"{root}: no readable videos, all {len(problems.skipped)} inputs were bad, "
            f"e.g. {problems.skipped[0]}"
        )
    # A class whose only videos were unreadable would leave a label nothing uses; relabel densely.
    used = sorted({video.class_name for video in videos})
    if used != classes:
        label_of = {name: index for index, name in enumerate(used)}
        videos = [replace(video, label=label_of[video.class_name]) for video in videos]
    return Dataset(
        root=root, classes=used, videos=videos, skipped=problems.skipped, presplit=parts[0][0] is not None
    )


def input_videos(path: Path) -> list[Video]:
    """Unlabelled videos for prediction: one video file, or a folder of ``<video_id>_frame_<n>`` frames
    (one video per id). Labels are unknown, so every video gets label -1."""
    path = Path(path).expanduser()
    if not path.exists():
        raise BadInputError(
            f"{path}: does not exist; pass a video file, a folder of frames, or FOLDER/<video_id> for one "
            "video of a folder of <video_id>_frame_<n> frames"
        )
    problems = _Problems("error", skippable=False)  # predict's inputs: the user named each one
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise BadInputError(f"{path}: not a video file ({', '.join(sorted(VIDEO_EXTENSIONS))})")
        found: dict[str, tuple[Path, ...] | Path] = {path.stem: path}
    else:
        found = _scan_class(path, path.name, problems)
    if not found:
        raise BadInputError(f"{path}: holds no frames or videos; expected {_EXPECTED}")
    videos = []
    for video_id, source in sorted(found.items()):
        is_file = isinstance(source, Path)
        videos.append(
            Video(
                class_name="?",
                label=-1,
                video_id=video_id,
                num_frames=probe_video(source) if is_file else len(source),
                root=path if path.is_dir() else path.parent,
                frames=() if is_file else source,
                video_file=source if is_file else None,
            )
        )
    return videos
