"""``manifest``: any corpus, described by one CSV or JSONL file (``--manifest FILE``).

Layout::

    --manifest samples.csv                      path,label[,start,end,subject,split]
        clips/take1.mp4,wave,0,41,s01,train     a video file (path relative to --data)
        frames/take2,clap,,,s02,test            a frame folder: 00001.jpg, img_12.png, frame-0003.jpg ...
    --manifest samples.jsonl                    {"path": "clips/take1.mp4", "label": "wave", "start": 0}

``start``/``end`` are 0-based inclusive frame numbers; an absent ``end`` means the last frame. ``split`` is
train, val or test. Paths must stay inside --data (no ``../``, no absolute paths). This is the escape
hatch for every corpus without an adapter of its own.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import BadInputError, UserError
from data.discovery import SPLIT_FOLDERS, VIDEO_EXTENSIONS, Dataset
from data.formats import Format, FormatOptions, register
from data.samples import Problems, RawSample, build_dataset, path_inside

COLUMNS = ("path", "label", "start", "end", "subject", "split")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row dict) per sample line; a string instead of a dict says what is wrong."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInputError(f"{path}: manifest file does not exist; check --manifest") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: manifest is unreadable ({error}); save it as UTF-8 text") from None
    lines = text.splitlines()
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, f"is not valid JSON ({error.msg})"
                continue
            yield number, row if isinstance(row, dict) else "is not a JSON object with path and label"
        return
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or not {"path", "label"} <= {h.strip() for h in header}:
        raise BadInputError(
            f"{path}:1: manifest header must name the columns path,label (and optionally "
            "start,end,subject,split); add that line"
        )
    names = [h.strip() for h in header]
    for number, cells in enumerate(reader, 2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            yield number, f"has {len(cells)} fields, the header names {len(names)}"
            continue
        yield number, dict(zip(names, cells, strict=True))


def _bound(row: dict[str, Any], name: str) -> int | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"'{name}' must be a whole frame number, got {value!r}")
    number = int(value)  # ValueError for "1.5" or "x"
    if number < 0:
        raise ValueError(f"'{name}' must be 0 or more, got {number}")
    return number


@register
class Manifest(Format):
    name = "manifest"
    priority = 100  # an explicit --manifest always wins
    segments = True

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        return options.manifest is not None

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        if options.manifest is None:
            raise UserError("--format manifest needs --manifest FILE (a CSV or JSONL of path,label,...)")
        manifest = Path(options.manifest).expanduser()
        listing = options.listing()
        raws: list[RawSample] = []
        for number, row in _rows(manifest):
            where = f"{manifest}:{number}"
            if isinstance(row, str):
                problems.report(f"{where}: line {row}; fix it (columns {','.join(COLUMNS)})")
                continue
            text = {name: row.get(name) for name in ("path", "label", "subject", "split")}
            wrong = [name for name, value in text.items() if not isinstance(value, str | int | None)]
            if wrong or isinstance(text["path"], int):  # a JSONL list or object where a name belongs
                problems.report(f"{where}: '{(wrong or ['path'])[0]}' must be a string; fix the line")
                continue
            relative, label = str(row.get("path") or "").strip(), str(row.get("label") or "").strip()
            if not relative or not label:
                problems.report(f"{where}: line lacks a path or a label; fill both in")
                continue
            try:
                start, end = _bound(row, "start") or 0, _bound(row, "end")
            except ValueError as error:
                problems.report(f"{where}: {error}; fix the line")
                continue
            split = str(row.get("split") or "").strip().lower() or None
            if split is not None and split not in SPLIT_FOLDERS:
                problems.report(f"{where}: split {split!r} is not train, val or test; fix the line")
                continue
            target = path_inside(root, relative)
            if target is None:
                problems.report(
                    f"{where}: path {relative!r} escapes --data ({root}); give it relative to --data, "
                    "without '..' or a leading '/'"
                )
                continue
            try:
                if target.is_dir():
                    source: Any = listing.frames(target)
                elif target.suffix.lower() in VIDEO_EXTENSIONS and target.is_file():
                    source = target
                else:
                    source = None
            except BadInputError as error:
                problems.report(f"{where}: {error}")
                continue
            except OSError as error:  # a name the system refuses (too long, say)
                problems.report(
                    f"{where}: path {relative[:80]!r} cannot be read ({error.strerror or error}); fix it"
                )
                continue
            if source is None:
                problems.report(f"{where}: {target} is neither a frame folder nor a video file; fix the path")
                continue
            subject = str(row.get("subject") or "").strip() or None
            raws.append(
                RawSample(
                    label,
                    PurePosixPath(os.path.normpath(relative.replace("\\", "/"))).as_posix(),
                    source,
                    where,
                    start,
                    end,
                    subject,
                    SPLIT_FOLDERS[split] if split else None,
                )
            )
        with_split = [raw for raw in raws if raw.split]
        if with_split and len(with_split) != len(raws):
            lacking = next(raw for raw in raws if not raw.split)
            problems.report(
                f"{lacking.where}: line has no split while other lines have one; give every "
                "line a split, or none"
            )
            raws = with_split
        return build_dataset(root, self.name, raws, problems, memo=options.memo, source=manifest)
