"""Settings of the data stage; the CLI builds its flags and YAML keys from these fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.errors import UserError


@dataclass
class DataConfig:
    """How a folder becomes sequences: sampling, splits, augmentation and bad-input policy."""

    data: Path | None = field(
        default=None,
        metadata={
            "help": "dataset root: class folders of frames/videos, or train/ val/ test/ of class folders"
        },
    )
    frames: int = field(default=32, metadata={"help": "frames sampled per video (T)"})
    image_size: int = field(default=640, metadata={"help": "frames are resized to image_size x image_size"})
    val: float = field(default=0.2, metadata={"help": "share of videos per class for validation"})
    test: float = field(default=0.0, metadata={"help": "share of videos per class for test"})
    seed: int = field(default=0, metadata={"help": "seed of the train/val/test split"})
    group_regex: str | None = field(
        default=None,
        metadata={
            "help": "regex over video ids whose match (first group if any) names a subject; "
            "a subject's videos stay in one split, e.g. '^(s\\d+)_'"
        },
    )
    augment_copies: int = field(
        default=0,
        metadata={"help": "augmented copies per training video (validation/test are never augmented)"},
    )
    augment_seed: int = field(default=0, metadata={"help": "seed of the augmentation parameters"})
    flip: bool = field(default=True, metadata={"help": "allow horizontal flips in augmentation"})
    flip_swap: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "class pairs 'a:b' whose labels swap when a copy is flipped, e.g. swipe_left:swipe_right"
        },
    )
    on_bad_frame: Literal["error", "skip"] = field(
        default="error",
        metadata={"help": "bad frames/videos: 'error' stops with a message, 'skip' drops and counts"},
    )
    format: str = field(
        default="auto",
        metadata={
            "help": "dataset format: auto (detect and say which), folders, manifest, jester, ipn, "
            "egogesture, nvgesture, hagrid, wlasl, demo (the synthetic set, by name only; see README, "
            "Bringing your corpus)"
        },
    )
    classes: str | None = field(
        default=None,
        metadata={
            "help": "keep only these classes: N (the first N in the corpus's label order; for WLASL its "
            "glosses by frequency, so 100 is WLASL100) or names joined by ','"
        },
    )
    manifest: Path | None = field(
        default=None,
        metadata={"help": "CSV or JSONL of path,label[,start,end,subject,split] (paths relative to --data)"},
    )
    split: Literal["auto", "random", "official"] = field(
        default="auto",
        metadata={
            "help": "official: the format's own split (validation from its training part when it has none); "
            "random: stratified, each known subject in one split; auto: official where the format ships one"
        },
    )
    windows: str | None = field(
        default=None,
        metadata={
            "help": "W:S sliding windows of W frames every S frames over whole recordings "
            "(segment-annotated formats), labelled by overlap"
        },
    )
    background_label: str = field(
        default="no_gesture", metadata={"help": "label of a window no gesture covers at least half of"}
    )
    split_file: Path | None = field(
        default=None,
        metadata={"help": "JSON file of the split: reused when it exists, written on first use"},
    )

    def __post_init__(self) -> None:
        # Check, never repair: a silently "fixed" ratio would change the split behind the user's back.
        if self.frames < 1:
            raise UserError(f"--frames must be at least 1, got {self.frames}")
        if self.image_size < 8:
            raise UserError(f"--image-size must be at least 8, got {self.image_size}")
        if not (0.0 <= self.val < 1.0 and 0.0 <= self.test < 1.0 and self.val + self.test < 1.0):
            raise UserError(
                f"--val {self.val} and --test {self.test} must be in [0, 1) and sum to less than 1; "
                "lower them so training keeps videos"
            )
        if self.augment_copies < 0:
            raise UserError(f"--augment-copies must be 0 or more, got {self.augment_copies}")
        for flag, seed in (("--seed", self.seed), ("--augment-seed", self.augment_seed)):
            if not 0 <= seed < 2**32:  # what NumPy's generators take, as train's --seed
                raise UserError(f"{flag} must be in 0 .. 2**32 - 1, got {seed}")
        if self.classes is not None:
            from data.class_subset import parse_classes

            parse_classes(self.classes)
        if self.windows is not None:
            from data.windows import parse_windows

            parse_windows(self.windows)
        if self.on_bad_frame not in ("error", "skip"):
            raise UserError(f"--on-bad-frame must be 'error' or 'skip', got {self.on_bad_frame!r}")
