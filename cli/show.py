"""`pipeline.py show`: the command's entry, registered in pipeline.py's command table."""

from __future__ import annotations

from train.config import ShowConfig


def cmd_show(cfg: ShowConfig) -> int:
    from train.show import run_show

    print(run_show(cfg))
    return 0


COMMAND = (
    "show",
    "write one video's frames with masks, boxes, attention or landmarks drawn, as MP4",
    ShowConfig,
    cmd_show,
)
