"""Shards: small HDF5 files of finished sequences, the unit of crash-safe progress.

An HDF5 file killed mid-write is often unopenable, so every shard is written to
``shards/<name>.h5.tmp``, closed, fsynced and only then renamed to ``<name>.h5``. A shard
that exists under its final name is therefore complete, and resume simply skips every
content id the complete shards hold (DESIGN §5).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from cache.chunks import chunk_layout_fault
from cache.diskfull import RESUME_ADVICE, disk_full_error
from cache.guarded import h5_writer
from cache.key import canonical_json
from cache.manifest import now_iso
from cache.schema import (
    SCALAR_FIELDS,
    SCHEMA_VERSION,
    SHARD_DIR,
    Dims,
    create_datasets,
    encode_id,
    field_specs,
    foreign_storage,
    write_attrs,
)
from cache.watchdog import MetadataHangError, watch_open
from core.atomic import publish

_CONTENT_ID = re.compile(r"[0-9a-f]{64}")

_COUNTER = itertools.count()
_TMP_NAME = re.compile(r"^shard-\d+-(?P<host>.+)-(?P<pid>\d+)-\d+\.h5\.tmp$")
_FOREIGN_TMP_MAX_AGE_S = 24 * 3600  # a tmp from another host is stale once this old


class ShardRef(NamedTuple):
    """Where one stored sequence lives: a complete shard file and its row in it."""

    path: Path
    row: int


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmp_is_stale(path: Path) -> bool:
    """A tmp is stale when its writer is gone; only a live writer's tmp may be in progress."""
    m = _TMP_NAME.match(path.name)
    if m is None:
        return True
    if m["host"] == _host_tag():
        return not _pid_alive(int(m["pid"]))
    try:
        return time.time() - path.stat().st_mtime > _FOREIGN_TMP_MAX_AGE_S
    except FileNotFoundError:
        return False


def stack_records(records: list[dict[str, Any]], dims: Dims, num_classes: int) -> dict[str, np.ndarray]:
    """Check every record against the schema and stack each field to (N, ...) in its stored dtype."""
    specs = field_specs(dims)
    out: dict[str, np.ndarray] = {}
    for name, (shape, dtype) in specs.items():
        rows = []
        for i, rec in enumerate(records):
            if name not in rec:
                raise ValueError(f"shard record {i} has no field {name!r}")
            value = rec[name]
            if name == "sequence_ids":
                value = encode_id(str(value))
            elif name == "content_ids":
                value = str(value).encode("ascii")
                if len(value) > dtype.itemsize:
                    raise ValueError(f"content id longer than {dtype.itemsize} chars: {rec[name]!r}")
            arr = np.asarray(value)
            if arr.shape != shape:
                raise ValueError(f"shard record {i} field {name!r}: shape {arr.shape}, expected {shape}")
            rows.append(arr.astype(dtype, copy=False))
        out[name] = np.stack(rows).astype(dtype, copy=False) if rows else np.zeros((0, *shape), dtype)
    labels = out["labels"]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"shard labels must index class_names (0..{num_classes - 1}), got {labels.tolist()}")
    return out


class ShardStore:
    """The ``shards/`` folder of one cache key directory."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = Path(key_dir)
        self.dir = self.key_dir / SHARD_DIR
        self.unreadable: list[Path] = []  # complete-looking shards that failed to open, from index()

    def shard_paths(self) -> list[Path]:
        return sorted(self.dir.glob("*.h5")) if self.dir.is_dir() else []

    def clean_tmp(self) -> list[Path]:
        """Delete leftovers of writers that died mid-shard; return what was removed."""
        removed = []
        for tmp in sorted(self.dir.glob("*.tmp")) if self.dir.is_dir() else []:
            if _tmp_is_stale(tmp):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        return removed

    def index(self) -> dict[str, ShardRef]:
        """content id -> (shard, row) over every complete shard; the first shard wins a duplicate.

        Unreadable shards, and shards whose data would come from other files (external links,
        external storage, virtual datasets: nothing this toolkit writes), are skipped (their
        sequences get re-extracted) and listed in ``self.unreadable``.
        """
        self.clean_tmp()
        self.unreadable = []
        out: dict[str, ShardRef] = {}
        for path in self.shard_paths():
            try:
                watch_open(path)  # shards of earlier runs: a hanging one is skipped like a broken one
                with h5py.File(path, "r", locking=False) as h5:
                    foreign = foreign_storage(h5)
                    if foreign:
                        raise OSError(foreign[0])
                    for name in SCALAR_FIELDS:  # before any read: an empty chunk crashes libhdf5
                        if (fault := chunk_layout_fault(h5[name])) is not None:
                            raise ValueError(f"{name}: {fault}")
                    ids = h5["content_ids"][...]
                    lengths = {name: h5[name].shape for name in SCALAR_FIELDS}
                    if any(shape != ids.shape for shape in lengths.values()):  # a damaged extent
                        raise ValueError(f"per-sequence fields disagree on the number of rows: {lengths}")
            except (OSError, RuntimeError, KeyError, ValueError, TypeError, MetadataHangError) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                msg = f"{path}: unreadable shard skipped ({reason}); its sequences will be re-extracted"
                warnings.warn(msg, stacklevel=2)
                self.unreadable.append(path)
                continue
            names = [raw.decode("latin-1") for raw in ids]
            bad = next((n for n in names if not _CONTENT_ID.fullmatch(n)), None)
            if bad is not None:  # a damaged id would address some other sequence's bytes
                msg = f"{path}: unreadable shard skipped (content id {bad[:16]!r}... is not 64 hex chars)"
                warnings.warn(msg + "; its sequences will be re-extracted", stacklevel=2)
                self.unreadable.append(path)
                continue
            for row, name in enumerate(names):
                out.setdefault(name, ShardRef(path, row))
        return out

    def write_shard(self, records: list[dict[str, Any]], dims: Dims, meta: dict[str, Any]) -> Path:
        """Write records as one complete shard (tmp + fsync + rename); return its final path.

        ``meta`` must hold ``class_names``: shard labels index into the shard's own list.
        """
        if not records:
            raise ValueError("write_shard needs at least one record")
        if "class_names" not in meta:
            raise ValueError("shard meta needs class_names: shard labels index into them")
        arrays = stack_records(records, dims, len(meta["class_names"]))
        attrs = {
            "schema_version": SCHEMA_VERSION,
            "channel_layout": [],
            "created": now_iso(),
            **json.loads(canonical_json(meta)),
            "dims": dims.to_json(),
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        # time + host + pid + counter: unique across threads, processes and machines sharing the dir
        name = f"shard-{time.time_ns()}-{_host_tag()}-{os.getpid()}-{next(_COUNTER)}.h5"
        tmp, final = self.dir / f"{name}.tmp", self.dir / name
        try:
            with h5_writer(tmp) as (h5, _):
                write_attrs(h5, attrs)
                datasets = create_datasets(h5, len(records), dims)
                for field, arr in arrays.items():
                    datasets[field][...] = arr
            publish(tmp, final)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            full = disk_full_error(tmp, exc, RESUME_ADVICE)
            if full is not None:
                raise full from None
            raise
        return final
