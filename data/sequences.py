"""From a discovered dataset and its split to the list of sequences the extractor encodes."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.errors import BadInputError, UserError
from data.class_subset import select_classes
from data.config import DataConfig
from data.discovery import Dataset
from data.formats import FormatOptions, is_segment_format, read_dataset
from data.framelist import ListingMemo
from data.leakage import LeakageReport, check_leakage
from data.sampling import sample_indices
from data.sequence import Sequence, Video
from data.splits import empty_split_note, resolve_splits, reused_split_note
from data.windows import make_windows


def build_sequences(dataset: Dataset, assignment: dict[str, str], cfg: DataConfig) -> list[Sequence]:
    """One resize-only sequence per video, plus ``cfg.augment_copies`` augmented copies (aug_index 1..K)
    of every train video. Validation and test are never augmented."""
    sequences: list[Sequence] = []
    for video in dataset.videos:
        split = assignment.get(video.key)
        if split is None:  # a split file saved before this video was added
            source = video.video_file or (video.frames[0] if video.frames else video.root)
            raise BadInputError(
                f"{source}: video '{video.key}' has no split in the split file; delete the split file to "
                "re-split, or add the video to it"
            )
        indices, valid, length = sample_indices(video.num_frames, cfg.frames)  # (T,), (T,)
        indices = indices + np.int32(video.start)  # indices into the source, within the segment
        indices.flags.writeable = False  # shared by the copies below
        valid.flags.writeable = False
        copies = cfg.augment_copies if split == "train" else 0
        sequences.extend(
            Sequence(video=video, indices=indices, valid=valid, length=length, split=split, aug_index=k)
            for k in range(copies + 1)
        )
    return sequences


def augmentation_seed(sequence: Sequence, augment_seed: int) -> int | None:
    """Seed for ``SequenceAugmenter``: None (resize only) for copy 0, else a stable 63-bit hash of
    (augment_seed, sequence id). Derived from the id, not a position, so adding videos to a dataset never
    changes the augmentation of the others (the cache stays valid)."""
    if sequence.aug_index == 0:
        return None
    digest = hashlib.sha256(f"{augment_seed}:{sequence.sequence_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class PreparedData:
    """Everything the data stage hands to extraction."""

    dataset: Dataset
    assignment: dict[str, str]
    sequences: list[Sequence]
    leakage: LeakageReport


def read_samples(cfg: DataConfig, memo_path: Path | None = None) -> Dataset:
    """The dataset at ``cfg.data`` in its format (``--format``, detected for ``auto``), cut into sliding
    windows when ``cfg.windows`` asks for them, cut down to ``cfg.classes``. ``memo_path`` persists folder
    listings between runs."""
    if cfg.data is None:
        raise UserError("no dataset given; pass --data DIR")
    options = FormatOptions(
        manifest=cfg.manifest,
        group_regex=cfg.group_regex,
        on_bad=cfg.on_bad_frame,
        memo=ListingMemo(memo_path) if memo_path is not None else None,
    )
    fmt = cfg.format if cfg.format != "auto" or cfg.manifest is None else "manifest"
    dataset = read_dataset(cfg.data, fmt, options)
    if cfg.windows is not None:
        if not is_segment_format(dataset.format):
            raise UserError(
                f"--windows needs a segment-annotated format (ipn, egogesture, nvgesture, wlasl, manifest), "
                f"not {dataset.format}"
            )
        dataset = make_windows(dataset, cfg.windows, cfg.background_label)
    if cfg.classes is not None:  # after windowing: a window over a left-out gesture is not background
        keep = (cfg.background_label,) if cfg.windows is not None else ()
        dataset = select_classes(dataset, cfg.classes, keep)
    return dataset


def _for_leakage_check(videos: list[Video], assignment: dict[str, str]) -> list[Video]:
    """Videos whose official split the policy changed (validation taken from train, --split random) lose
    it for the check; a key given in two official splits keeps both, so the conflict is still caught."""
    counts = Counter(video.key for video in videos)
    return [
        replace(v, split=None)
        if v.split is not None and counts[v.key] == 1 and assignment.get(v.key) != v.split
        else v
        for v in videos
    ]


def prepare_sequences(
    cfg: DataConfig, check_duplicates: bool = True, memo_path: Path | None = None
) -> PreparedData:
    """read -> splits -> leakage check -> sequences in one call. Print ``PreparedData.leakage.warnings()``
    and ``dataset.notes`` on stderr: near-duplicate frames are reported, not raised."""
    dataset = read_samples(cfg, memo_path)
    assignment = resolve_splits(dataset, cfg)
    if (note := reused_split_note(dataset, cfg) or empty_split_note(dataset, cfg, assignment)) is not None:
        dataset = replace(dataset, notes=[*dataset.notes, note])
    videos = _for_leakage_check(dataset.videos, assignment)
    if check_duplicates:
        leakage = check_leakage(videos, assignment)
    else:
        leakage = check_leakage(videos, {})  # still rejects a pre-split video in two splits
    return PreparedData(dataset, assignment, build_sequences(dataset, assignment, cfg), leakage)
