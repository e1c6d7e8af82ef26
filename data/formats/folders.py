"""``folders``: today's layouts, class folders of frames or video files, optionally pre-split.

Layouts::

    root/<class>/<video_id>_frame_<n>.jpg      frames, grouped by video_id, ordered by the number n
    root/<class>/<video_id>.mp4                video files
    root/{train,val,test}/<class>/...          pre-split: the split of every video is taken as given

The fallback of auto-detection: any folder that no other format recognises is read this way.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from data.discovery import Dataset, discover
from data.formats import Format, FormatOptions, register
from data.samples import Problems


@register
class Folders(Format):
    name = "folders"
    priority = 0

    @classmethod
    def recognises(cls, root: Path, options: FormatOptions) -> bool:
        return True

    def read(self, root: Path, options: FormatOptions, problems: Problems) -> Dataset:
        dataset = discover(root, group_regex=options.group_regex, on_bad=problems.on_bad, memo=options.memo)
        return replace(dataset, format=self.name)
