"""``hagrid``: HaGRID still images, each a one-frame sample, with annotated boxes and landmarks.

Layout (HaGRIDv2, and HaGRID v1 since its test split)::

    hagrid_dataset/<class>/<image_id>.jpg          (or hagrid_dataset_512/, or <class>/ under --data)
    annotations/{train,val,test}/<class>.json      {image_id: {bboxes, labels, user_id, ...}}

HaGRID v1 as its first release and its 30k sample unpack::

    ann_train_val/<class>.json, ann_test/<class>.json    (or in annotations/, or in train/ and test/)
    train_val_<class>/<image_id>.jpg, test/<class>/      (or in hagrid_30k/, train/, test/)
    ann_subsample/<class>.json + subsample/<class>/      (read only when neither set above is there)

``ann_train_val`` is the training part (validation is taken from it by subject) and ``ann_test`` the test
part. The annotations cover every class while images come in one archive per class, so, as the corpus'
own loader does, an annotated image without its file is left out and counted in a note.

``bboxes`` are normalised (x, y, w, h), one per hand, with ``labels`` beside them; HaGRID (v1) annotates
points per hand as ``landmarks``, HaGRIDv2 as ``hand_landmarks`` and adds ``united_bbox`` and
``united_label``; ``leading_hand`` (left/right), where present, places the landmarks in ``--landmarks
annotations``'s slots (hagrid_hands.py). The annotation folder is the official split, ``user_id`` the
subject. Extract with ``--frames 1``. The parsed annotations ride on the sample (``Video.annotations``),
packed (``HagridNotes``, hagrid_hands.py: a HaGRIDv2 plan holds ~1M); ``annotation_arrays`` gives them as
fixed-shape arrays.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import BadInputError
from data.discovery import Dataset
from data.formats import Format, FormatOptions, register
from data.formats.hagrid_hands import NotesPacker, hand_slots, landmark_lists
from data.framelist import IMAGE_SUFFIXES, FrameList, ListingMemo
from data.mirror import mirror_boxes, mirror_points
from data.samples import Problems, RawSample, build_dataset
from data.sequence import Video
from data.warp import Warp, warp_boxes, warp_points

SPLITS = {"train": "train", "val": "val", "test": "test"}  # annotations/<folder>: the split it holds
V1_SPLITS = {"ann_train_val": "train", "ann_test": "test"}  # HaGRID v1's folders, beside or in annotations/
SUBSAMPLE = "ann_subsample"  # v1's 100 images per class: unsplit, read only when nothing else is there
# Where the image archives unpack: v2's folders, the v1 30k sample's, and v1's download script's
# (it saves the archives of each part in train/, test/ and subsample/).
IMAGE_ROOTS = ("hagrid_dataset", "hagrid_dataset_512", "hagrid_30k", "train", "test", "subsample")
V1_PLACES = ("", "annotations", "train", "test", "subsample")  # where v1's ann_* folders may be
LANDMARKS = 21  # points per hand (MediaPipe layout)
FIELDS = (
    "bboxes",
    "labels",
    "user_id",
    "united_bbox",
    "united_label",
    "hand_landmarks",
    "landmarks",
    "leading_hand",
)


def _numbers(value: Any, size: int) -> bool:
    return isinstance(value, list) and len(value) == size and all(isinstance(v, int | float) for v in value)


def check_entry(entry: Any) -> str | None:
    """What is wrong with one image's annotation, or None when it has the expected shape."""
    if not isinstance(entry, dict):
        return "is not an object"
    boxes, labels = entry.get("bboxes"), entry.get("labels")
    if not isinstance(boxes, list) or not all(_numbers(b, 4) for b in boxes):
        return "'bboxes' is not a list of [x, y, w, h]"
    if (
        not isinstance(labels, list)
        or len(labels) != len(boxes)
        or not all(isinstance(x, str) for x in labels)
    ):
        return "'labels' is not a list of names, one per box"
    if "user_id" in entry and not isinstance(entry["user_id"], str):
        return "'user_id' is not a string"
    for key in ("hand_landmarks", "landmarks"):
        marks = entry.get(key)
        if marks is not None and (not isinstance(marks, list) or not all(isinstance(h, list) for h in marks)):
            return f"'{key}' is not a list of point lists"
    if entry.get("leading_hand") not in (None, "left", "right"):
        return '\'leading_hand\' is not "left" or "right"'
    return None


def annotation_arrays(video: Video, max_hands: int = 4) -> dict[str, np.ndarray]:
    """A sample's annotated hands as fixed-shape arrays (K = ``max_hands``), for storing beside YOLO's:
    ``annotated_boxes`` (K, 4) float32 normalised x1, y1, x2, y2 (padding 0), ``annotated_count`` () uint8,
    ``annotated_landmarks`` (K, 21, 2) float32 normalised x, y (0 where absent) and
    ``annotated_landmarks_valid`` (K,) uint8, 1 for a hand whose 21 points are annotated."""
    entry = video.annotations or {}
    boxes = np.zeros((max_hands, 4), np.float32)  # (K, 4)
    for i, (x, y, w, h) in enumerate((entry.get("bboxes") or [])[:max_hands]):
        boxes[i] = (x, y, x + w, y + h)
    marks = np.zeros((max_hands, LANDMARKS, 2), np.float32)  # (K, 21, 2)
    valid = np.zeros(max_hands, np.uint8)  # (K,)
    for i, hand in enumerate((landmark_lists(entry) or [])[:max_hands]):
        points = np.asarray([p for p in hand if _numbers(p, 2)], np.float32).reshape(-1, 2)[:LANDMARKS]
        marks[i, : len(points)] = points
        valid[i] = len(points) == LANDMARKS
    count = np.uint8(min(len(entry.get("bboxes") or []), max_hands))
    return {
        "annotated_boxes": boxes,
        "annotated_count": count,
        "annotated_landmarks": marks,
        "annotated_landmarks_valid": valid,
    }


def _images(folder: Path, memo: ListingMemo | None) -> dict[str, str]:
    """image id -> file name, from one directory read (watched by ``memo``, so a kept parse is redone
    when the folder's files change)."""
    if memo is not None:
        memo.watch(folder)
    try:
        with os.scandir(folder) as entries:
            return {
                os.path.splitext(e.name)[0]: e.name
                for e in entries
                if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
            }
    except OSError:
        return {}


MAX_HANDS = 4  # annotated hands kept per image, as many as YOLO's boxes


@register
class HaGRID(Format):
    name = "hagrid"

    @classmethod
    def annotation_fields(cls) -> tuple[tuple[str, tuple[int, ...], str, tuple[float, float] | None], ...]:
        k = MAX_HANDS
        return (
            ("annotated_boxes", (k, 4), "float32", (0.0, 1.0)),
            ("annotated_count", (), "uint8", (0, k)),
            ("annotated_landmarks", (k, LANDMARKS, 2), "float32", None),
            ("annotated_landmarks_valid", (k,), "uint8", (0, 1)),
        )

    @classmethod
    def annotation_arrays(cls, video: Video, frame: int) -> dict[str, np.ndarray]:
        return annotation_arrays(video, MAX_HANDS)  # a still image: its one frame

    @classmethod
    def mirror_annotations(cls, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        boxes = mirror_boxes(arrays["annotated_boxes"], int(arrays["annotated_count"]))
        marks = arrays["annotated_landmarks"]  # (K, 21, 2); a partly annotated hand keeps its points too
        present = arrays["annotated_landmarks_valid"].astype(bool)[:, None] | (marks != 0).any(-1)  # (K, 21)
        marks = mirror_points(marks, present)
        return {**arrays, "annotated_boxes": boxes, "annotated_landmarks": marks}  # hand order kept

    @classmethod
    def warp_annotations(cls, arrays: dict[str, np.ndarray], warp: Warp) -> dict[str, np.ndarray]:
        boxes = warp_boxes(arrays["annotated_boxes"], int(arrays["annotated_count"]), warp)
        marks = arrays["annotated_landmarks"]  # (K, 21, 2)
        present = arrays["annotated_landmarks_valid"].astype(bool)[:, None] | (marks != 0).any(-1)  # (K, 21)
        return {**arrays, "annotated_boxes": boxes, "annotated_landmarks": warp_points(marks, present, warp)}

    annotates_hands = True

    @classmethod
    def annotated_hands(cls, video: Video, frame: int) -> tuple[np.ndarray, np.ndarray]:
        return hand_slots(video.annotations)  # (2, 21, 3), (2,): slots by leading_hand, else by x

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        return bool(_annotation_folders(root)) and not (root / "frames").is_dir()

    @classmethod
    def annotation_files(cls, root: Path, options: FormatOptions) -> list[Path] | None:
        """The class JSONs (HaGRID's full annotations are ~1.6 GB of JSON: parsing them is most of a
        plan); the image folders a parse lists are watched by the memo as it lists them."""
        return [path for folder, _ in _annotation_folders(root) for path in sorted(folder.glob("*.json"))]

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        folders = _annotation_folders(root)
        if not folders:
            raise BadInputError(
                f"{root}: no HaGRID annotations (annotations/{{train,val,test}}/ or ann_train_val/, "
                "ann_test/); point --data at the corpus root"
            )
        raws: list[RawSample] = []
        images = _ImageFolders(root, options.memo)
        packer = NotesPacker()  # one per parse: its images share layouts and label lists
        for split_dir, split in folders:
            for path in sorted(split_dir.glob("*.json")):
                label = path.stem
                try:
                    data = json.loads(path.read_text(encoding="utf-8-sig"))
                except json.JSONDecodeError as error:
                    problems.report(
                        f"{path}:{error.lineno}: not valid JSON ({error.msg}); fix or re-download it"
                    )
                    continue
                except (OSError, UnicodeDecodeError) as error:
                    problems.report(f"{path}: cannot be read ({error}); re-download it")
                    continue
                if not isinstance(data, dict):
                    problems.report(
                        f"{path}: expected an object keyed by image id, got {type(data).__name__}"
                    )
                    continue
                for image_id, entry in data.items():
                    where = f"{path}: image {image_id!r}"  # an id may hold any character, newlines too
                    wrong = check_entry(entry)
                    if wrong is not None:
                        problems.report(f"{where}: {wrong}; fix the annotation")
                        continue
                    found = images.find(label, image_id)
                    if found is None:
                        continue
                    notes = packer.pack(entry, FIELDS)  # ~1/6 of the parsed lists' memory, ~1M of them
                    raws.append(
                        RawSample(label, image_id, found, where, 0, 0, entry.get("user_id"), split, notes)
                    )
        if not raws and not problems.skipped and not images.missing:
            raise BadInputError(f"{folders[0][0]}: no <class>.json annotations found")
        if not raws and not problems.skipped:
            raise BadInputError(
                f"{root}: none of the {images.total_missing()} annotated images has its file (looked for "
                f"{images.where()}); unpack the image archives there"
            )
        return build_dataset(root, self.name, raws, problems, notes=images.notes(), memo=options.memo)


def _v1_folder(root: Path, name: str) -> Path | None:
    """Where one of HaGRID v1's annotation folders is: at the root, in annotations/, or, as its download
    script saves each archive, in train/, test/ or subsample/."""
    return next((root / place / name for place in V1_PLACES if (root / place / name).is_dir()), None)


def _annotation_folders(root: Path) -> list[tuple[Path, str | None]]:
    """(folder of <class>.json, the split it holds): HaGRIDv2's annotations/<split>/, else HaGRID v1's
    ann_train_val/ and ann_test/, else v1's unsplit ann_subsample/."""
    notes = root / "annotations"
    found = [(notes / name, split) for name, split in SPLITS.items() if (notes / name).is_dir()]
    if not found:
        found = [(folder, split) for name, split in V1_SPLITS.items() if (folder := _v1_folder(root, name))]
    if not found and (folder := _v1_folder(root, SUBSAMPLE)) is not None:
        found = [(folder, None)]
    return found


class _ImageFolders:
    """Finds an annotated image's file among the folders HaGRID's image archives unpack to, each folder
    listed once; counts per class the annotated images that have none."""

    FOLDERS = ("{}", "train_val_{}", "test/{}", "subsample/{}")  # a class's images, in each base

    def __init__(self, root: Path, memo: ListingMemo | None = None) -> None:
        self.memo = memo
        if memo is not None:  # an image root unpacked later (hagrid_dataset/, train/) changes the listing
            for name in IMAGE_ROOTS:
                memo.watch(root / name)
        self.bases = [root] + [root / name for name in IMAGE_ROOTS if (root / name).is_dir()]
        self.listed: dict[str, dict[str, tuple[Path, str]]] = {}  # class -> image id -> (folder, file name)
        self.missing: dict[str, int] = {}  # class -> its annotated images without a file
        self.first_missing: list[str] = []  # a few of those, from classes that have images

    def where(self) -> str:
        forms = ", ".join(f.format("<class>") + "/" for f in self.FOLDERS)
        return f"{forms} in {', '.join(str(base) for base in self.bases)}"

    def find(self, label: str, image_id: str) -> FrameList | None:
        if label not in self.listed:
            files: dict[str, tuple[Path, str]] = {}
            for base in reversed(self.bases):  # the first base and form listed win
                for form in reversed(self.FOLDERS):
                    folder = base / form.format(label)
                    files.update((stem, (folder, name)) for stem, name in _images(folder, self.memo).items())
            self.listed[label] = files
        found = self.listed[label].get(image_id)
        if found is None:
            self.missing[label] = self.missing.get(label, 0) + 1
            if self.listed[label] and len(self.first_missing) < 3:
                self.first_missing.append(f"{label}/{image_id}")
            return None
        folder, name = found
        return FrameList(folder, (name,))

    def total_missing(self) -> int:
        return sum(self.missing.values())

    def notes(self) -> list[str]:
        """One line for the classes with no image at all, one for the images missing from the others."""
        lines = []
        absent = sorted(label for label in self.missing if not self.listed[label])
        if absent:
            count = sum(self.missing[label] for label in absent)
            lines.append(
                f"hagrid: class(es) {', '.join(absent)} have no image folder ({count} annotated images "
                f"left out; looked for {self.where()})"
            )
        partial = sum(n for label, n in self.missing.items() if self.listed[label])
        if partial:
            lines.append(
                f"hagrid: {partial} annotated image(s) have no file in their class folder and are left "
                f"out (first: {', '.join(self.first_missing)})"
            )
        return lines
