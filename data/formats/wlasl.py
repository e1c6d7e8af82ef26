"""``wlasl``: WLASL sign-language glosses, segments of source videos listed in one JSON file.

Layout::

    WLASL_v0.3.json     [{"gloss": "book", "instances": [{"video_id": "69241", "frame_start": 1,
                          "frame_end": -1, "signer_id": 118, "split": "train", ...}, ...]}, ...]
    videos/<video_id>.mp4

``frame_start`` is 1-based, ``frame_end`` inclusive and -1 means to the end. The corpus' own preprocessing
(``start_kit/preprocess.py``) writes a YouTube instance as ``videos/<video_id>.mp4`` holding just its frames
of the source video, so such a file is read whole, as the corpus' own loader reads it (from frame 0);
other instances' bounds apply to their video. ``signer_id`` is the subject,
``split`` (train/val/test) the official split. Instances whose video is missing (many links of the
corpus are dead) are counted and listed, not fatal. Labels follow the index's order, glosses by frequency,
so ``--classes 100`` is WLASL100 (the subset ``nslt_100.json`` lists): it counts in the whole index, so a
gloss whose videos are all dead is left out of the subset, not replaced by the 101st.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from core.errors import BadInputError
from data.discovery import Dataset
from data.formats import Format, FormatOptions, register
from data.samples import Problems, RawSample, build_dataset

INDEX = "WLASL_v0.3.json"
SPLITS = {"train": "train", "val": "val", "test": "test"}


def _whole(value: object) -> int:
    """A frame number as the index writes it (an int, or its digits); ValueError for 1.7, true, "x"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not a whole frame number: {value!r}")
    return int(value)


def _from_youtube(instance: dict) -> bool:
    """True for a YouTube instance: preprocessing cut its video out of the source video (or, without a
    ``frame_end``, copied the source whole), and the corpus' loader reads that file from frame 0."""
    url = instance.get("url")
    return isinstance(url, str) and ("youtube" in url or "youtu.be" in url)


@register
class WLASL(Format):
    name = "wlasl"
    segments = True

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        return (root / INDEX).is_file() or any(root.glob("WLASL_v*.json"))

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        path = (
            root / INDEX if (root / INDEX).is_file() else next(iter(sorted(root.glob("WLASL_v*.json"))), None)
        )
        if path is None:
            raise BadInputError(f"{root / INDEX}: index missing; this is not a WLASL root")
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is no reason to refuse it
        except json.JSONDecodeError as error:
            raise BadInputError(
                f"{path}:{error.lineno}: not valid JSON ({error.msg}); re-download it"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise BadInputError(f"{path}: cannot be read ({error}); re-download it") from None
        if not isinstance(data, list):
            raise BadInputError(
                f"{path}: expected a list of {{gloss, instances}}, got a JSON {type(data).__name__}; "
                "point --data at the WLASL root holding WLASL_v0.3.json as released"
            )
        try:
            with os.scandir(root / "videos") as entries:
                present = {e.name for e in entries}
        except OSError:
            present = set()
        raws: list[RawSample] = []
        glossed: list[dict] = []  # the well-formed entries, in the index's order
        missing: list[str] = []
        for number, item in enumerate(data):
            where = f"{path}: entry {number}"
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("gloss"), str)
                or not isinstance(item.get("instances"), list)
            ):
                problems.report(f"{where}: expected {{'gloss': str, 'instances': [...]}}; fix the entry")
                continue
            glossed.append(item)
            for k, inst in enumerate(item["instances"]):
                here = f"{where} ('{item['gloss']}') instance {k}"
                try:
                    video_id = str(inst["video_id"])
                    start, end = _whole(inst["frame_start"]) - 1, _whole(inst["frame_end"])
                    split = SPLITS[str(inst.get("split", "train"))]
                except (TypeError, KeyError, ValueError):
                    problems.report(
                        f"{here}: needs video_id, frame_start, frame_end and split "
                        "train/val/test; fix the instance"
                    )
                    continue
                if f"{video_id}.mp4" not in present:
                    missing.append(video_id)
                    continue
                if start < 0:
                    problems.report(f"{here}: frame_start must be 1 or more (1-based); fix it")
                    continue
                if _from_youtube(inst):  # the file is the instance: its bounds were the source video's
                    start, end = 0, -1
                signer = inst.get("signer_id")
                raws.append(
                    RawSample(
                        item["gloss"],
                        video_id,
                        root / "videos" / f"{video_id}.mp4",
                        here,
                        start,
                        None if end == -1 else end - 1,
                        None if signer is None else str(signer),
                        split,
                        written=f"frame_start {inst['frame_start']}, frame_end {inst['frame_end']}",
                    )
                )
        notes = []
        if missing:
            notes.append(
                f"wlasl: {len(missing)} instance(s) have no video in {root / 'videos'} and are left "
                f"out: {', '.join(missing)}"
            )
        # Labels in the index's order (glosses by frequency, as WLASL100/300/1000/2000 take its first N),
        # among the glosses with a video; --classes N counts in the whole index, dead links or not.
        classes = list(dict.fromkeys(raw.label for raw in raws))  # raws are in the index's order
        dataset = build_dataset(
            root,
            self.name,
            raws,
            problems,
            classes=classes,
            label_file=str(path),
            notes=notes,
            memo=options.memo,
            source=path,
        )
        ranking = tuple(dict.fromkeys(item["gloss"] for item in glossed))
        return replace(dataset, ranking=ranking) if ranking != tuple(dataset.classes) else dataset
