"""``nvgesture``: NVIDIA Dynamic Hand Gesture, segments of colour videos listed in two .lst files.

Layout::

    nvgesture_train_correct_cvpr2016_v2.lst    lines like
        path:./Video_data/class_01/subject13_r0 depth:sk_depth:138:218 color:sk_color:138:218 ... label:1
    nvgesture_test_correct_cvpr2016_v2.lst
    Video_data/class_01/subject13_r0/sk_color.avi     (beside sk_depth.avi and duo_left.avi, never read)

The colour stream's ``start:end`` is the segment, read as the dataset's own loader reads it:
``range(start, end)``, 0-based with ``end`` exclusive. Labels are the class numbers 1..25. The subject is
``subjectN`` of the path; train and test are the official split (validation comes from train).
"""

from __future__ import annotations

import re
from pathlib import Path

from data.discovery import Dataset
from data.formats import Format, FormatOptions, register
from data.formats.jester import read_lines
from data.samples import Problems, RawSample, build_dataset, path_inside

LISTS = {"train": "nvgesture_train_correct_cvpr2016_v2.lst", "test": "nvgesture_test_correct_cvpr2016_v2.lst"}
_SUBJECT = re.compile(r"(subject\d+)", re.IGNORECASE)


@register
class NVGesture(Format):
    name = "nvgesture"
    segments = True
    sensor_videos = ("sk_depth", "duo_left")  # the depth camera's and the infrared stereo camera's

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        return any((root / name).is_file() for name in LISTS.values())

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        raws: list[RawSample] = []
        for split, name in LISTS.items():
            path = root / name
            if not path.is_file():
                continue
            for number, line in enumerate(read_lines(path), 1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                fields = dict(item.split(":", 1) for item in line.split() if ":" in item)
                color = fields.get("color", "").split(":")
                try:
                    if not fields.get("path") or len(color) != 3:
                        raise ValueError
                    start, stop, label = int(color[1]), int(color[2]), str(int(fields["label"]))
                except (KeyError, ValueError):
                    problems.report(
                        f"{where}: expected 'path:... color:sk_color:START:END ... label:N', "
                        f"got {line.strip()[:80]!r}; fix the line"
                    )
                    continue
                relative = fields["path"].removeprefix("./").rstrip("/")
                folder = path_inside(root, relative)
                if folder is None:
                    problems.report(
                        f"{where}: path {relative[:80]!r} leaves --data ({root}); give it relative to the "
                        "corpus root, as the released lists do (path:./Video_data/...)"
                    )
                    continue
                video = folder / f"{color[0]}.avi"
                try:
                    found = video.is_file()
                except OSError as error:  # a name the system refuses (too long, say)
                    found, why = False, f"cannot be read ({error.strerror or error})"
                else:
                    why = "does not exist"
                if not found:
                    problems.report(f"{where}: video {str(video)[:200]!r} {why}; check the path")
                    continue
                subject = _SUBJECT.search(relative)
                raws.append(
                    RawSample(
                        label,
                        relative,
                        video,
                        where,
                        start,
                        stop - 1,
                        subject[1] if subject else None,
                        split,
                        written=f"color {color[0]}:{start}:{stop}, frames range({start}, {stop})",
                    )
                )
        classes = sorted({raw.label for raw in raws}, key=int)
        return build_dataset(root, self.name, raws, problems, classes if raws else None, memo=options.memo)
