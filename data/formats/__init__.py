"""Dataset formats: one module per corpus layout, each turning a root folder into a ``Dataset`` of samples.

A format module defines a ``Format`` subclass decorated with ``@register``; its docstring shows the layout
it reads. ``--format auto`` asks every format, most specific first, whether it recognises the root.
Every module in this package is imported on first use, so adding a format is adding one file.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core.errors import BadInputError, UserError
from data.discovery import Dataset
from data.framelist import ListingMemo
from data.samples import Problems

FORMATS: dict[str, type[Format]] = {}


@dataclass
class FormatOptions:
    """What a format may need besides the root."""

    manifest: Path | None = None
    group_regex: str | None = None
    on_bad: str = "error"
    memo: ListingMemo | None = None

    def listing(self) -> ListingMemo:
        return self.memo if self.memo is not None else ListingMemo()


class Format:
    """One corpus layout. ``priority``: auto-detection asks higher first (the generic ``folders`` last)."""

    name: ClassVar[str] = ""
    priority: ClassVar[int] = 10
    segments: ClassVar[bool] = False  # annotates gestures as segments of longer recordings
    # Stems of the videos a recording folder holds beside its colour one (depth, infrared), which the
    # format never reads: a folder ``predict`` is given leaves them out (data/inputs.py).
    sensor_videos: ClassVar[tuple[str, ...]] = ()
    # The corpus' list of test clips it ships without labels (Jester's test CSV): not extracted, but
    # classified with ``predict LIST``, as ``evaluate --split test`` says.
    unlabelled_test: ClassVar[str] = ""

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        """True when the files at ``root`` look like this format (cheap: a few names, no listing)."""
        raise NotImplementedError

    @classmethod
    def annotation_files(cls, root: Path, options: FormatOptions) -> list[Path] | None:
        """Every file the parse depends on besides the frame folders it lists, so a whole parse can be
        reused while they and those folders are unchanged; None: never reuse a parse."""
        return None

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        """Every sample under ``root``; bad input goes through ``problems``."""
        raise NotImplementedError

    @classmethod
    def annotation_fields(cls) -> tuple[tuple[str, tuple[int, ...], str, tuple[float, float] | None], ...]:
        """(name, per-frame shape, dtype, bounds) of the annotations this corpus ships (HaGRID's boxes and
        landmarks), stored by the ``annotations`` stream beside the encoders' outputs; empty: none."""
        return ()

    @classmethod
    def annotation_arrays(cls, video: Any, frame: int) -> dict[str, Any]:
        """One frame's annotations as arrays of ``annotation_fields``'s shapes."""
        raise NotImplementedError

    @classmethod
    def mirror_annotations(cls, arrays: dict[str, Any]) -> dict[str, Any]:
        """One frame's ``annotation_arrays`` as they read on that frame flipped left-right (a flipped
        augmented copy); data/mirror.py has the geometry. Every format with annotations implements it."""
        raise NotImplementedError(f"format {cls.name!r} ships annotations but does not mirror them")

    @classmethod
    def warp_annotations(cls, arrays: dict[str, Any], warp: Any) -> dict[str, Any]:
        """One frame's ``annotation_arrays`` (mirrored first if the copy was flipped) moved as a distorted
        augmented copy's ``data.warp.Warp`` moved its pixels. Every format with annotations implements it."""
        raise NotImplementedError(f"format {cls.name!r} ships annotations but does not warp them")

    annotates_hands: ClassVar[bool] = False  # ships hand landmarks ``--landmarks annotations`` can read

    @classmethod
    def annotated_hands(cls, video: Any, frame: int) -> tuple[Any, Any]:
        """One frame's annotated hand landmarks in the landmarks stream's slots: points (2, 21, 3) float32
        and valid (2,) uint8 (only where ``annotates_hands``)."""
        raise NotImplementedError


def format_class(name: str) -> type[Format]:
    _import_all()
    if name not in FORMATS:
        raise UserError(f"unknown format {name!r}; valid: {', '.join(sorted(FORMATS))}")
    return FORMATS[name]


def register(cls: type[Format]) -> type[Format]:
    """Class decorator: make a format available to ``--format`` under ``cls.name``."""
    if not cls.name or cls.name in FORMATS:
        raise ValueError(f"format name {cls.name!r} is empty or taken")
    FORMATS[cls.name] = cls
    return cls


@functools.cache
def _import_all() -> None:
    """Import every format module once (each registers itself); later calls cost nothing."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def format_names() -> list[str]:
    _import_all()
    return sorted(FORMATS)


def detect(root: Path, options: FormatOptions) -> str:
    """The name of the first format, by priority, that recognises ``root``."""
    _import_all()
    for cls in sorted(FORMATS.values(), key=lambda c: (-c.priority, c.name)):
        if cls.recognises(root, options):
            return cls.name
    raise BadInputError(
        f"{root}: no dataset format recognises this folder; pass --format "
        f"({', '.join(format_names())}) or a --manifest FILE"
    )


def read_dataset(root: Path, fmt: str, options: FormatOptions) -> Dataset:
    """Read ``root`` as format ``fmt`` (``auto``: detect it and say which on stderr)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise BadInputError(f"{root}: dataset folder does not exist; check the --data path")
    if not root.is_dir():
        raise BadInputError(f"{root}: is a file, not a dataset folder; pass the folder that holds the data")
    _import_all()
    if fmt == "auto":
        fmt = detect(root, options)
        print(f"format: {fmt} (detected at {root}; pass --format to choose another)", file=sys.stderr)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not known; choose one of auto, {', '.join(format_names())}")
    cls, memo = FORMATS[fmt], options.memo
    files = cls.annotation_files(root, options) if memo is not None else None
    signature = f"{fmt}\0{root.resolve()}\0{options.manifest}\0{options.group_regex}\0{options.on_bad}"
    if memo is not None and files is not None and (kept := memo.result(signature, files)) is not None:
        return kept
    dataset = cls().read(root, options, Problems(options.on_bad))
    if memo is not None:
        if files is not None:
            memo.keep(signature, files, dataset)
        memo.save()
    return dataset


def sensor_video_owner(stem: str) -> str | None:
    """The format whose recordings hold a non-colour video named ``stem`` (``sk_depth``), or None."""
    _import_all()
    return next((cls.name for cls in FORMATS.values() if stem in cls.sensor_videos), None)


def is_segment_format(name: str) -> bool:
    _import_all()
    return name in FORMATS and FORMATS[name].segments
