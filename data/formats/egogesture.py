"""``egogesture``: EgoGesture, gestures annotated as segments of egocentric recordings.

Layout::

    images/SubjectXX/SceneY/Color/rgbN/000001.jpg              the frames of recording N
    labels-final-revised1/SubjectXX/SceneY/GroupN.csv          header-less rows 'label,start,end'

As the corpus ships, the label folders may be spelt in lower case (``subject02``, ``group1.csv``) and the
frames may be spread over several ``images*`` folders (``images_320-240_1`` ... ``_5``, as unpacked from
the archive's parts): each recording's frames are looked up by subject number, scene and group in any of
them, regardless of letter case. A row with no fields (``,,``) is a blank line.

Bounds are 1-based and inclusive, the numbers in the frames' names (a missing frame shifts nothing);
labels are the class numbers 1..83. The subject is ``SubjectXX`` (two digits, capitalised). The official
split is by subject, as published with the dataset: validation subjects 1 7 12 13 24 29 33 34 35 37,
test subjects 2 9 11 14 18 19 28 31 41 47, training the others.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from core.errors import BadInputError
from data.discovery import Dataset
from data.formats import Format, FormatOptions, register
from data.formats.jester import read_lines
from data.samples import Problems, RawSample, build_dataset

LABELS = "labels-final-revised1"
VAL_SUBJECTS = frozenset({1, 7, 12, 13, 24, 29, 33, 34, 35, 37})
TEST_SUBJECTS = frozenset({2, 9, 11, 14, 18, 19, 28, 31, 41, 47})
_GROUP = re.compile(r"^Group(\d+)\.csv$", re.IGNORECASE)
_SUBJECT = re.compile(r"^Subject(\d+)$", re.IGNORECASE)


def official_split(subject: str) -> str:
    number = int(_SUBJECT.match(subject)[1])  # type: ignore[index]
    return "val" if number in VAL_SUBJECTS else "test" if number in TEST_SUBJECTS else "train"


def _folders(path: Path) -> list[str]:
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _image_roots(root: Path) -> list[Path]:
    """The frame folders: ``images`` and any ``images*`` beside it (the archive's parts), in name order."""
    with os.scandir(root) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir() and e.name.lower().startswith("images"))


class _FrameFolders:
    """Finds a recording's frame folder by subject number, scene and group across the image roots, in
    any letter case; each folder is listed once."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._subjects: dict[int, Path] | None = None
        self._children: dict[Path, dict[str, Path]] = {}

    def _child(self, parent: Path, name: str) -> Path:
        if parent not in self._children:
            try:
                self._children[parent] = {n.lower(): parent / n for n in _folders(parent)}
            except OSError:
                self._children[parent] = {}
        return self._children[parent].get(name.lower(), parent / name)

    def recording(self, subject: str, scene: str, group: str) -> Path:
        """Where recording ``rgb<group>`` of ``subject``'s ``scene`` is (the usual path when missing,
        for the error that names it)."""
        if self._subjects is None:
            self._subjects = {}
            for images in _image_roots(self._root):
                for name in _folders(images):
                    match = _SUBJECT.match(name)
                    if match:
                        self._subjects.setdefault(int(match[1]), images / name)
        number = int(_SUBJECT.match(subject)[1])  # type: ignore[index]
        folder = self._subjects.get(number, self._root / "images" / subject)
        for part in (scene, "Color", f"rgb{group}"):
            folder = self._child(folder, part)
        return folder


@register
class EgoGesture(Format):
    name = "egogesture"
    segments = True

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        return (root / LABELS).is_dir() and bool(_image_roots(root))

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        if not (root / LABELS).is_dir():
            raise BadInputError(f"{root / LABELS}: label folder missing; this is not an EgoGesture root")
        listing = options.listing()
        frames_of = _FrameFolders(root)
        raws: list[RawSample] = []
        for spelt in _folders(root / LABELS):
            match = _SUBJECT.match(spelt)
            if not match:
                problems.report(f"{root / LABELS / spelt}: not a SubjectXX folder; move it out")
                continue
            subject = f"Subject{int(match[1]):02d}"  # one spelling, whatever the folder's letter case
            split = official_split(subject)
            for scene in _folders(root / LABELS / spelt):
                with os.scandir(root / LABELS / spelt / scene) as entries:
                    groups = sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
                for name in groups:
                    group = _GROUP.match(name)
                    path = root / LABELS / spelt / scene / name
                    if group is None:
                        problems.report(f"{path}: not a GroupN.csv label file; move it out")
                        continue
                    recording = f"{subject}/{scene}/rgb{group[1]}"
                    folder = frames_of.recording(subject, scene, group[1])
                    for number, line in enumerate(read_lines(path), 1):
                        if not line.replace(",", "").strip():
                            continue
                        where = f"{path}:{number}"
                        cells = [c.strip() for c in line.split(",")]
                        try:
                            label, start, end = cells[0], int(cells[1]) - 1, int(cells[2]) - 1
                            if len(cells) != 3 or not label:
                                raise ValueError
                        except (ValueError, IndexError):
                            problems.report(f"{where}: expected 'label,start,end', got {line.strip()!r}")
                            continue
                        if start < 0:
                            problems.report(f"{where}: start must be 1 or more (frames are 1-based)")
                            continue
                        try:
                            frames = listing.frames(folder)
                        except BadInputError as error:
                            problems.report(f"{where}: recording has no frame folder ({error})")
                            continue
                        start, end = frames.positions(start + 1, end + 1)  # the frames so numbered
                        written = f"start {cells[1]}, end {cells[2]}"
                        raws.append(
                            RawSample(
                                label, recording, frames, where, start, end, subject, split, written=written
                            )
                        )
        classes = sorted({raw.label for raw in raws}, key=lambda s: (len(s), s))  # numeric order of ids
        return build_dataset(root, self.name, raws, problems, classes if raws else None, memo=options.memo)
