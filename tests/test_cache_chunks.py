"""The ISA-L direct-chunk reader returns exactly what h5py returns, or steps aside."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
from faults.harness import empty_chunk_entry, flip_bytes_in_chunk

from cache.chunks import chunk_layout_fault, direct_reader

SHAPE = (5, 3, 7)  # (N, ...): odd sizes, so no byte plane lines up by accident


def _values(dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype == "bool":
        return rng.random(SHAPE) < 0.3
    if np.issubdtype(np.dtype(dtype), np.floating):
        return (rng.standard_normal(SHAPE) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, SHAPE, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("fletcher32", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int64", "int16", "uint8", "bool"])
def test_direct_reads_equal_h5py_bit_for_bit(tmp_path: Path, dtype: str, shuffle: bool, fletcher32: bool):
    values = _values(dtype, np.random.default_rng(0))
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        kwargs = {
            "chunks": (1, *SHAPE[1:]),
            "compression": "gzip",
            "shuffle": shuffle,
            "fletcher32": fletcher32,
        }
        ds = h5.create_dataset("x", data=values, **kwargs)
        read = direct_reader(ds)
        assert read is not None
        for i in range(SHAPE[0]):
            got = read(i)
            assert got.dtype == ds.dtype and got.shape == SHAPE[1:] and got.flags.writeable
            assert got.tobytes() == ds[i].tobytes() == values[i].tobytes()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # contiguous
        {"chunks": (2, 3, 7), "compression": "gzip"},  # two items per chunk
        {"chunks": (1, 3, 7), "compression": "lzf"},
        {"chunks": (1, 3, 7), "compression": "gzip", "scaleoffset": 2},
    ],
)
def test_other_layouts_are_left_to_h5py(tmp_path: Path, kwargs: dict):
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        assert direct_reader(h5.create_dataset("x", data=np.ones(SHAPE, np.float32), **kwargs)) is None


def test_a_damaged_chunk_raises_what_h5py_raises(tmp_path: Path):
    path = tmp_path / "c.h5"
    values = np.random.default_rng(1).standard_normal((3, 64, 32)).astype(np.float16)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("x", data=values, chunks=(1, 64, 32), compression="gzip", shuffle=True)
    flip_bytes_in_chunk(path, "x", 1)
    with h5py.File(path, "r") as h5:
        ds, read = h5["x"], direct_reader(h5["x"])
        with pytest.raises(OSError) as by_h5py:
            ds[1]
        with pytest.raises(OSError) as direct:
            read(1)
        assert str(direct.value) == str(by_h5py.value)
        assert read(0).tobytes() == values[0].tobytes() and read(2).tobytes() == values[2].tobytes()


def test_a_sequence_without_its_own_chunk_is_a_damaged_index(tmp_path: Path):
    """A dropped index entry reads as the fill value, and decodes cleanly: only the index shows it."""
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        ds = h5.create_dataset(
            "x", shape=(3, 4), dtype="f4", chunks=(1, 4), shuffle=True, compression="gzip", fletcher32=True
        )
        ds[0], ds[2] = np.ones(4), np.ones(4)
        assert chunk_layout_fault(ds) == "sequence(s) [1] have no stored chunk"
        ds[1] = np.ones(4)
        assert chunk_layout_fault(ds) is None
        contiguous = h5.create_dataset("y", data=np.zeros((3, 4)))
        assert chunk_layout_fault(contiguous) is None


def test_a_chunked_field_without_shuffle_and_deflate_is_a_damaged_pipeline(tmp_path: Path):
    """A filter pipeline message that lost its shuffle would decode every chunk to other numbers."""
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        ds = h5.create_dataset("x", data=np.ones((2, 4)), chunks=(1, 4), compression="gzip")
        assert "not shuffle + deflate" in chunk_layout_fault(ds)


def _one_value_field(h5: h5py.File, rows: slice) -> h5py.Dataset:
    ds = h5.create_dataset(
        "labels", shape=(10,), dtype="i8", chunks=(4,), shuffle=True, compression="gzip", fletcher32=True
    )
    ds[rows] = 7
    return ds


def test_a_one_value_field_missing_a_chunk_is_a_damaged_index(tmp_path: Path):
    """Labels whose middle chunk is gone read as the fill value 0, a valid class: only the index shows it."""
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        ds = _one_value_field(h5, slice(0, 4))
        ds[8:] = 7
        assert chunk_layout_fault(ds) == "sequence(s) [4] have no stored chunk"
        ds[4:8] = 7
        assert chunk_layout_fault(ds) is None


def test_a_chunk_stored_as_zero_bytes_is_found_without_reading_it(tmp_path: Path):
    """Reading such a chunk crashes libhdf5, so the index walk must name it first."""
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as h5:
        _one_value_field(h5, slice(None))
    empty_chunk_entry(path, "labels")
    with h5py.File(path, "r") as h5:
        assert chunk_layout_fault(h5["labels"]) == "the chunk of sequence 0 is stored as 0 bytes"


@contextmanager
def _memory_headroom(extra: int) -> Iterator[None]:
    """Cap this process's address space at its current size plus ``extra`` bytes for the block."""
    size = next(
        int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize")
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_a_damaged_extent_is_refused_without_listing_every_missing_chunk(tmp_path: Path):
    """A dataspace damaged to 2**50 rows must cost what the stored chunks cost, not a set of 2**50 ints."""
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        ds = h5.create_dataset(
            "labels",
            shape=(8,),
            maxshape=(None,),
            dtype="i8",
            chunks=(4,),
            compression="gzip",
            fletcher32=True,
        )
        ds[...] = 1
        ds.resize((2**50,))  # what the damaged header says; no chunk beyond the first two is stored
        with _memory_headroom(2 << 30):  # a set of every missing row raises MemoryError, not an OOM kill
            fault = chunk_layout_fault(ds)
    assert fault == f"sequence(s) [8, 12, 16, 20, 24] and {2**48 - 7} more have no stored chunk"


def test_a_group_where_a_field_should_be_is_a_fault_not_an_attribute_error(tmp_path: Path):
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        assert chunk_layout_fault(h5.create_group("labels")) == "group where a dataset should be"
