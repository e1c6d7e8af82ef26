"""`cache ls` and `cache info`: what is in a cache directory, readable without opening HDF5 by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cache.manifest import MANIFEST_NAME, SPLITS, dataset_format, read_manifest, unfinished, without_manifest
from cache.schema import SHARD_DIR, Dims, field_specs
from cache.subjects import subject_lines
from cache.watchdog import watch_open
from core.errors import CacheError

# What a manifest field of the wrong kind raises when read (a hand edit: "encoders": 5, "dims" deleted).
_DAMAGED = (AttributeError, KeyError, TypeError, ValueError)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _encoder_names(manifest: dict[str, Any]) -> str:
    encoders = manifest.get("encoders") or {}
    names = [e.get("name", "?") if isinstance(e, dict) else str(e) for e in encoders.values()]
    return ",".join(names) or "-"


def _counts(manifest: dict[str, Any]) -> str:
    splits = manifest.get("splits") or {}
    return " ".join(f"{s}={splits.get(s, {}).get('count', '-')}" for s in SPLITS)


def missing_splits(d: Path, manifest: dict[str, Any]) -> list[str]:
    """Split files the manifest lists that are not in the key directory (deleted, or a name outside it, as
    verify reads it). A complete manifest without them is no usable cache: train refuses it."""
    splits = manifest.get("splits") or {}
    names = [str(splits.get(s, {}).get("file", f"{s}.h5")) for s in SPLITS]
    return [name for name in names if Path(name).name != name or not (d / name).is_file()]


def _state(d: Path, manifest: dict[str, Any]) -> str:
    """complete, or why not: a split file gone from a complete cache is no cache training can read."""
    if manifest.get("complete") is not True:
        return "INCOMPLETE"
    missing = missing_splits(d, manifest)
    return f"INCOMPLETE: split files missing ({', '.join(missing)})" if missing else "complete"


def _identity(enc: Any) -> str:
    """One encoder's identity: model, and the pinned revision and weight digests of real weights."""
    if not isinstance(enc, dict):
        return str(enc)
    text = f"{enc.get('name', '?')}  weights={enc.get('weights', '?')}"
    if enc.get("weights") == "pretrained":
        where = enc.get("repo") or enc.get("url")
        digests = " ".join(f"{name}@sha256:{d[:16]}" for name, d in sorted((enc.get("sha256") or {}).items()))
        text += f"  {where}  revision={enc.get('revision') or '-'}  {digests}"
    return text


def _dataset(manifest: dict[str, Any]) -> str:
    """The dataset the split files hold, and the format it was read as: ``/corpora/ipn (ipn)``."""
    data = (manifest.get("config") or {}).get("data")
    return f"{data} ({dataset_format(manifest)})" if data else "-"


def cache_ls(cache_dir: Path) -> str:
    """One line per key directory: key, complete?, counts per split, the dataset its split files hold (two
    corpora extracted alike share a key directory), size, created, encoder names."""
    root = Path(cache_dir)
    if not root.is_dir():
        raise CacheError(
            f"{root}: no cache directory here; pass the --cache-dir that extract wrote to, or run extract"
        )
    is_key = (root / MANIFEST_NAME).is_file() or (root / SHARD_DIR).is_dir()  # one cache, not a root
    rows = []
    for d in [root] if is_key else sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            manifest = read_manifest(d)
        except CacheError:
            rows.append([d.name, "UNREADABLE manifest", "", "", _human(_disk_size(d)), "", ""])
            continue
        if manifest is None:
            if (d / SHARD_DIR).is_dir():
                shards = len(list((d / SHARD_DIR).glob("*.h5")))
                rows.append(
                    [d.name, "INCOMPLETE", f"{shards} shards, no splits", "", _human(_disk_size(d)), "", ""]
                )
            continue
        created = str(manifest.get("created", "-"))
        size = _human(_disk_size(d))
        try:  # one hand-edited manifest must not hide every other cache of the root
            state = _state(d, manifest)
            described = [_counts(manifest), _dataset(manifest), size, created, _encoder_names(manifest)]
        except _DAMAGED:
            described = ["", "", size, "", ""]
            state = "DAMAGED manifest"
        rows.append([d.name, state, *described])
    if not rows:
        return f"no caches in {root}"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _split_stats(path: Path, dims: Dims, num_classes: int) -> tuple[np.ndarray, int, int]:
    """Per-class counts, raw float32 bytes of the float fields, and their stored (compressed) bytes."""
    raw = stored = 0
    watch_open(path)
    with h5py.File(path, "r", locking=False) as h5:
        per_class = np.bincount(h5["labels"][...], minlength=num_classes)[:num_classes]
        for name, (shape, dtype) in field_specs(dims).items():
            if np.issubdtype(dtype, np.floating) and name in h5:
                ds = h5[name]
                raw += ds.shape[0] * int(np.prod(shape)) * 4
                stored += ds.id.get_storage_size()
    return per_class, raw, stored


def cache_info(key_dir: Path) -> str:
    """Config, encoders, channel layout, counts per split and class, size on disk, compression ratio."""
    d = Path(key_dir)
    manifest = read_manifest(d) if d.is_dir() else None
    if manifest is None:
        raise CacheError(without_manifest(d))
    if "dims" not in manifest and unfinished(d, manifest):  # stopped before its split files were assembled
        raise CacheError(unfinished(d, manifest))
    try:
        return _info(d, manifest)
    except _DAMAGED as exc:
        raise CacheError(
            f"{d / MANIFEST_NAME}: damaged ({type(exc).__name__}: {exc}); "
            "re-run the same extract to rebuild it"
        ) from None


def _complete(d: Path, manifest: dict[str, Any]) -> str:
    if manifest.get("complete") is not True:
        return "NO (re-run extract)"
    if missing := missing_splits(d, manifest):
        return f"NO (split files missing: {', '.join(missing)}; re-run the same extract to re-assemble them)"
    return "yes"


def _info(d: Path, manifest: dict[str, Any]) -> str:
    classes = [str(c) for c in manifest.get("class_names", [])]
    dims = Dims.from_json(manifest["dims"])
    out = [
        f"key:        {manifest.get('key')}",
        f"directory:  {d}",
        f"complete:   {_complete(d, manifest)}",
        f"schema:     v{manifest.get('schema_version')}",
        f"created:    {manifest.get('created', '-')}",
        f"dataset:    {_dataset(manifest)}",
        f"frames:     T={dims.frames}, float dtype {dims.float_dtype}",
        "streams:",
    ]
    encoders = sorted((manifest.get("encoders") or {}).items())
    width = max([8, *(len(name) for name in [*dims.streams, *(role for role, _ in encoders)])])  # one column
    for stream in dims.streams:
        fields = ", ".join(
            f"{f.name} {tuple(f.shape)} {dims.dtype(f).name}" for f in dims.fields if f.stream == stream
        )
        out.append(f"  {stream:{width}s} {fields}")
    out.append("encoders:")
    for role, enc in encoders:
        out.append(f"  {role:{width}s} {_identity(enc)}")
    layout = manifest.get("channel_layout") or []
    out.append("channel layout: " + ", ".join(f"{i} {name}" for i, name in enumerate(layout)))
    out.append("config:")
    for k, v in sorted((manifest.get("config") or {}).items()):
        read_as = f"  (read as {dataset_format(manifest)})" if k == "format" and v == "auto" else ""
        out.append(f"  {k}: {json.dumps(v, sort_keys=True)}{read_as}")
    out.append(f"sequences:  {_counts(manifest)}")
    out.extend(subject_lines(d))
    table = {}
    raw = stored = 0
    split_bytes = 0
    for split in SPLITS:
        name = str((manifest.get("splits") or {}).get(split, {}).get("file", f"{split}.h5"))
        if manifest.get("complete") is True and name in missing_splits(d, manifest):
            continue  # said on the complete: line
        path = d / name
        try:
            table[split], r, s = _split_stats(path, dims, len(classes))
        except (OSError, KeyError, ValueError, CacheError) as exc:
            out.append(f"  {path.name}: unreadable ({exc}); run `pipeline.py cache verify {d}`")
            continue
        raw, stored, split_bytes = raw + r, stored + s, split_bytes + path.stat().st_size
    if table:
        width = max([len(c) for c in classes] + [5])
        out.append("per class:  " + " " * width + "".join(f"{s:>8s}" for s in table))
        for i, name in enumerate(classes):
            out.append(f"  {name:{width + 10}s}" + "".join(f"{int(table[s][i]):8d}" for s in table))
    shard_bytes = _disk_size(d / SHARD_DIR) if (d / SHARD_DIR).is_dir() else 0
    total = _human(_disk_size(d))
    out.append(f"size:       {total} total ({_human(split_bytes)} split files, {_human(shard_bytes)} shards)")
    ratio = f"{raw / stored:.2f}x" if stored else "n/a"
    out.append(f"compression: {ratio} (raw float32 {_human(raw)} / stored {_human(stored)}, float fields)")
    return "\n".join(out)
