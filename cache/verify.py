"""`cache verify`: re-read every byte of a cache and report each fault with its file and dataset.

Unlike ``open_cache``'s cheap checks, this decodes every chunk of every dataset, so a
flipped bit inside a gzip chunk, a truncated file, an edited manifest or a NaN that an
encoder produced all surface here before they can waste a training run. A damaged file
must never crash the check: every HDF5 access is guarded and turned into a fault line.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml
from tqdm import tqdm

from cache.chunks import chunk_layout_fault
from cache.manifest import MANIFEST_NAME, SPLITS, read_manifest, unfinished, without_manifest
from cache.reader import attr_text
from cache.schema import (
    RECORD_ERRORS,
    SCALAR_FIELDS,
    SCHEMA_VERSION,
    SHARD_DIR,
    Dims,
    decode_id,
    field_specs,
    foreign_storage,
    read_attrs,
    video_of,
)
from cache.watchdog import MetadataHangError, watch_open
from core.errors import CacheError, one_line

_SHOW = 5  # how many offending sequence indices a message lists
# What h5py raises for damaged metadata or data (KeyError/ValueError for unreadable object headers).
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)  # TypeError: a damaged dtype
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_AUG = re.compile(r"#a(\d+)$")
KEY_JSON = "key.json"
_REWRITE = "re-run the same `pipeline.py extract` to rewrite it (stored sequences are not recomputed)"
_REBUILD = "re-run the same `pipeline.py extract`, which rebuilds it from the shards"
_REBUILD_KEY = f"delete {KEY_JSON} and {_REBUILD}"
# The record files extract writes beside the split files (docs/architecture.md §4): what each holds, whether
# manifest.json repeats all of it (then losing the file loses nothing: a note), and how extract restores it.
RECORDS = {
    KEY_JSON: ("the key, its spec and the dims", True, _REBUILD),
    "splits.json": (
        "the split assignment and subjects, which cache info and cross-validation read",
        False,
        _REWRITE,
    ),
    "config.yaml": ("the extract config", True, _REWRITE),
}
_DOC_ERRORS = (*RECORD_ERRORS, yaml.YAMLError)  # config.yaml is YAML


def _rows(bad: list[int]) -> str:
    more = f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
    return f"{bad[:_SHOW]}{more}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _scan_dataset(ds: h5py.Dataset, field: str, dims: Dims, num_classes: int) -> list[str]:
    """Decode every chunk of one dataset and check its values; return fault texts (without the file)."""
    unreadable: list[int] = []
    first_error = ""
    nonfinite: list[int] = []
    bad_values: list[int] = []
    if (fault := chunk_layout_fault(ds)) is not None:
        return [fault]
    rows = range(ds.shape[0]) if ds.chunks and ds.shape[1:] else [slice(None)]  # one read per chunk
    spec = dims.field(field)
    bounds = spec.bounds if spec is not None else None  # the range its stream declared
    for i in rows:
        try:
            arr = ds[i]
        except _H5_ERRORS as exc:
            if not isinstance(i, int):
                return [f"cannot read: {_first_line(exc)}"]
            unreadable.append(i)
            first_error = first_error or _first_line(exc)
            continue
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            nonfinite.extend([i] if isinstance(i, int) else np.flatnonzero(~np.isfinite(arr)).tolist())
        if field == "valid":
            if not np.isin(arr, (0, 1)).all() or not arr.any():
                bad_values.append(i)
        elif bounds is not None and (np.isfinite(arr) & ((arr < bounds[0]) | (arr > bounds[1]))).any():
            bad_values.append(i)
        elif field == "labels":
            bad_values.extend(np.flatnonzero((arr < 0) | (arr >= num_classes)).tolist())
    faults = []
    if unreadable:
        faults.append(f"cannot read sequence(s) {_rows(unreadable)}: {first_error}")
    if nonfinite:
        faults.append(f"NaN or Inf in sequence(s) {_rows(nonfinite)}")
    if bad_values:
        what = {
            "valid": "mask not in {0, 1} or without any valid frame",
            "labels": f"label outside 0..{num_classes - 1}",
        }.get(field, f"value outside its declared range {bounds}")
        faults.append(f"{what} in sequence(s) {_rows(bad_values)}")
    return faults


def _check_field(
    h5: h5py.File,
    field: str,
    spec: tuple[tuple[int, ...], np.dtype],
    dims: Dims,
    num_classes: int,
    expected: int | None = None,
) -> tuple[list[str], int | None]:
    """Faults of one dataset and its N (None when it is missing or malformed)."""
    shape, dtype = spec
    ds = h5.get(field)
    if not isinstance(ds, h5py.Dataset):
        return ["dataset missing"], None
    if ds.dtype != dtype or ds.ndim != len(shape) + 1 or ds.shape[1:] != shape:
        return [f"shape {ds.shape} {ds.dtype}, expected (N, *{shape}) {dtype}"], None
    if expected is not None and ds.shape[0] > expected:  # a damaged extent: scanning it reads petabytes
        return [f"holds {ds.shape[0]} sequences, more than the manifest's {expected}; not read"], None
    return _scan_dataset(ds, field, dims, num_classes), ds.shape[0]


def _scan_file(
    h5: h5py.File, name: str, dims: Dims, num_classes: int, faults: list[str], expected: int | None = None
) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Check every expected dataset of one open split file; return per-dataset N and the small fields."""
    specs = field_specs(dims)
    try:
        for extra in sorted(set(h5) - set(specs)):
            faults.append(f"{name}: {extra}: unexpected member")
    except _H5_ERRORS as exc:
        faults.append(f"{name}: /: cannot list members: {_first_line(exc)}")
    counts: dict[str, int] = {}
    small: dict[str, np.ndarray] = {}
    for field, spec in tqdm(specs.items(), desc=f"verify {name}", unit="dataset", disable=None):
        try:
            texts, n = _check_field(h5, field, spec, dims, num_classes, expected)
            if n is not None:
                counts[field] = n
                if field in SCALAR_FIELDS and not texts:
                    small[field] = h5[field][...]
        except _H5_ERRORS as exc:
            texts = [f"cannot read: {_first_line(exc)}"]
        faults += [f"{name}: {field}: {text}" for text in texts]
    return counts, small


def _check_attrs(h5: h5py.File, split: str, manifest: dict[str, Any]) -> list[str]:
    faults = []
    attrs = read_attrs(h5)
    key = attr_text(h5, "key")
    if key != str(manifest.get("key")):
        faults.append(f"attrs: key {key!r} differs from the manifest's {manifest.get('key')!r}")
    if attr_text(h5, "split") != split:
        faults.append(f"attrs: split {attr_text(h5, 'split')!r}, expected {split!r}")
    for name in ("class_names", "dims", "schema_version"):
        if attrs.get(name) != manifest.get(name):
            faults.append(f"attrs: {name} differs from the manifest")
    return faults


def _check_ids(name: str, small: dict[str, np.ndarray]) -> tuple[list[str], list[str] | None]:
    """Sequence ids, content ids and augmentation indices must be readable and agree with each other."""
    faults: list[str] = []
    ids = None
    if "sequence_ids" in small:
        try:
            ids = [decode_id(raw) for raw in small["sequence_ids"]]
        except UnicodeDecodeError as exc:
            faults.append(f"{name}: sequence_ids: not UTF-8 ({exc})")
    if ids is not None:
        dupes = sorted(s for s, k in Counter(ids).items() if k > 1)
        if dupes:
            faults.append(f"{name}: sequence_ids: repeated ids {dupes[:_SHOW]}")
        if "aug_index" in small:
            expected = [int(m[1]) if (m := _AUG.search(s)) else 0 for s in ids]
            bad = np.flatnonzero(np.asarray(expected) != small["aug_index"].astype(np.int64)).tolist()
            if bad:
                faults.append(
                    f"{name}: aug_index: differs from the id suffix #a<k> in sequence(s) {_rows(bad)}"
                )
    if "content_ids" in small:
        cids = [raw.rstrip(b"\0") for raw in small["content_ids"]]
        bad = [i for i, c in enumerate(cids) if not _HEX64.match(c.decode("latin-1"))]
        if bad:
            faults.append(f"{name}: content_ids: not a 64-char hex id in sequence(s) {_rows(bad)}")
        elif len(set(cids)) != len(cids):
            faults.append(f"{name}: content_ids: repeated ids")
    return faults, ids


def _verify_split(
    d: Path, split: str, entry: dict[str, Any], manifest: dict[str, Any], dims: Dims
) -> tuple[list[str], list[str] | None]:
    """Faults of one split file, and its sequence ids (None when unreadable)."""
    name = str(entry.get("file", f"{split}.h5"))
    path = d / name
    if Path(name).name != name or not path.is_file():
        return [f"{name}: file missing"], None
    try:
        watch_open(path)
        h5 = h5py.File(path, "r", locking=False)
    except MetadataHangError as exc:
        return [f"{name}: {str(exc).split(': ', 1)[1]}"], None
    except _H5_ERRORS as exc:
        return [f"{name}: cannot open ({_first_line(exc)}); the file is truncated or corrupt"], None
    faults: list[str] = []
    with h5:
        for label, check in (
            ("links", foreign_storage),
            ("attrs", lambda h: _check_attrs(h, split, manifest)),
        ):
            try:
                faults += [f"{name}: {text}" for text in check(h5)]
            except _H5_ERRORS as exc:
                faults.append(f"{name}: {label}: cannot read: {_first_line(exc)}")
        count = entry.get("count")
        expected = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
        counts, small = _scan_file(h5, name, dims, len(manifest["class_names"]), faults, expected)
    if len(set(counts.values())) > 1:
        faults.append(f"{name}: datasets disagree on the number of sequences: {counts}")
    n = counts.get("labels")
    if n is not None and entry.get("count") != n:
        faults.append(f"{MANIFEST_NAME}: splits.{split}.count is {entry.get('count')}, but {name} holds {n}")
    id_faults, ids = _check_ids(name, small)
    faults += id_faults
    listed = entry.get("sequence_ids", [])
    if not isinstance(listed, list):
        faults.append(f"{MANIFEST_NAME}: splits.{split}.sequence_ids is not a list")
    elif ids is not None and ids != listed:
        faults.append(f"{MANIFEST_NAME}: splits.{split}.sequence_ids do not match {name}: sequence_ids")
    return faults, ids


def not_verifiable(cache_dir: Path) -> str | None:
    """Why there is nothing to verify, as one line: no such directory, not a cache key directory (a cache
    root, say), or a cache an extraction has not finished (``cache.manifest.unfinished``). None: verify
    it. None of these is damage, so the answer is never to delete anything."""
    d = Path(cache_dir)
    if not d.is_dir():
        return f"{d}: cache directory not found; pass a key directory that `pipeline.py cache ls` lists"
    try:
        manifest = read_manifest(d)
    except CacheError:
        return None  # a damaged manifest is a fault verify_cache names
    return without_manifest(d) if manifest is None else unfinished(d, manifest)


def verify_cache(cache_dir: Path) -> list[str]:
    """Every fault of one cache key directory, each naming its file and dataset; empty means OK."""
    d = Path(cache_dir)
    if not d.is_dir():
        return [f"{d}: cache directory not found"]
    try:
        manifest = read_manifest(d)
    except CacheError as exc:
        return [f"{MANIFEST_NAME}: {exc}"]
    if manifest is None:
        return [without_manifest(d)]
    faults = []
    if manifest.get("complete") is not True:
        faults.append(f"{MANIFEST_NAME}: complete is {manifest.get('complete')!r}; {unfinished(d, manifest)}")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        return faults + [f"{MANIFEST_NAME}: schema_version {version!r} is not one this toolkit reads"]
    if version < SCHEMA_VERSION:
        return faults + [f"{MANIFEST_NAME}: schema v{version} was written by an older toolkit; re-extract"]
    try:
        dims = Dims.from_json(manifest["dims"])
        class_names = list(manifest["class_names"])
        if not all(isinstance(c, str) for c in class_names):
            raise TypeError("class_names: every class name must be a string")
        splits = {s: dict(manifest["splits"][s]) for s in SPLITS}
    except (KeyError, TypeError, ValueError) as exc:
        return faults + [f"{MANIFEST_NAME}: missing or malformed field {one_line(exc)}"]
    if len(set(class_names)) != len(class_names):
        faults.append(f"{MANIFEST_NAME}: class_names has repeated names")
    videos: dict[str, set[str]] = defaultdict(set)
    for split, entry in splits.items():
        split_faults, ids = _verify_split(d, split, entry, manifest, dims)
        faults += split_faults
        for sid in ids or []:
            videos[video_of(sid)].add(split)
    for video, where in sorted(videos.items()):
        if len(where) > 1:
            files = "/".join(f"{s}.h5" for s in SPLITS if s in where)
            faults.append(f"{files}: sequence_ids: video {video} is in more than one split ({sorted(where)})")
    return (
        faults + _key_json_faults(d, manifest, dims) + _record_faults(d, manifest) + _verify_shards(d, dims)
    )


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _dims_diff(recorded: Dims, actual: Dims) -> str:
    """Which parts of two layouts differ: frames, float_dtype, field names; empty when they agree."""
    a, b = recorded.to_json(), actual.to_json()
    fields = a["fields"].keys() | b["fields"].keys()
    changed = sorted(f for f in fields if a["fields"].get(f) != b["fields"].get(f))
    names = [k for k in ("frames", "float_dtype") if a[k] != b[k]] + changed
    more = f" and {len(names) - _SHOW} more" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def _key_json_faults(d: Path, manifest: dict[str, Any], dims: Dims) -> list[str]:
    """key.json against the layout the manifest and split files record (``_check_attrs`` ties those).

    A reused extract (every sequence stored) takes the dims from key.json alone, so an edited one made
    assembly blame a good shard and advise deleting it. extract rebuilds a missing or unreadable key.json
    from the shards' attributes, hence the remedy. A missing one is a note (``_missing_records``).
    """
    path = d / KEY_JSON
    if not path.exists():
        return []
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        key_dims = Dims.from_json(recorded["dims"])
    except _DOC_ERRORS as exc:
        return [f"{KEY_JSON}: unreadable ({_reason(exc)}); {_REBUILD_KEY}"]
    faults = []
    if diff := _dims_diff(key_dims, dims):
        faults.append(f"{KEY_JSON}: dims ({diff}) differ from the split files' and {MANIFEST_NAME}'s")
    key, expected = recorded.get("key"), manifest.get("key")
    if key != expected:
        faults.append(f"{KEY_JSON}: key {key!r} differs from {MANIFEST_NAME}'s {expected!r}")
    elif "key_spec" in manifest and recorded.get("spec") != manifest["key_spec"]:
        faults.append(f"{KEY_JSON}: spec differs from {MANIFEST_NAME}'s key_spec")
    return [f"{fault}; {_REBUILD_KEY}" for fault in faults]


def _missing_records(d: Path, manifest: dict[str, Any], repeated: bool) -> list[str]:
    """The record files extract wrote that are gone, those whose content the manifest repeats or not.

    Training reads only the split files, so none stops it; but splits.json alone knows the subjects, so
    without it `cache info` and cross-validation silently lose them: that one is a fault, the rest notes.
    """
    if "key_spec" not in manifest:  # not written by extract (a tool or test assembled it): none expected
        return []
    return [
        f"{name}: file missing ({what}{f'; {MANIFEST_NAME} repeats it' if repeats else ''}); {remedy}"
        for name, (what, repeats, remedy) in RECORDS.items()
        if repeats == repeated and not (d / name).exists()
    ]


def _record_faults(d: Path, manifest: dict[str, Any]) -> list[str]:
    """splits.json and config.yaml, where present, must read as the mappings extract writes."""
    faults = _missing_records(d, manifest, repeated=False)
    for name in ("splits.json", "config.yaml"):
        path = d / name
        if not path.exists():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            doc = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
            if not isinstance(doc, dict):
                raise ValueError(f"a {type(doc).__name__}, not a mapping")
            if name == "splits.json" and not isinstance(doc.get("assignment"), dict):
                raise ValueError("no 'assignment' mapping")
        except _DOC_ERRORS as exc:
            faults.append(f"{name}: unreadable ({_reason(exc)}); delete it and {_REWRITE}")
    return faults


def _verify_shards(d: Path, dims: Dims) -> list[str]:
    """Every chunk of every shard, decoded and checked as the split files' are.

    Split files are assembled from the shards by copying compressed chunks, so a damaged shard chunk would
    pass into the next split files, and back again after those were deleted and re-assembled. Deleting
    the shard instead makes the next extract recompute its sequences. A shard that cannot be opened at all
    is a note (``verify_notes``): extract already recomputes what it held.
    """
    faults: list[str] = []
    for path in sorted((d / SHARD_DIR).glob("*.h5")):
        name = f"{SHARD_DIR}/{path.name}"
        try:
            watch_open(path)
            h5 = h5py.File(path, "r", locking=False)
        except (*_H5_ERRORS, MetadataHangError):
            continue
        with h5:
            try:  # labels index the class names of the extraction that wrote the shard
                classes = len(read_attrs(h5)["class_names"])
            except (*_H5_ERRORS, KeyError, TypeError):
                faults.append(f"{name}: attrs: class_names unreadable")
                continue
            _scan_file(h5, name, dims, classes, faults)
    return faults


def _shard_ids(d: Path) -> tuple[set[str], list[str]]:
    """Content ids held by the finished shards, read-only (unlike ShardStore.index, which cleans up)."""
    ids: set[str] = set()
    unreadable: list[str] = []
    for path in sorted((d / SHARD_DIR).glob("*.h5")):
        try:
            watch_open(path)
            with h5py.File(path, "r", locking=False) as h5:
                ids.update(raw.decode("ascii") for raw in h5["content_ids"][...])
        except (*_H5_ERRORS, UnicodeDecodeError, MetadataHangError) as exc:
            unreadable.append(f"{SHARD_DIR}/{path.name}: unreadable ({_first_line(exc)})")
    return ids, unreadable


def verify_notes(cache_dir: Path) -> list[str]:
    """Things worth knowing that do not make the cache unusable: shards that are gone or unreadable, and
    record files whose content the manifest repeats (key.json, config.yaml) that are gone.

    Split files hold copies of their sequences, so training and evaluation never read shards/;
    shards matter only when the splits are re-assembled (new ratios, added videos). Then `extract`
    recomputes exactly the sequences no shard holds, so a deleted shard costs encoder time, not data.
    """
    d = Path(cache_dir)
    in_splits: set[str] = set()
    for split in SPLITS:
        try:
            watch_open(d / f"{split}.h5")
            with h5py.File(d / f"{split}.h5", "r", locking=False) as h5:
                in_splits.update(raw.rstrip(b"\0").decode("latin-1") for raw in h5["content_ids"][...])
        except (*_H5_ERRORS, MetadataHangError):
            continue  # verify_cache reports damaged split files
    try:
        manifest = read_manifest(d) or {}
    except CacheError:
        manifest = {}  # verify_cache reports it
    stored, notes = _shard_ids(d)
    notes = _missing_records(d, manifest, repeated=True) + notes
    missing = in_splits - stored
    if missing:
        notes.append(
            f"{SHARD_DIR}/: {len(missing)} sequence(s) of the split files are in no shard (deleted?); the "
            "split files are complete, and the next extract that re-assembles recomputes only those"
        )
    return notes
