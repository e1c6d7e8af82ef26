"""``demo``: the synthetic demo set (``pipeline.py demo-data``), read as ``folders`` plus its hand boxes.

Layout: that of ``folders`` (``root/<class>/<video_id>_frame_<n>.jpg``), with the generator's marker file
holding each video's true hand box per frame (``data.demo.true_hand_boxes``). The annotations stream stores
those boxes as ``annotated_boxes`` (1, 4) and ``annotated_count`` (), so the demo's cache has a real hand
track even when its hand detector has random weights; the ``hands`` head reads them when the cache holds no
detections (``--encoders hands=none``). Chosen by name only (``--format demo``): auto-detection keeps
reading the demo folder as ``folders``, as before.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from data.demo import true_hand_boxes
from data.discovery import Dataset, discover
from data.formats import Format, FormatOptions, register
from data.mirror import mirror_boxes
from data.samples import Problems
from data.warp import Warp, warp_boxes


@register
class Demo(Format):
    name = "demo"
    priority = -1  # never claims a folder by itself

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        return False

    @classmethod
    def annotation_fields(cls) -> tuple[tuple[str, tuple[int, ...], str, tuple[float, float] | None], ...]:
        return (
            ("annotated_boxes", (1, 4), "float32", (0.0, 1.0)),
            ("annotated_count", (), "uint8", (0, 1)),
        )

    @classmethod
    def annotation_arrays(cls, video: Any, frame: int) -> dict[str, Any]:
        boxes = (video.annotations or {}).get("hand_boxes")
        if boxes is None or not 0 <= frame < len(boxes):
            return {"annotated_boxes": np.zeros((1, 4), np.float32), "annotated_count": np.uint8(0)}
        return {"annotated_boxes": boxes[frame][None].astype(np.float32), "annotated_count": np.uint8(1)}

    @classmethod
    def mirror_annotations(cls, arrays: dict[str, Any]) -> dict[str, Any]:
        boxes = mirror_boxes(arrays["annotated_boxes"], int(arrays["annotated_count"]))
        return {**arrays, "annotated_boxes": boxes}

    @classmethod
    def warp_annotations(cls, arrays: dict[str, Any], warp: Warp) -> dict[str, Any]:
        boxes = warp_boxes(arrays["annotated_boxes"], int(arrays["annotated_count"]), warp)
        return {**arrays, "annotated_boxes": boxes}

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        dataset = discover(root, group_regex=options.group_regex, on_bad=problems.on_bad)
        truth = true_hand_boxes(root)  # a folder without the generator's marker is refused here
        videos = [replace(v, annotations={"hand_boxes": truth.get(v.key)}) for v in dataset.videos]
        return replace(dataset, videos=videos, format=self.name)
