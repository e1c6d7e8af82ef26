"""Decoding and augmentation of whole sequences, run inside DataLoader workers."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from multiprocessing import forkserver
from multiprocessing.context import BaseContext
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from core.errors import BadInputError
from data.augment import SequenceAugmenter
from data.frames import read_segments, source_of
from data.sequence import Sequence, Video
from data.sequences import augmentation_seed


class SequenceFrames(Dataset):
    """Item i: the augmented (T, S, S, 3) uint8 frames of ``sequences[i]``, its (maybe swapped) label,
    whether the copy was mirrored and how it was distorted (streams that store what the sample carries
    mirror and move it too: data/mirror.py, data/warp.py) and the seconds spent decoding and augmenting it.

    A bad file does not raise here: the worker's traceback would be wrapped into an unreadable message,
    so the error text travels back as data and the main process decides (stop, or skip and count).
    """

    def __init__(
        self,
        sequences: list[Sequence],
        augmenter: SequenceAugmenter,
        base_seed: int,
        resize_clean: bool = True,
        decode: str = "cpu",
    ) -> None:
        self.sequences = sequences
        self.augmenter = augmenter
        self.base_seed = base_seed
        # False on the device data path (extract/device_path.py): a clean copy leaves as decoded, any size.
        self.resize_clean = resize_clean
        self.decode = decode  # cpu | gpu | auto, as data/gpu_decode.resolve_decode settled it

    def __len__(self) -> int:
        return len(self.sequences)

    def __getstate__(self) -> dict[str, Any]:
        """What a decode worker is sent: the sequences without the annotations their samples carry.
        HaGRID's boxes and landmarks are ~1 KB an image even packed, ~1 GB over the corpus, and the
        whole dataset is pickled to every worker; the streams that store annotations run in the main
        process, on the plan's own sequences, and a worker only decodes and augments."""
        bare: dict[int, Video] = {}  # by id: the segments and copies of one sample share its Video
        sequences = []
        for seq in self.sequences:
            video = seq.video
            if video.annotations is not None:
                video = bare.setdefault(id(seq.video), replace(video, annotations=None))
                seq = replace(seq, video=video)
            sequences.append(seq)
        return {**self.__dict__, "sequences": sequences}

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A batch (the DataLoader's fetcher calls this when it exists): the sequences of one source
        (augmented copies, segments of one recording) are decoded together, in one pass over it."""
        groups: dict[object, list[int]] = {}
        for i in indices:
            video = self.sequences[i].video
            # One key per source: a frame list is named by its first file and length (segments of one
            # recording share it; two videos never do).
            key = video.video_file or (str(video.frames[0]), len(video.frames))
            groups.setdefault(key, []).append(i)
        items: dict[int, dict[str, Any]] = {}
        for group in groups.values():
            video = self.sequences[group[0]].video
            try:
                start = time.perf_counter()
                clips = read_segments(
                    source_of(video),
                    [self.sequences[i].indices for i in group],
                    video.source_length,
                    self.augmenter.image_size,
                    self.decode,
                )
                decode = (time.perf_counter() - start) / len(group)
                items.update(
                    (i, self._augment(i, clip, decode)) for i, clip in zip(group, clips, strict=True)
                )
            except BadInputError as e:
                items.update((i, {"index": i, "error": str(e)}) for i in group)
        return [items[i] for i in indices]

    def _augment(self, i: int, frames: Any, decode_seconds: float) -> dict[str, Any]:
        seq = self.sequences[i]
        start = time.perf_counter()
        seed = augmentation_seed(seq, self.base_seed)
        label, flipped, warp = seq.label, False, None
        if seed is not None or self.resize_clean:  # else the device resizes it: no CPU work beyond decoding
            result = self.augmenter.augment(frames, seq.label, seed)
            frames, label, flipped, warp = result.frames, result.label, result.flipped, result.warp
        # Worker-side seconds travel with the item: the worker's clock is the only one that sees them,
        # and two clock reads per sequence cost nothing next to decoding 32 frames.
        seconds = {"decode": decode_seconds, "augment": time.perf_counter() - start}
        return {
            "index": i,
            "frames": torch.from_numpy(frames),
            "label": int(label),
            "flipped": flipped,
            "warp": warp,
            "seconds": seconds,
        }


def collate_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep items separate: sequences may fail individually, and frames are concatenated later."""
    return items


def worker_init(_: int) -> None:
    """Workers decode and augment; one thread each keeps them from fighting the encoders for cores.

    It lives here, in a module the worker server preloads, for speed: a worker unpickles its init
    function by reference, and one defined in ``extract.run`` made every worker import the whole encoder
    stack (timm, transformers, ultralytics) before its first frame, ~3.5 s each, one after the other."""
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)


# What the worker server imports once, so that every worker forks with it already loaded.
# The lifeline comes first: the server must die with its parent even while it is still importing.
# Not "__main__": CPython 3.11's server never preloads it (it looks for a key the parent does not send);
# every worker re-runs the entry module instead, so entry modules stay light at import.
WORKER_PRELOAD = ("extract.forkserver_lifeline", "torch", "extract.source")


def worker_context() -> BaseContext:
    """The multiprocessing context of the decode workers: a forkserver that has torch, OpenCV and
    albumentations imported, started now (idempotent, non-blocking).

    forkserver, not fork: a forked worker inherits the parent's OpenCV/OpenMP thread pools in a broken
    state and can deadlock on its first cv2 call. But a bare forkserver child imports all of that itself,
    one worker after the other, while the parent blocks writing the pickled dataset (over a pipe's 64 KB)
    to it: measured 6.7-7.6 s to start 2 workers, on every extraction. The server imports only (no
    thread pool exists yet, so forking it is safe), once per process. A worker still imports what its
    pickled dataset and functions reference (see ``worker_init``) and re-runs the entry module; with
    both light, a worker starts in ~0.2 s. Called early (before the encoders are built), the server's own
    ~4 s import overlaps that work.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(WORKER_PRELOAD))  # only read when the server starts
    forkserver.ensure_running()
    return ctx


@dataclass
class SequenceBatches:
    """Lists of ``batch_size`` items, grouped here from a loader of single items as they arrive.

    Each worker loads one sequence at a time and the batches are put together in this process, so the
    first batch waits for one sequence per worker, not for one worker to load a whole batch on its own
    (with 8 workers and batches of 8, 5.0 s of a 20.5 s run on an H100, the GPU idle). Fewer frames wait
    in pinned memory (two sequences per worker, the loader's default prefetch). Items carry their index:
    which batch a sequence rides in changes nothing it becomes."""

    loader: Iterable[list[dict[str, Any]]]  # a DataLoader's batches of one item
    batch_size: int

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for items in self.loader:
            batch.extend(items)
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def decode_loader(
    source: Dataset,
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
    in_order: bool = False,
    prefetch: int = 2,
) -> SequenceBatches:
    """Batches of ``source``'s items, decoded in ``workers`` processes (none: in this one).

    Out of order: a sequence is handed over as soon as it is decoded, and a free worker takes the next
    one. In order, the loader deals index i to worker i mod N and waits for each item in turn. A train
    video's clean copy and its augmented copy are neighbours in the plan, so with an even number of
    workers half of them got every augmented copy (0.05-1.3 s of CPU each against 0.13 s of decoding),
    and one slow copy held back every batch behind it: 5.4 s of a 16.8 s H100 run waited for data while
    the workers were 39 % busy. ``bench/loader.py`` replays that run's costs both ways. Shards are keyed
    by content id and the splits assembled in plan order, so the cache is the same either way.

    forkserver, not fork (see worker_context): a forked worker can deadlock on its first cv2 call."""
    loader = DataLoader(
        source,
        batch_size=1,
        num_workers=workers,
        collate_fn=collate_items,
        worker_init_fn=worker_init if workers else None,
        multiprocessing_context=worker_context() if workers else None,
        pin_memory=pin_memory,
        in_order=in_order or not workers,
        prefetch_factor=prefetch if workers else None,
    )
    return SequenceBatches(loader, max(1, batch_size))
