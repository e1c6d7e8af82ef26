"""Reading one sequence's chunk without the HDF5 filter pipeline, for speed.

Every per-sequence dataset is chunked one sequence per chunk and stored shuffle + gzip
(DESIGN §5). Training reads each chunk once per epoch, and almost all of that time is
zlib inflate. ISA-L inflates the same stream about 1.7x faster than the zlib inside HDF5,
so for chunks laid out that way we fetch the raw bytes (``read_direct_chunk``), inflate
them with ``isal_zlib`` and undo the byte shuffle in NumPy. Anything unusual (another
filter, a chunk a filter skipped, a damaged or short stream) goes back through h5py,
which then decodes it or raises its usual error: the fast path never changes a result.
"""

from __future__ import annotations

from collections.abc import Callable

import h5py
import numpy as np

try:  # ISA-L's zlib-compatible inflate; stdlib zlib gives the same bytes, just slower
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is in requirements.txt
    import zlib as _zlib

_SHUFFLE, _DEFLATE, _FLETCHER = h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_FLETCHER32


def _filters(ds: h5py.Dataset) -> list[int]:
    plist = ds.id.get_create_plist()
    return [plist.get_filter(k)[0] for k in range(plist.get_nfilters())]


def direct_reader(ds: h5py.Dataset) -> Callable[[int], np.ndarray] | None:
    """``read(i) -> ds[i]`` through ISA-L inflate, or None when ``ds`` is not laid out for it.

    Eligible: N-d dataset (N >= 2), chunks of exactly one item, filters ``[deflate]`` or
    ``[shuffle, deflate]`` (the order h5py writes them), optionally followed by Fletcher-32. The checksum
    trails the deflate stream; it is not recomputed here, because the stream's own Adler-32 already
    covers every byte inflated, and a chunk deflate skipped (the checksum's reason) goes through h5py.
    """
    if ds.ndim < 2 or ds.chunks != (1, *ds.shape[1:]):
        return None
    filters = _filters(ds)
    checksum = 4 if filters[-1:] == [_FLETCHER] else 0
    if filters[: len(filters) - (checksum > 0)] not in ([_DEFLATE], [_SHUFFLE, _DEFLATE]):
        return None
    shuffled = filters[0] == _SHUFFLE
    dtype, shape = ds.dtype, ds.shape[1:]
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    tail = (0,) * (ds.ndim - 1)

    def read(i: int) -> np.ndarray:
        try:
            mask, raw = ds.id.read_direct_chunk((i, *tail))
            if mask != 0:  # a filter was skipped for this chunk: let HDF5 decode it
                return ds[i]
            buf = _zlib.decompress(raw[: len(raw) - checksum], bufsize=nbytes)
        except Exception:  # noqa: BLE001 - damaged, missing or short: h5py decodes or raises its error
            return ds[i]
        if len(buf) != nbytes:
            return ds[i]
        planes = np.frombuffer(buf, np.uint8)  # read-only view of the inflated bytes
        if not (shuffled and dtype.itemsize > 1 and count > 1):
            return planes.view(dtype).reshape(shape).copy()
        items = np.empty((count, dtype.itemsize), np.uint8)
        for k, plane in enumerate(planes.reshape(dtype.itemsize, count)):
            items[:, k] = plane  # byte k of every item; 10x faster than a transposed copy
        return items.view(dtype).reshape(shape)  # (*shape,) writable

    return read


def chunk_layout_fault(ds: h5py.Dataset) -> str | None:
    """Why the chunk index of a chunked field is damaged, or None when it is whole.

    A checksum proves a chunk's bytes, not that the index points at the right chunk: a damaged index
    entry can point one sequence at another's chunk, or drop it so it reads the fill value, and both
    decode cleanly. Every field this toolkit writes has a full grid of chunks along the sequences (one
    per sequence, or ``SCALAR_CHUNK`` sequences per chunk for the one-value fields), each stored once,
    so a missing, shared or empty chunk is damage. An empty one matters most: libhdf5 crashes the
    process on it (the Fletcher-32 filter reads before the buffer) instead of raising.
    """
    if not isinstance(ds, h5py.Dataset):  # a damaged link can turn a field into a group
        return f"{type(ds).__name__.lower()} where a dataset should be"
    if ds.chunks is None or ds.shape[0] == 0:
        return None
    per_sequence = ds.ndim >= 2
    if per_sequence and ds.chunks[0] != 1:
        return None
    try:
        filters = _filters(ds)
    except Exception as exc:  # noqa: BLE001 - a damaged filter pipeline message
        return f"filter pipeline unreadable ({' '.join(str(exc).split()) or type(exc).__name__})"
    if per_sequence and filters[:2] != [_SHUFFLE, _DEFLATE]:  # what every writer of this toolkit
        return f"filter pipeline {filters} is not shuffle + deflate"  # used; else other numbers
    if not per_sequence and _FLETCHER not in filters:  # one-value fields: always checksummed
        return f"filter pipeline {filters} has no Fletcher-32 checksum"
    rows: set[int] = set()
    offsets: set[int] = set()
    empty: list[int] = []

    def visit(info: h5py.h5d.StoreInfo) -> None:
        rows.add(info.chunk_offset[0])
        offsets.add(info.byte_offset)
        if info.size == 0:
            empty.append(info.chunk_offset[0])

    try:
        ds.id.chunk_iter(visit)
    except Exception as exc:  # noqa: BLE001 - whatever libhdf5 raises for an unreadable index
        return f"chunk index unreadable ({' '.join(str(exc).split()) or type(exc).__name__})"
    if empty:
        return f"the chunk of sequence {empty[0]} is stored as 0 bytes"
    if len(offsets) < len(rows):
        return "two chunks point at one stored chunk"
    step = ds.chunks[0]
    expected = -(-ds.shape[0] // step)  # chunks along the sequences; a damaged extent can make it 2**60
    held = sum(1 for row in rows if row % step == 0 and row < ds.shape[0])
    if held < expected:
        first: list[int] = []  # the first few missing, found within len(rows) + 5 steps, never a huge set
        k = 0
        while len(first) < 5 and k < expected:
            if k * step not in rows:
                first.append(k * step)
            k += 1
        more = f" and {expected - held - len(first)} more" if expected - held > len(first) else ""
        return f"sequence(s) {first}{more} have no stored chunk"
    return None
