"""Decoding and augmentation of whole sequences, run inside DataLoader workers."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing import forkserver
from multiprocessing.context import BaseContext
from typing import Any

import torch
from torch.utils.data import Dataset

from data.augment import SequenceAugmenter
from data.frames import read_frames
from data.sequence import Sequence
from data.sequences import augmentation_seed
from errors import BadInputError


class SequenceFrames(Dataset):
    """Item i: the augmented (T, S, S, 3) uint8 frames of ``sequences[i]``, its (maybe swapped) label and
    the seconds spent decoding and augmenting it.

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
            start = time.perf_counter()
            frames = read_frames(seq.video, seq.indices)
            decoded = time.perf_counter()
            frames, label = self.augmenter(frames, seq.label, augmentation_seed(seq, self.base_seed))
            done = time.perf_counter()
        except BadInputError as e:
            return {"index": i, "error": str(e)}
        # Worker-side seconds travel with the item: the worker's clock is the only one that sees them,
        # and two clock reads per sequence cost nothing next to decoding 32 frames.
        seconds = {"decode": decoded - start, "augment": done - decoded}
        return {"index": i, "frames": torch.from_numpy(frames), "label": int(label), "seconds": seconds}


def collate_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep items separate: sequences may fail individually, and frames are concatenated later."""
    return items


# What the worker server imports once, so that every worker forks with it already loaded.
# The lifeline comes first: the server must die with its parent even while it is still importing.
WORKER_PRELOAD = ("extract.forkserver_lifeline", "__main__", "torch", "extract.source")


def worker_context() -> BaseContext:
    """The multiprocessing context of the decode workers: a forkserver that has torch, OpenCV and
    albumentations imported, started now (idempotent, non-blocking).

    forkserver, not fork: a forked worker inherits the parent's OpenCV/OpenMP thread pools in a broken
    state and can deadlock on its first cv2 call. But a bare forkserver child imports all of that itself,
    one worker after the other, while the parent blocks writing the pickled dataset (over a pipe's 64 KB)
    to it: measured 6.7-7.6 s to start 2 workers, on every extraction. The server imports only (no
    thread pool exists yet, so forking it is safe), once per process: later workers start in ~0.2 s.
    Called early (before the encoders are built), the server's own ~4 s import overlaps that work.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(WORKER_PRELOAD))  # only read when the server starts
    forkserver.ensure_running()
    return ctx
