"""From a discovered dataset and its split to the list of sequences the extractor encodes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.errors import BadInputError, UserError
from data.config import DataConfig
from data.discovery import Dataset, discover
from data.leakage import LeakageReport, check_leakage
from data.sampling import sample_indices
from data.sequence import Sequence
from data.splits import resolve_splits


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


def prepare_sequences(cfg: DataConfig, check_duplicates: bool = True) -> PreparedData:
    """discover -> splits -> leakage check -> sequences in one call. Print ``PreparedData.leakage.warnings()``
    on stderr: near-duplicate frames are reported, not raised."""
    if cfg.data is None:
        raise UserError("no dataset given; pass --data DIR")
    dataset = discover(cfg.data, group_regex=cfg.group_regex, on_bad=cfg.on_bad_frame)
    assignment = resolve_splits(dataset, cfg)
    if check_duplicates:
        leakage = check_leakage(dataset.videos, assignment)
    else:
        leakage = check_leakage(dataset.videos, {})  # still rejects a pre-split video in two splits
    return PreparedData(dataset, assignment, build_sequences(dataset, assignment, cfg), leakage)
