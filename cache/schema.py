"""HDF5 schema v2: field names, shapes, dtypes, storage settings and root attributes.

Every writer (shards, split assembly) and every reader goes through this module, so
the format is defined once. See DESIGN §5.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 2  # v2: streams declare their fields (Dims.fields); v1 had a fixed field list
ID_BYTES = 256  # fixed-length sequence ids; longer ids are a user error
GZIP_LEVEL = 4
# What decoding a damaged JSON record (key.json, an attribute's layout) raises: missing, not UTF-8 or not
# JSON (OSError, ValueError), or JSON of the wrong shape (the rest).
RECORD_ERRORS = (OSError, KeyError, ValueError, TypeError, AttributeError, RecursionError)

# Per-sequence bookkeeping every cache holds, whatever its streams: name -> (shape after N, dtype).
BOOKKEEPING: dict[str, tuple[tuple[int, ...], str]] = {
    "labels": ((), "int64"),
    "sequence_ids": ((), f"S{ID_BYTES}"),
    "content_ids": ((), "S64"),
    "aug_index": ((), "int16"),
}
FLOAT = "float"  # a FieldSpec dtype meaning "the cache's storage float dtype" (--dtype)
# Fixed dtypes a stream may store (besides FLOAT); anything else in a manifest is damage, not a dtype.
_STORED_DTYPES = frozenset(
    {"float16", "float32", "float64", "uint8", "int8", "int16", "uint16", "int32", "int64"}
)


@dataclass(frozen=True)
class FieldSpec:
    """One per-frame dataset a stream writes, as the stream declares it (extract/streams/).

    ``shape`` is per frame (the N and T axes excluded); ``dtype`` is a NumPy dtype name or ``FLOAT``;
    ``fill`` is the dataset's HDF5 fill value; ``bounds`` (low, high), when set, is the inclusive range
    ``cache verify`` requires of every value (a hand count can never exceed the boxes it indexes).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = FLOAT
    fill: float = 0.0
    stream: str = ""
    bounds: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "fill": self.fill,
            "stream": self.stream,
            "bounds": list(self.bounds) if self.bounds is not None else None,
        }

    @classmethod
    def from_json(cls, name: str, d: dict[str, Any]) -> FieldSpec:
        """One recorded field; a wrong type or an unknown dtype raises ValueError (files are untrusted)."""
        if not isinstance(d, dict) or not isinstance(d.get("shape"), list):
            raise ValueError(f"dims: field {name!r} needs a 'shape' list")
        if not all(type(x) is int and x >= 0 for x in d["shape"]) or len(d["shape"]) > 8:
            raise ValueError(f"dims: field {name!r} has a shape that is not whole numbers")
        dtype = d.get("dtype")
        if not isinstance(dtype, str) or (dtype != FLOAT and dtype not in _STORED_DTYPES):
            raise ValueError(f"dims: field {name!r} has dtype {dtype!r}")
        bounds = d.get("bounds")
        if bounds is not None and not (
            isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, int | float) for b in bounds)
        ):
            raise ValueError(f"dims: field {name!r} has bounds {bounds!r}")
        return cls(
            name=name,
            shape=tuple(int(x) for x in d["shape"]),
            dtype=str(d["dtype"]),
            fill=float(d.get("fill", 0.0)),
            stream=str(d.get("stream", "")),
            bounds=(float(bounds[0]), float(bounds[1])) if bounds is not None else None,
        )


@dataclass(frozen=True)
class Dims:
    """Everything that fixes every dataset's shape for one extraction key.

    ``fields`` are the per-frame datasets of the streams this cache was extracted with, as their stream
    modules declared them; the reader, ``verify``, ``info``, the preload estimate and the heads all read
    them from here (the manifest), never from a list of their own.
    """

    frames: int  # T
    fields: tuple[FieldSpec, ...]
    float_dtype: str = "float16"

    def __post_init__(self) -> None:
        # Sorted by name: the manifest's JSON sorts keys, so a round trip must give an equal Dims.
        object.__setattr__(self, "fields", tuple(sorted(self.fields, key=lambda f: f.name)))

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "float_dtype": self.float_dtype,
            "fields": {f.name: f.to_json() for f in self.fields},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Dims:
        """Dims from a manifest or attribute; wrong types or sizes raise ValueError (files are untrusted)."""
        if not isinstance(d, dict) or not isinstance(d.get("fields"), dict):
            raise ValueError("dims: expected an object with a 'fields' object")
        fields = tuple(FieldSpec.from_json(str(name), spec) for name, spec in d["fields"].items())
        frames, float_dtype = d.get("frames"), d.get("float_dtype", "float16")
        if type(frames) is not int or frames < 1 or float_dtype not in ("float16", "float32"):
            raise ValueError("dims: frames must be a whole number >= 1 and float_dtype float16 or float32")
        return cls(frames=frames, fields=fields, float_dtype=float_dtype)

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def dtype(self, spec: FieldSpec) -> np.dtype:
        """The stored dtype of a field: ``FLOAT`` resolves to this cache's float dtype."""
        return np.dtype(self.float_dtype if spec.dtype == FLOAT else spec.dtype)

    @property
    def float_fields(self) -> tuple[str, ...]:
        """Fields stored in the cache's float dtype (rounded through it by ``predict`` too)."""
        return tuple(f.name for f in self.fields if f.dtype == FLOAT)

    @property
    def streams(self) -> tuple[str, ...]:
        """Names of the extraction streams present, in declaration order."""
        return tuple(dict.fromkeys(f.stream for f in self.fields))


def field_specs(dims: Dims) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per-sequence shape and dtype of every dataset (the leading N axis excluded)."""
    t = dims.frames
    out = {f.name: ((t, *f.shape), dims.dtype(f)) for f in dims.fields}
    out["frame_indices"] = ((t,), np.dtype("int32"))
    out["valid"] = ((t,), np.dtype("uint8"))
    out.update({name: (shape, np.dtype(dtype)) for name, (shape, dtype) in BOOKKEEPING.items()})
    return out


def fill_values(dims: Dims) -> dict[str, float]:
    return {f.name: f.fill for f in dims.fields}


def create_datasets(h5: h5py.File, n: int, dims: Dims) -> dict[str, h5py.Dataset]:
    """Create every field for ``n`` sequences with one-sequence chunks, shuffle, gzip-4 and a checksum.

    Every chunk carries a Fletcher-32 checksum, because gzip alone does not protect it: HDF5's deflate is
    an optional filter, skipped for a chunk it cannot shrink (a small field of noisy floats), and such a
    chunk is stored raw, so damage to it read back as other numbers. Scalar-per-sequence fields (labels,
    ids) are small and stored in chunks of many sequences, deflated as well: Fletcher-32 of all-zero bytes
    is zero, so a chunk zeroed with its checksum would pass a checksum alone.
    """
    out = {}
    fills = fill_values(dims)
    for name, (shape, dtype) in field_specs(dims).items():
        if shape:
            out[name] = h5.create_dataset(
                name,
                shape=(n, *shape),
                maxshape=(None, *shape),  # lets an empty split (n = 0) still carry one-sequence chunks
                dtype=dtype,
                chunks=(1, *shape),
                shuffle=True,
                compression="gzip",
                compression_opts=GZIP_LEVEL,
                fletcher32=True,
                fillvalue=fills.get(name),
            )
        else:
            chunk = (max(1, min(n, SCALAR_CHUNK)),)  # a small split's chunk is no bigger than it
            out[name] = h5.create_dataset(
                name,
                shape=(n,),
                maxshape=(None,),
                dtype=dtype,
                chunks=chunk,
                shuffle=True,  # deflated too: all-zero bytes (a zeroed or misdirected chunk) then
                compression="gzip",  # fail to inflate, where they would pass Fletcher-32 alone
                compression_opts=GZIP_LEVEL,
                fletcher32=True,
            )
    return out


def encode_id(text: str) -> bytes:
    """UTF-8 bytes for a fixed-length id field; refuses ids that would be truncated."""
    raw = text.encode("utf-8")
    if len(raw) > ID_BYTES:
        raise ValueError(f"sequence id longer than {ID_BYTES} bytes: {text[:80]}...")
    return raw


def decode_id(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8")


def write_attrs(h5: h5py.File, meta: dict[str, Any]) -> None:
    """Store metadata as root attributes, every value as JSON text.

    Even plain strings are JSON-encoded: a hex key such as "12e4567890123456" stored raw would read
    back as a float."""
    for k, v in meta.items():
        h5.attrs[k] = json.dumps(v, sort_keys=True)


def read_attrs(h5: h5py.File) -> dict[str, Any]:
    """Inverse of ``write_attrs``."""
    out: dict[str, Any] = {}
    for k, v in h5.attrs.items():
        v = v.decode() if isinstance(v, bytes) else v
        try:
            out[k] = json.loads(v) if isinstance(v, str) else v
        except json.JSONDecodeError:
            out[k] = v
    return out


def foreign_storage(h5: h5py.File) -> list[str]:
    """Objects whose bytes live outside this file: external links, external raw storage, virtual datasets.

    All are refused: a virtual dataset with a missing source silently reads as fill values,
    and the others make the file's validity depend on files the cache does not own.
    """
    found: list[str] = []

    def visit(group: h5py.Group, prefix: str) -> None:
        for name in group:
            path = f"{prefix}{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                found.append(f"{path}: external link to {link.filename}:{link.path}")
                continue
            if isinstance(link, h5py.SoftLink):
                continue  # points inside this file; its target is visited under its own name
            obj = group[name]
            if isinstance(obj, h5py.Group):
                visit(obj, f"{path}/")
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    found.append(f"{path}: virtual dataset (data mapped from other files)")
                elif obj.external:
                    found.append(f"{path}: external raw storage in {obj.external[0][0]}")

    visit(h5, "")
    return found


# Layout facts that readers (verify, info, train) need as much as the writers (shards, assembly).
SHARD_DIR = "shards"  # <key_dir>/shards/*.h5: one file per extraction batch
SCALAR_CHUNK = 4096  # sequences per chunk of a scalar field
SCALAR_FIELDS = ("labels", "sequence_ids", "content_ids", "aug_index")  # one value per sequence
_AUG_SUFFIX = re.compile(r"#a\d+$")  # data.sequence: copy K of a video is "<class>/<video>#aK"


def video_of(sequence_id: str) -> str:
    """``<class>/<video_id>`` of a sequence id: augmented copies belong to their video."""
    return _AUG_SUFFIX.sub("", sequence_id)
