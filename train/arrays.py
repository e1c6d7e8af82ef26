"""A cache decoded once into plain arrays that many trainings share: sweeps, folds and tune trials.

Inflating the gzip chunks is most of the cost of reading a cache (DESIGN §5), and a sweep would pay it
once per run and epoch. Here each split's streams are decoded once into ``.npy`` files, which every run,
in this process or in ``--parallel`` worker processes, maps read-only (``np.load(mmap_mode="r")``): the
pages are shared by all of them, never copied per run. The files go to ``/dev/shm`` (memory) when they fit
there with room to spare, else beside the runs on disk, where the OS streams them from the page cache each
epoch. ``SplitSource`` then hands ``run_train`` the datasets of one run: a split as stored, or any subset
of sequences (a fold), formed by index without touching the cache again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from cache.chunks import direct_reader
from cache.schema import decode_id
from core.errors import BadInputError, CacheError
from models.heads.model import input_fields
from train.derived import derive_arrays, stored_fields
from train.runtime import available_memory_bytes, open_manifest, split_count, split_path

SPLITS = ("train", "val", "test")
PREFIX = "gesture-decoded-"
SHM = Path("/dev/shm")


@dataclass
class DecodedCache:
    """The decoded ``fields`` of every non-empty split, as ``.npy`` files under ``dir``."""

    dir: Path
    cache: Path
    manifest: dict[str, Any]
    fields: tuple[str, ...]
    stored_bytes: int = 0  # compressed bytes read from the cache to make these arrays
    _arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _ids: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, directory: Path) -> DecodedCache:
        """Map an already decoded folder (what a worker process does): no cache file is opened."""
        meta = json.loads((Path(directory) / "decoded.json").read_text(encoding="utf-8"))
        return cls(Path(directory), Path(meta["cache"]), meta["manifest"], tuple(meta["fields"]))

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """name -> read-only memory map of one split: the fields, "labels" (N,) and "valid" (N, T)."""
        if split not in self._arrays:
            names = (*self.fields, "labels", "valid")
            self._arrays[split] = {n: np.load(self.dir / f"{split}.{n}.npy", mmap_mode="r") for n in names}
        return self._arrays[split]

    def ids(self, split: str) -> list[str]:
        """Sequence ids of one split, in stored order (as the split file holds them)."""
        if split not in self._ids:
            self._ids[split] = json.loads((self.dir / f"{split}.ids.json").read_text(encoding="utf-8"))
        return self._ids[split]

    def dataset(self, parts: list[tuple[str, np.ndarray]], fields: tuple[str, ...]) -> ArrayDataset:
        """Sequences ``index`` of each ``(split, index)`` part, in that order."""
        return ArrayDataset(
            [(self.arrays(split), np.asarray(index), self.ids(split)) for split, index in parts],
            fields,
            list(self.manifest["class_names"]),
        )

    def remove(self) -> None:
        self._arrays.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


class ArrayDataset(Dataset):
    """Chosen sequences of decoded arrays (of one or more splits), items exactly as ``CacheDataset``.

    ``__getitem__(k)`` -> the fields (float32, e.g. "embeddings" (T, 12, D)), "valid" (T,) bool, "label".
    """

    def __init__(
        self,
        parts: list[tuple[dict[str, np.ndarray], np.ndarray, list[str]]],  # (arrays, index, split's ids)
        fields: tuple[str, ...],
        class_names: list[str],
    ) -> None:
        self.fields, self.class_names = tuple(fields), class_names
        self._where = [(arrays, int(i)) for arrays, index, _ in parts for i in index]
        self.sequence_ids = [ids[i] for _, index, ids in parts for i in index]
        self.labels = np.array([int(a["labels"][i]) for a, i in self._where], dtype=np.int64)  # (n,)

    def __len__(self) -> int:
        return len(self._where)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        arrays, i = self._where[k]
        out = {}
        for name in self.fields:
            value = torch.from_numpy(np.array(arrays[name][i]))  # copy out of the shared map
            out[name] = value.float() if value.is_floating_point() else value.long()
        out["valid"] = torch.from_numpy(np.array(arrays["valid"][i], dtype=bool))  # (T,)
        out["label"] = torch.tensor(self.labels[k], dtype=torch.int64)
        return out


@dataclass
class SplitSource:
    """What ``run_train`` trains on instead of opening the cache: datasets by split, and the manifest
    whose split counts (and sequence lists) describe exactly those datasets."""

    decoded: DecodedCache
    members: dict[str, list[tuple[str, np.ndarray]]]  # run split -> [(stored split, indices into it)]

    @classmethod
    def as_stored(cls, decoded: DecodedCache) -> SplitSource:
        """The cache's own train/val/test splits."""
        counts = {s: split_count(decoded.manifest, s) for s in SPLITS}
        return cls(decoded, {s: [(s, np.arange(n))] for s, n in counts.items() if n})

    def count(self, split: str) -> int:
        return sum(len(index) for _, index in self.members.get(split, []))

    @property
    def manifest(self) -> dict[str, Any]:
        """The cache's manifest with split counts and sequence lists of these datasets."""
        splits = {}
        for split in SPLITS:
            ids = [self.decoded.ids(s)[i] for s, index in self.members.get(split, []) for i in index]
            entry = dict(self.decoded.manifest["splits"].get(split) or {"file": f"{split}.h5"})
            entry.update(count=len(ids), sequence_ids=ids)
            splits[split] = entry
        return {**self.decoded.manifest, "splits": splits}

    def dataset(self, split: str, fields: tuple[str, ...]) -> ArrayDataset | None:
        if not self.count(split):
            return None
        return self.decoded.dataset(self.members[split], fields)


def cache_fields(cache: Path, *streams: str) -> tuple[str, ...]:
    """The fields of ``cache`` that runs with these ``--streams`` read: decoded once for all of them."""
    try:
        return input_fields(open_manifest(cache), *streams)
    except ValueError as exc:
        raise BadInputError(f"{cache}: {exc}") from None


def decode_cache(
    cache: Path, fields: tuple[str, ...], near: Path, splits: tuple[str, ...] = SPLITS
) -> DecodedCache:
    """Decode ``fields`` of ``splits`` of ``cache`` once; the one read of the cache's chunks.

    ``near`` (the runs folder) holds the arrays when /dev/shm lacks room for them.
    """
    cache = Path(cache)
    manifest = open_manifest(cache)
    _remove_orphans(SHM)
    _remove_orphans(Path(near))
    splits = tuple(s for s in splits if split_count(manifest, s))
    stored = stored_fields(fields, manifest["dims"]["fields"])  # derived fields: from what they read
    need = _decoded_bytes(cache, manifest, stored, splits)
    Path(near).mkdir(parents=True, exist_ok=True)
    where = SHM if _fits_shm(need) else Path(near)
    if where != SHM:
        print(
            f"note: decoded cache ({need / 1e9:.1f} GB) does not fit in memory; mapping it from {near}",
            file=sys.stderr,
        )
    out = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=where))
    decoded = DecodedCache(out, cache, manifest, tuple(fields))
    try:
        for split in splits:
            decoded.stored_bytes += _decode_split(split_path(cache, manifest, split), split, stored, out)
            _write_derived(out, split, stored, fields)
        meta = {"cache": str(cache), "manifest": manifest, "fields": list(fields)}
        (out / "decoded.json").write_text(json.dumps(meta), encoding="utf-8")
    except BaseException:
        decoded.remove()
        raise
    return decoded


def _decode_split(path: Path, split: str, fields: tuple[str, ...], out: Path) -> int:
    """Write ``<split>.<name>.npy`` for the fields, labels and valid; return the stored bytes read."""
    stored = 0
    try:
        with h5py.File(path, "r", locking=False) as h5:
            for name in (*fields, "labels", "valid"):
                ds = h5[name]
                stored += ds.id.get_storage_size()
                target = np.lib.format.open_memmap(out / f"{split}.{name}.npy", "w+", ds.dtype, ds.shape)
                read = direct_reader(ds) if ds.ndim >= 2 else None
                if read is None:
                    target[...] = ds[...]
                else:
                    for i in range(ds.shape[0]):  # one chunk at a time (DESIGN §5)
                        target[i] = read(i)
                target.flush()
                del target
            ids = [decode_id(raw) for raw in h5["sequence_ids"][...]]
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CacheError(f"{path}: cannot decode ({reason}); run `pipeline.py cache verify`") from exc
    (out / f"{split}.ids.json").write_text(json.dumps(ids), encoding="utf-8")
    return stored


def _write_derived(out: Path, split: str, stored: tuple[str, ...], fields: tuple[str, ...]) -> None:
    """``<split>.<name>.npy`` of each derived field, computed once per sequence from the decoded arrays."""
    arrays = {n: np.load(out / f"{split}.{n}.npy", mmap_mode="r") for n in (*stored, "valid")}
    for name, value in derive_arrays(arrays, fields).items():
        np.save(out / f"{split}.{name}.npy", value)


def _decoded_bytes(
    cache: Path, manifest: dict[str, Any], fields: tuple[str, ...], splits: tuple[str, ...]
) -> int:
    total = 0
    for split in splits:
        with h5py.File(split_path(cache, manifest, split), "r", locking=False) as h5:
            total += sum(h5[n].size * h5[n].dtype.itemsize for n in (*fields, "labels", "valid"))
    return total


def _fits_shm(need: int) -> bool:
    """Room in /dev/shm and in free memory (its pages are RAM) for the arrays, with half to spare."""
    if not SHM.is_dir() or not os.access(SHM, os.W_OK):
        return False
    free = available_memory_bytes()
    return shutil.disk_usage(SHM).free > 1.5 * need and (free is None or free > 2 * need)


def _remove_orphans(where: Path) -> None:
    """Arrays left by a killed sweep (its process is gone) would fill /dev/shm: remove them."""
    if not where.is_dir():
        return
    for d in where.glob(f"{PREFIX}*"):
        try:
            pid = int(d.name[len(PREFIX) :].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, PermissionError):
            continue
