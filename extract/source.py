"""Decoding and augmentation of whole sequences, run inside DataLoader workers."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from data.augment import SequenceAugmenter
from data.frames import read_frames
from data.sequence import Sequence
from data.sequences import augmentation_seed
from errors import BadInputError


class SequenceFrames(Dataset):
    """Item i: the augmented (T, S, S, 3) uint8 frames of ``sequences[i]`` and its (maybe swapped) label.

    A bad file does not raise here: the worker's traceback would be wrapped into an unreadable message,
    so the error text travels back as data and the main process decides (stop, or skip and count).
    """

    def __init__(self, sequences: list[Sequence], augmenter: SequenceAugmenter, base_seed: int) -> None:
        self.sequences = sequences
        self.augmenter = augmenter
        self.base_seed = base_seed

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> dict[str, Any]:
        seq = self.sequences[i]
        try:
            frames = read_frames(seq.video, seq.indices)
            frames, label = self.augmenter(frames, seq.label, augmentation_seed(seq, self.base_seed))
        except BadInputError as e:
            return {"index": i, "error": str(e)}
        return {"index": i, "frames": torch.from_numpy(frames), "label": int(label)}


def collate_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep items separate: sequences may fail individually, and frames are concatenated later."""
    return items
