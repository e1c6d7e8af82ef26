"""Split files from stored shards by copying compressed chunks, never recompressing.

Every per-sequence field is stored in one-sequence chunks with identical filters in shards
and split files, so a sequence moves from a shard to a split file as raw compressed bytes
(``read_direct_chunk`` -> ``write_direct_chunk``). That makes re-splitting (new ratios,
folds, ten added videos) cost file I/O only. Small per-sequence fields are copied by value
because labels must be remapped by class name into the split's class list.

Crash safety: the manifest is marked incomplete first, each split file is written to
``<split>.h5.tmp`` and renamed, and the complete manifest is published last.
Callers must hold ``CacheLock(key_dir)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from cache.chunks import chunk_layout_fault
from cache.diskfull import RESUME_ADVICE, disk_full_error
from cache.guarded import h5_writer
from cache.key import canonical_json
from cache.manifest import (
    SPLITS,
    build_manifest,
    mark_incomplete,
    now_iso,
    read_manifest,
    write_manifest,
)
from cache.schema import (
    SCALAR_FIELDS,
    SCHEMA_VERSION,
    Dims,
    create_datasets,
    field_specs,
    read_attrs,
    video_of,
    write_attrs,
)
from cache.shards import ShardRef, ShardStore
from cache.watchdog import MetadataHangError, watch_open
from core.atomic import publish
from core.errors import CacheError

# The manifest fields that decide what the split files' bytes and labels mean. Config, versions and
# creation time may differ between runs that want the same splits: those runs change nothing.
_STABLE_META = ("schema_version", "key", "dims", "channel_layout", "class_names")


def _filters(ds: h5py.Dataset) -> tuple[Any, ...]:
    return (
        ds.chunks,
        ds.dtype,
        ds.compression,
        ds.compression_opts,
        ds.shuffle,
        ds.fletcher32,
        ds.scaleoffset,
    )


class _SourceShard:
    """One open shard: its small fields in memory and a label map into the split's class list."""

    def __init__(self, path: Path, class_names: list[str]) -> None:
        self.path = path
        self.h5 = h5py.File(path, "r", locking=False)
        shard_classes = read_attrs(self.h5).get("class_names", [])
        position = {name: i for i, name in enumerate(class_names)}
        self.remap = np.array([position.get(name, -1) for name in shard_classes], dtype=np.int64)
        self.shard_classes = shard_classes
        try:
            self.small = {name: self._whole(name) for name in SCALAR_FIELDS}
        except BaseException:
            self.h5.close()
            raise
        self.chunked: dict[str, h5py.Dataset] = {}  # per-sequence fields, looked up once
        self.same_storage: dict[str, bool] = {}  # field -> chunks and filters equal the split file's

    def _whole(self, name: str) -> np.ndarray:
        """A one-value field, read once its chunk index is known whole (an empty chunk crashes libhdf5)."""
        ds = self.h5[name]
        if (fault := chunk_layout_fault(ds)) is not None:
            raise _damaged(self.path, f"{name}: {fault}")
        return ds[...]

    def dataset(self, name: str, like: tuple[Any, ...]) -> tuple[h5py.Dataset, bool]:
        """The shard's dataset and whether its raw chunks can be copied into storage ``like``."""
        if name not in self.chunked:
            ds = self.h5[name]
            if ds.shape[1:] != like[0][1:]:  # like[0]: the split's chunk, one sequence of the field
                raise _damaged(self.path, f"{name}: rows of shape {ds.shape[1:]}, expected {like[0][1:]}")
            if (fault := chunk_layout_fault(ds)) is not None:
                raise _damaged(self.path, f"{name}: {fault}")
            try:
                settings = _filters(ds)
            except Exception as exc:  # noqa: BLE001 - h5py parsing damaged filter parameters (IndexError...)
                raise _damaged(self.path, f"{name} (its storage settings)", exc) from None
            self.chunked[name] = ds
            self.same_storage[name] = settings == like
        return self.chunked[name], self.same_storage[name]

    def label(self, row: int) -> int:
        old = int(self.small["labels"][row])
        if not 0 <= old < len(self.remap):  # outside the shard's own class list: the label is damaged
            raise _damaged(self.path, f"labels[{row}] (value {old})")
        new = int(self.remap[old])
        if new < 0:
            # The shard's own class list names a class this cache does not have: its metadata is damaged.
            raise _damaged(
                self.path, f"the class of labels[{row}] ({self.shard_classes[old]!r} is not a class)"
            )
        return new


class _ShardPool:
    """Opens each shard once for the whole assembly."""

    def __init__(self, class_names: list[str]) -> None:
        self.class_names = class_names
        self.open: dict[Path, _SourceShard] = {}

    def __getitem__(self, path: Path) -> _SourceShard:
        if path not in self.open:
            try:
                self.open[path] = _SourceShard(path, self.class_names)
            except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:  # damaged after index()
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise CacheError(
                    f"{path}: unreadable shard ({reason}); delete it and re-run the same extract "
                    "command to recompute its sequences"
                ) from exc
        return self.open[path]

    def close(self) -> None:
        for shard in self.open.values():
            shard.h5.close()
        self.open.clear()


def _damaged(path: Path | str, what: str, exc: BaseException | None = None) -> CacheError:
    """A shard that index() could read but whose sequences cannot be copied: one line, and the way out."""
    reason = f" ({' '.join(str(exc).split()) or type(exc).__name__})" if exc is not None else ""
    return CacheError(
        f"{path}: damaged shard, cannot read {what}{reason}; delete it and re-run the same extract "
        "command to recompute its sequences"
    )


def _copy_chunk(src: h5py.Dataset, dst: h5py.Dataset, src_row: int, dst_row: int) -> bool:
    """Move one sequence's compressed chunk as raw bytes; False when the source chunk was never written."""
    tail = (0,) * (src.ndim - 1)
    try:
        mask, data = src.id.read_direct_chunk((src_row, *tail))
    except RuntimeError:  # unallocated chunk: the destination reads the same fill value
        return False
    except OSError as exc:  # a chunk address or size past the end of a damaged shard
        raise _damaged(src.file.filename, f"{src.name}[{src_row}]", exc) from None
    if not data:  # a chunk index entry of size 0: nothing a writer of this toolkit leaves
        raise _damaged(src.file.filename, f"{src.name}[{src_row}] (empty chunk)")
    dst.id.write_direct_chunk((dst_row, *tail), data, mask)
    return True


def _complete_meta(key_dir: Path, meta: dict[str, Any], class_names: list[str]) -> dict[str, Any]:
    if "dims" not in meta:
        raise ValueError("assemble meta needs dims (Dims.to_json())")
    dims = meta["dims"].to_json() if isinstance(meta["dims"], Dims) else meta["dims"]
    full = {
        "schema_version": SCHEMA_VERSION,
        "key": key_dir.name,
        "channel_layout": [],
        "created": now_iso(),
        **meta,
        "dims": dims,
        "class_names": list(class_names),
    }
    return json.loads(canonical_json(full))  # plain JSON types, so it compares equal to a re-read manifest


def _stable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta.get(k) for k in _STABLE_META}


def _up_to_date(key_dir: Path, members: dict[str, list[str]], meta: dict[str, Any]) -> bool:
    """True when the manifest is complete and every split file already holds exactly ``members``."""
    try:
        manifest = read_manifest(key_dir)
    except CacheError:  # unreadable or edited into invalid JSON: rebuild it from the shards
        return False
    if not manifest or manifest.get("complete") is not True or _stable(manifest) != _stable(meta):
        return False
    for split in SPLITS:
        path = key_dir / f"{split}.h5"
        entry = manifest.get("splits", {}).get(split, {})
        if entry.get("count") != len(members[split]) or not path.is_file():
            return False
        try:
            watch_open(path)
            with h5py.File(path, "r", locking=False) as h5:
                held = [raw.decode("ascii") for raw in h5["content_ids"][...]]
        except (OSError, KeyError, MetadataHangError):
            return False
        if held != members[split]:
            return False
    return True


def _check_members(
    key_dir: Path, members: dict[str, list[str]], index: dict[str, ShardRef], pool: _ShardPool
) -> dict[str, list[str]]:
    """Resolve content ids to sequence ids; refuse missing sequences and videos in two splits."""
    seen: dict[str, str] = {}
    sequence_ids: dict[str, list[str]] = {}
    for split in SPLITS:
        missing = [cid for cid in members[split] if cid not in index]
        if missing:
            raise CacheError(
                f"{key_dir}: {len(missing)} requested sequences are not stored (first: {missing[0]}); "
                "re-run `pipeline.py extract`"
            )
        ids = []
        for cid in members[split]:
            ref = index[cid]
            try:
                sid = pool[ref.path].small["sequence_ids"][ref.row].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _damaged(ref.path, f"sequence_ids[{ref.row}]", exc) from None
            video = video_of(sid)
            if seen.setdefault(video, split) != split:
                raise ValueError(
                    f"video {video} is in both {seen[video]} and {split}; splits must be video-level"
                )
            ids.append(sid)
        sequence_ids[split] = ids
    return sequence_ids


def _write_split(
    path: Path,
    content_ids: list[str],
    index: dict[str, ShardRef],
    pool: _ShardPool,
    dims: Dims,
    attrs: dict[str, Any],
    progress: tqdm,
    trusted: Collection[Path] = (),
) -> dict[str, int]:
    counts = {"chunks_copied": 0, "recompressed": 0}
    specs = field_specs(dims)
    chunked = [name for name, (shape, _) in specs.items() if shape]
    tmp = path.with_name(path.name + ".tmp")
    n = len(content_ids)
    try:
        with h5_writer(tmp) as (out, guard):
            write_attrs(out, attrs)
            dst = create_datasets(out, n, dims)
            # Chunk shape and filters must match for a raw chunk copy.
            like = {name: _filters(dst[name]) for name in chunked}
            small = {name: np.zeros((n,), specs[name][1]) for name in SCALAR_FIELDS}
            for i, cid in enumerate(content_ids):
                ref = index[cid]
                src = pool[ref.path]
                for name in chunked:
                    try:
                        s, same = src.dataset(name, like[name])
                        # other settings: decode, re-encode; an earlier run's chunk: decode to check it
                        value = None if same and ref.path in trusted else s[ref.row]
                    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
                        raise _damaged(ref.path, f"{name}[{ref.row}]", exc) from None
                    if same:
                        counts["chunks_copied"] += _copy_chunk(s, dst[name], ref.row, i)
                    else:
                        dst[name][i] = value
                        counts["recompressed"] += 1
                small["labels"][i] = src.label(ref.row)
                for name in ("sequence_ids", "content_ids", "aug_index"):
                    small[name][i] = src.small[name][ref.row]
                progress.update(1)
                if guard.error is not None:  # disk full: stop; h5_writer raises it after closing
                    break
            for name, arr in small.items():
                dst[name][...] = arr
        publish(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = disk_full_error(tmp, exc, RESUME_ADVICE)
        if full is not None:
            raise full from None
        raise
    return counts


def assemble_splits(
    key_dir: Path,
    members: dict[str, list[str]],
    class_names: list[str],
    meta: dict[str, Any],
    trusted: Collection[Path] = (),
) -> dict[str, Any]:
    """Write train.h5/val.h5/test.h5 holding ``members[split]`` (content ids, in order), then the manifest.

    Chunks move as raw compressed bytes; those of shards other than ``trusted`` (the ones this extraction
    job just wrote, on every rank) are decoded once first, so a shard damaged since an earlier run is
    named, not copied into a cache marked complete.

    Returns ``{"unchanged": bool, "counts": {split: N}, "chunks_copied": int, "recompressed": int,
    "seconds": float}``; ``unchanged`` is True when the complete cache already held exactly this.
    """
    t0 = time.perf_counter()
    key_dir = Path(key_dir)
    unknown = set(members) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; expected {list(SPLITS)}")
    members = {s: [str(c) for c in members.get(s, [])] for s in SPLITS}
    all_ids = [cid for s in SPLITS for cid in members[s]]
    if len(set(all_ids)) != len(all_ids):
        raise ValueError("a content id is listed twice across the splits")
    meta = _complete_meta(key_dir, meta, class_names)
    counts = {s: len(members[s]) for s in SPLITS}
    if _up_to_date(key_dir, members, meta):
        seconds = time.perf_counter() - t0
        return {
            "unchanged": True,
            "counts": counts,
            "chunks_copied": 0,
            "recompressed": 0,
            "seconds": seconds,
        }

    index = ShardStore(key_dir).index()
    dims = Dims.from_json(meta["dims"])
    pool = _ShardPool(list(class_names))
    totals = {"chunks_copied": 0, "recompressed": 0}
    try:
        sequence_ids = _check_members(key_dir, members, index, pool)
        mark_incomplete(key_dir)  # from here on a crash leaves a cache that says it is incomplete
        for stale in key_dir.glob("*.h5.tmp"):
            stale.unlink()
        with tqdm(total=len(all_ids), desc="assemble splits", unit="seq", disable=None) as progress:
            for split in SPLITS:
                path = key_dir / f"{split}.h5"
                attrs = {**meta, "split": split}
                got = _write_split(path, members[split], index, pool, dims, attrs, progress, trusted)
                for k in totals:
                    totals[k] += got[k]
        splits = {s: {"file": f"{s}.h5", "count": counts[s], "sequence_ids": sequence_ids[s]} for s in SPLITS}
        write_manifest(key_dir, build_manifest(meta, class_names, splits, complete=True))
    except (OSError, RuntimeError) as exc:  # the manifest writes; split files map their own errors
        full = disk_full_error(None, exc, RESUME_ADVICE)
        if full is not None:
            raise full from None
        raise
    finally:
        pool.close()
    return {"unchanged": False, "counts": counts, **totals, "seconds": time.perf_counter() - t0}
