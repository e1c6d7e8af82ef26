"""Cache reading: open_cache's cheap refusals and the CacheDataset that training iterates."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from test_cache_store import CLASSES, DIMS, LAYOUT, cid_of, write_cache
from torch.utils.data import DataLoader

from cache.key import extraction_key
from cache.reader import CacheDataset, open_cache
from cache.schema import SCHEMA_VERSION
from core.errors import CacheError

STREAMS = ("embeddings", "dino_cls", "dino_attention", "swav")


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    key_dir = tmp_path / "cache" / extraction_key({"reader": 1})
    _, records = write_cache(key_dir, LAYOUT)
    return key_dir, records


class PidProbe(CacheDataset):
    """Reports which process read each item and which process opened the handle it used."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(index)
        item["reader_pid"] = torch.tensor(os.getpid())
        item["handle_pid"] = torch.tensor(self._pid)
        return item


def test_open_cache_describes_a_good_cache(built):
    key_dir, _ = built
    info = open_cache(key_dir)
    assert info.key == key_dir.name and info.class_names == CLASSES and info.dims == DIMS
    assert info.counts == {"train": 4, "val": 2, "test": 0}
    assert info.splits == {s: key_dir / f"{s}.h5" for s in ("train", "val", "test")}


def test_items_have_the_right_streams_shapes_and_values(built):
    key_dir, records = built
    ds = CacheDataset(key_dir / "train.h5", STREAMS)
    assert len(ds) == 4 and ds.class_names == CLASSES and ds.dims == DIMS
    assert ds.sequence_ids == LAYOUT["train"]
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 0, 1, 2]
    item = ds[2]
    assert set(item) == {*STREAMS, "valid", "label"}
    assert item["embeddings"].shape == (4, 12, 8) and item["dino_cls"].shape == (4, 6)
    assert item["dino_attention"].shape == (4, 2, 2) and item["swav"].shape == (4, 5)
    assert all(item[s].dtype == torch.float32 for s in STREAMS)
    assert item["valid"].dtype == torch.bool and item["valid"].shape == (4,)
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0 and int(item["label"]) == 1
    rec = records[cid_of("swipe/v2")]
    for s in STREAMS:
        np.testing.assert_array_equal(item[s].numpy(), rec[s].astype(np.float32))
    np.testing.assert_array_equal(item["valid"].numpy(), rec["valid"].astype(bool))
    assert ds[-1]["label"] == ds[3]["label"]
    with pytest.raises(IndexError):
        ds[4]


def test_streams_select_fields_and_unknown_streams_are_refused(built):
    key_dir, _ = built
    item = CacheDataset(key_dir / "val.h5", ("hand_boxes", "hand_count"))[0]
    assert set(item) == {"hand_boxes", "hand_count", "valid", "label"}
    assert item["hand_boxes"].shape == (4, 2, 6) and item["hand_count"].dtype == torch.int64
    with pytest.raises(ValueError, match="embeddings"):
        CacheDataset(key_dir / "val.h5", ("embedings",))


def test_dataloader_workers_each_open_their_own_handle(built):
    key_dir, _ = built
    ds = PidProbe(key_dir / "train.h5", STREAMS)
    direct = [CacheDataset(key_dir / "train.h5", STREAMS)[i] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=1, num_workers=2, shuffle=False)
    items = list(loader)
    assert ds._h5 is None  # the parent never opened the file
    pids = {int(b["reader_pid"]) for b in items}
    assert os.getpid() not in pids and len(pids) == 2
    assert all(int(b["reader_pid"]) == int(b["handle_pid"]) for b in items)
    for batch, ref in zip(items, direct, strict=True):
        for k, v in ref.items():
            assert torch.equal(batch[k][0], v)


def test_preload_gives_identical_items_and_pickles_without_a_handle(built):
    key_dir, _ = built
    lazy = CacheDataset(key_dir / "train.h5", STREAMS)
    eager = CacheDataset(key_dir / "train.h5", STREAMS, preload=True)
    for i in range(len(lazy)):
        a, b = lazy[i], eager[i]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    clone = pickle.loads(pickle.dumps(lazy))  # after lazy opened its handle
    assert clone._h5 is None and torch.equal(clone[1]["embeddings"], lazy[1]["embeddings"])
    empty = CacheDataset(key_dir / "test.h5", STREAMS, preload=True)
    assert len(empty) == 0 and empty.sequence_ids == []


def _edit_manifest(key_dir: Path, **changes) -> None:
    path = key_dir / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _refusal(key_dir: Path) -> str:
    with pytest.raises(CacheError) as err:
        open_cache(key_dir)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_open_cache_refuses_a_missing_dir(tmp_path: Path):
    assert "not found" in _refusal(tmp_path / "nope")


def test_open_cache_refuses_an_incomplete_cache(built):
    key_dir, _ = built
    _edit_manifest(key_dir, complete=False)
    assert "incomplete" in _refusal(key_dir)


def test_open_cache_refuses_a_newer_schema(built):
    key_dir, _ = built
    _edit_manifest(key_dir, schema_version=SCHEMA_VERSION + 1)
    assert "upgrade the toolkit" in _refusal(key_dir)


def test_open_cache_refuses_broken_json_and_missing_or_empty_files(built):
    key_dir, _ = built
    (key_dir / "val.h5").write_bytes(b"")
    assert "val.h5" in _refusal(key_dir) and "cache verify" in _refusal(key_dir)
    (key_dir / "val.h5").unlink()
    assert "val.h5: split file missing" in _refusal(key_dir)
    (key_dir / "manifest.json").write_text("{not json")
    assert "manifest.json" in _refusal(key_dir)


def test_open_cache_refuses_a_split_file_from_another_key(built, tmp_path: Path):
    key_dir, _ = built
    with h5py.File(key_dir / "train.h5", "r+") as h5:
        h5.attrs["key"] = "0000000000000000"
    assert "train.h5" in _refusal(key_dir) and "0000000000000000" in _refusal(key_dir)


def test_open_cache_refuses_an_external_link(built, tmp_path: Path):
    key_dir, _ = built
    with h5py.File(tmp_path / "elsewhere.h5", "w") as other:
        other["x"] = np.zeros(3)
    with h5py.File(key_dir / "train.h5", "r+") as h5:
        h5["extra"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/x")
    assert "external link" in _refusal(key_dir)


def test_open_cache_refuses_a_virtual_dataset(built, tmp_path: Path):
    key_dir, _ = built
    layout = h5py.VirtualLayout(shape=(2, 4), dtype="uint8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "gone.h5"), "valid", shape=(2, 4))
    with h5py.File(key_dir / "val.h5", "r+") as h5:
        del h5["valid"]
        h5.create_virtual_dataset("valid", layout, fillvalue=1)
    assert "virtual dataset" in _refusal(key_dir)


def test_numeric_looking_keys_still_match(tmp_path: Path):
    # "12e4567890123456" is valid hex and also a JSON number; the key must stay a string.
    key_dir = tmp_path / "12e4567890123456"
    write_cache(key_dir, LAYOUT)
    assert open_cache(key_dir).key == "12e4567890123456"
