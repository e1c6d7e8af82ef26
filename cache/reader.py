"""Reading a cache: cheap integrity checks up front, then a torch Dataset over one split file.

The Dataset never keeps an HDF5 handle in the parent process: an h5py handle inherited
through fork is shared, unsafe state. Each DataLoader worker opens its own read-only
handle on first use (``locking=False``: readers need no file locks, and NFS often has
none). Items are read one index at a time; fancy indexing over one-sequence chunks is
about 8x slower (DESIGN §5).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from cache.chunks import direct_reader
from cache.manifest import MANIFEST_NAME, SPLITS, read_manifest, unfinished, without_manifest
from cache.schema import SCHEMA_VERSION, Dims, decode_id, field_specs, foreign_storage, read_attrs
from cache.watchdog import watch_open
from core.errors import CacheError, one_line
from core.ranks import cores_per_rank


def _hint(cache_dir: Path) -> str:
    return f"run `pipeline.py cache verify {cache_dir}` or re-extract with `pipeline.py extract`"


def attr_text(h5: h5py.File, name: str) -> str | None:
    """A string root attribute (stored as JSON text by schema.write_attrs); None when absent."""
    value = h5.attrs.get(name)
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError:
        return text
    return decoded if isinstance(decoded, str) else text


@dataclass(frozen=True)
class CacheInfo:
    """A cache key directory that passed the cheap checks."""

    dir: Path
    key: str
    manifest: dict[str, Any]
    splits: dict[str, Path]  # split name -> split file
    class_names: list[str]
    dims: Dims

    @property
    def counts(self) -> dict[str, int]:
        return {s: int(e.get("count", 0)) for s, e in self.manifest["splits"].items()}


def _lengths(h5: h5py.File) -> dict[str, int | None]:
    """N of every per-sequence dataset present (None for a member that is not a dataset)."""
    return {
        name: (obj.shape[0] if isinstance(obj, h5py.Dataset) and obj.shape else None)
        for name in ("labels", "sequence_ids", "content_ids", "valid", "embeddings")
        if (obj := h5.get(name)) is not None
    }


def _check_split_file(path: Path, key: str, count: Any, hint: str) -> None:
    """Cheap checks only (metadata, no chunk is decoded): exists, opens, right key, self-contained, N."""
    if not path.is_file():
        raise CacheError(f"{path}: split file missing; {hint}")
    if path.stat().st_size == 0:
        raise CacheError(f"{path}: split file is empty (0 bytes); {hint}")
    watch_open(path)  # a file from another process: its metadata is walked in a killable helper first
    try:
        with h5py.File(path, "r", locking=False) as h5:
            file_key = attr_text(h5, "key")
            foreign = foreign_storage(h5)
            lengths = _lengths(h5)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:  # h5py on damaged files
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CacheError(f"{path}: cannot open as HDF5 ({reason}); {hint}") from exc
    if file_key != key:
        raise CacheError(f"{path}: belongs to cache key {file_key}, but the manifest says {key}; {hint}")
    if foreign:
        raise CacheError(f"{path}: {foreign[0]}; caches must hold all their data, re-extract it")
    if "labels" not in lengths:
        raise CacheError(f"{path}: labels: dataset missing; {hint}")
    if len(set(lengths.values())) > 1:
        raise CacheError(f"{path}: datasets disagree on the number of sequences {lengths}; {hint}")
    if lengths["labels"] != count:
        raise CacheError(
            f"{path}: holds {lengths['labels']} sequences, but {MANIFEST_NAME} says {count!r}; {hint}"
        )


def open_cache(cache_dir: Path) -> CacheInfo:
    """Open a cache key directory (the one `extract` printed), refusing anything unusable with one line."""
    d = Path(cache_dir)
    hint = _hint(d)
    mpath = d / MANIFEST_NAME
    if not d.is_dir():
        raise CacheError(f"{d}: cache directory not found; pass the directory `pipeline.py extract` printed")
    manifest = read_manifest(d)
    if manifest is None:
        raise CacheError(without_manifest(d))
    if (reason := unfinished(d, manifest)) is not None:
        raise CacheError(reason)
    version = manifest.get("schema_version")
    if not isinstance(version, int):
        raise CacheError(f"{mpath}: no valid schema_version; {hint}")
    if version > SCHEMA_VERSION:
        raise CacheError(
            f"{mpath}: written by a newer toolkit (schema v{version}; this one reads up to "
            f"v{SCHEMA_VERSION}); upgrade the toolkit"
        )
    if version < SCHEMA_VERSION:
        raise CacheError(
            f"{mpath}: written by an older toolkit (schema v{version}, this one reads v{SCHEMA_VERSION}); "
            "re-run `pipeline.py extract` to rebuild it"
        )
    try:
        key = str(manifest["key"])
        dims = Dims.from_json(manifest["dims"])
        class_names = [str(c) for c in manifest["class_names"]]
        entries = {s: manifest["splits"][s] for s in SPLITS}
        files = {s: str(e["file"]) for s, e in entries.items()}
        counts = {s: e.get("count") for s, e in entries.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CacheError(f"{mpath}: missing or malformed field {one_line(exc)}; {hint}") from exc
    splits = {}
    for split, name in files.items():
        if Path(name).name != name:  # a manifest must not point outside its directory
            raise CacheError(f"{mpath}: split file name {name!r} is not a plain file name; {hint}")
        splits[split] = d / name
        _check_split_file(splits[split], key, counts[split], hint)
    return CacheInfo(d, key, manifest, splits, class_names, dims)


def default_inflate_threads() -> int:
    """Threads that inflate a streamed batch's chunks: half the cores this rank may use, 1 to 4.

    The other half is left to the training step's own threads. On 2 cores that is 1, today's single
    reader thread; bench/train.py --inflate-threads measures other counts."""
    return max(1, min(4, cores_per_rank() // 2))


def _readable(ds: h5py.Dataset, i: int) -> bool:
    try:
        ds[i]
    except (OSError, RuntimeError):
        return False
    return True


class CacheDataset(Dataset):
    """One split file as a torch Dataset.

    ``__getitem__(i)`` -> the requested ``streams`` (floats as float32, integer fields as
    int64 tensors, e.g. "embeddings" (T, 12, D)), plus "valid" (T,) bool and "label" int64.
    ``preload=True`` reads the streams once into memory (stored dtype), for small caches.
    Streamed, a DataLoader's batch (``__getitems__``) is read by ``inflate_threads`` threads at once
    (None: ``default_inflate_threads()``): ISA-L inflate and the unshuffle copies release the GIL, so
    they run on cores the training step leaves free. Items and their order are the same for any count.
    """

    def __init__(
        self,
        path: Path,
        streams: tuple[str, ...] = ("embeddings",),
        preload: bool = False,
        inflate_threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.streams = tuple(streams)
        self.inflate_threads = inflate_threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._h5: h5py.File | None = None
        self._readers: dict[str, Callable[[int], np.ndarray]] = {}
        self._pid: int | None = None
        unknown: list[str] = []
        watch_open(self.path)  # a no-op when open_cache has walked this file already
        try:
            with h5py.File(self.path, "r", locking=False) as h5:  # closed again before any worker forks
                self.attrs = read_attrs(h5)
                self.dims = Dims.from_json(self.attrs["dims"])
                specs = field_specs(self.dims)
                allowed = [name for name, (shape, _) in specs.items() if shape and name != "valid"]
                unknown = [s for s in self.streams if s not in allowed]
                self.class_names: list[str] = list(self.attrs["class_names"])
                self.labels: np.ndarray = h5["labels"][...].astype(np.int64)  # (N,)
                self.sequence_ids: list[str] = [decode_id(raw) for raw in h5["sequence_ids"][...]]
                self._valid = h5["valid"][...].astype(bool)  # (N, T): tiny, kept in memory
                self._floating = {
                    s: np.issubdtype(specs[s][1], np.floating) for s in self.streams if s in specs
                }
                self._preloaded = None
                if preload and not unknown:
                    self._preloaded = {s: self._read_whole(h5, s) for s in self.streams}
        except CacheError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CacheError(
                f"{self.path}: unreadable split file ({reason}); {_hint(self.path.parent)}"
            ) from exc
        if unknown:
            raise ValueError(f"unknown stream(s) {unknown}; valid: {allowed}")
        # Labels index the model's output: one out of range would crash training, or worse, be learned.
        bad = np.flatnonzero((self.labels < 0) | (self.labels >= len(self.class_names)))
        if bad.size:
            raise CacheError(
                f"{self.path}: labels: value outside 0..{len(self.class_names) - 1} at sequence(s) "
                f"{bad[:5].tolist()}; {_hint(self.path.parent)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def _read_whole(self, h5: h5py.File, name: str) -> torch.Tensor:
        """One stream decoded into memory; a damaged chunk is named by dataset and sequence."""
        ds = h5[name]
        try:
            return torch.from_numpy(ds[...])
        except (OSError, RuntimeError) as exc:
            bad = next(i for i in range(len(ds)) if not _readable(ds, i))
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CacheError(
                f"{self.path}: cannot read {name}[{bad}] ({reason}); {_hint(self.path.parent)}"
            ) from exc

    def _reader(self, name: str) -> Callable[[int], np.ndarray]:
        """``read(i) -> stream[i]``; ISA-L inflate where the chunk layout allows (cache/chunks.py)."""
        if self._h5 is None or self._pid != os.getpid():  # first use in this process (worker)
            self._h5 = h5py.File(self.path, "r", locking=False)
            datasets = {s: self._h5[s] for s in self.streams}
            self._readers = {s: direct_reader(ds) or ds.__getitem__ for s, ds in datasets.items()}
            self._pid = os.getpid()
        return self._readers[name]

    def _read(self, name: str, i: int) -> torch.Tensor:
        if self._preloaded is not None:
            return self._preloaded[name][i]
        try:
            return torch.from_numpy(self._reader(name)(i))
        except (OSError, RuntimeError) as exc:  # a damaged chunk
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CacheError(
                f"{self.path}: cannot read {name}[{i}] ({reason}); {_hint(self.path.parent)}"
            ) from exc

    def _index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} sequences")
        return int(index) % n

    def _item(self, i: int, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {name: v.float() if self._floating[name] else v.long() for name, v in values.items()}
        out["valid"] = torch.from_numpy(self._valid[i].copy())  # (T,) bool
        out["label"] = torch.tensor(self.labels[i], dtype=torch.int64)
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i = self._index(index)
        return self._item(i, {name: self._read(name, i) for name in self.streams})

    def _threads(self) -> int:
        if self._preloaded is not None or get_worker_info() is not None:  # worker processes: one each
            return 1
        return max(1, self.inflate_threads or default_inflate_threads())

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """A DataLoader batch: every (sequence, stream) chunk of it read by the thread pool, in order."""
        threads = self._threads()
        if threads == 1 or len(indices) * len(self.streams) < 2:
            return [self[i] for i in indices]
        rows = [self._index(i) for i in indices]
        self._reader(self.streams[0])  # open the file here, once, before the threads share it
        if self._pool is None or self._pool_size != threads:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="chunk-inflate")
            self._pool_size = threads
        jobs = [(name, i) for i in rows for name in self.streams]
        values = iter(self._pool.map(lambda job: self._read(*job), jobs))  # in job order
        return [self._item(i, {name: next(values) for name in self.streams}) for i in rows]

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
        if self._pool is not None:
            self._pool.shutdown()
        self._h5, self._readers, self._pid, self._pool = None, {}, None, None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the path, never the open handle or the threads: each worker opens its own."""
        state = self.__dict__.copy()
        state.update(_h5=None, _readers={}, _pid=None, _pool=None)
        return state
