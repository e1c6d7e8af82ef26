"""``jester``: the 20BN-Jester layout, label CSVs beside numbered frame folders.

Layout::

    jester-v1-labels.csv            one label per line (the line order is the label index)
    jester-v1-train.csv             lines '<id>;<label>'
    jester-v1-validation.csv        lines '<id>;<label>'
    jester-v1-test.csv              lines '<id>' (no labels: run `predict` over it, see README)
    20bn-jester-v1/<id>/00001.jpg   the frames of clip <id>

The CSVs may also sit in a ``label/`` (or ``labels/``, ``annotations/``) folder beside ``20bn-jester-v1/``,
as the TSM code base lays the corpus out. Train and validation are the official split, taken as given;
the test CSV is not extracted.
Each clip folder is read once (names only); the listing memo makes a second plan of an unchanged tree cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import BadInputError
from data.discovery import Dataset
from data.formats import Format, FormatOptions, register
from data.samples import Problems, RawSample, build_dataset

LABELS = "jester-v1-labels.csv"
SPLIT_FILES = {"train": "jester-v1-train.csv", "val": "jester-v1-validation.csv"}
TEST_FILE = "jester-v1-test.csv"
FRAMES = "20bn-jester-v1"


LABEL_DIRS = ("", "label", "labels", "annotations")


def _labels_dir(root: Path) -> Path:
    """The folder that holds the label CSVs: the root itself, else its first label folder that does."""
    return next((root / d for d in LABEL_DIRS if (root / d / LABELS).is_file()), root)


def read_lines(path: Path) -> list[str]:
    """Lines of a small text annotation file; unreadable is bad input naming it."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: cannot be read ({error}); check the file") from None


def clip_ids(path: Path) -> list[str]:
    """Ids of a Jester id list (the test CSV: one id per line, or '<id>;...')."""
    return [line.split(";", 1)[0].strip() for line in read_lines(path) if line.strip()]


@register
class Jester(Format):
    name = "jester"
    unlabelled_test = TEST_FILE

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        return (_labels_dir(root) / LABELS).is_file() and (root / FRAMES).is_dir()

    @classmethod
    def annotation_files(cls, root: Path, options: FormatOptions) -> list[Path] | None:
        lists = _labels_dir(root)
        return [lists / LABELS, *(lists / name for name in SPLIT_FILES.values())]

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        lists = _labels_dir(root)
        labels_path = lists / LABELS
        if not labels_path.is_file():
            raise BadInputError(f"{labels_path}: label list missing; this is not a Jester root")
        classes = [line.strip() for line in read_lines(labels_path) if line.strip()]
        if not classes:
            raise BadInputError(f"{labels_path}: holds no labels (one per line); re-download it")
        listing = options.listing()
        frames_root = str(root / FRAMES)  # strings: Path arithmetic per clip costs more than the listing
        raws: list[RawSample] = []
        for split, name in SPLIT_FILES.items():
            path = lists / name
            if not path.is_file():
                continue
            for number, line in enumerate(read_lines(path), 1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                parts = line.split(";")
                if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                    problems.report(f"{where}: expected '<id>;<label>', got {line.strip()!r}; fix the line")
                    continue
                clip, label = parts[0].strip(), parts[1].strip()
                try:
                    frames = listing.frames(os.path.join(frames_root, clip))
                except BadInputError as error:
                    problems.report(f"{where}: id {clip!r} has no frame folder ({error})")
                    continue
                raws.append(RawSample(label, clip, frames, where, split=split))
        if not raws and not problems.skipped:
            raise BadInputError(
                f"{lists}: neither {' nor '.join(SPLIT_FILES.values())} lists a clip; put the released "
                "CSVs there"
            )
        return build_dataset(
            root, self.name, raws, problems, classes, label_file=str(labels_path), memo=options.memo
        )
