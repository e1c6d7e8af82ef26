"""Cache writing: keys, fingerprints, crash-safe shards, chunk-copy assembly, manifest order, the lock."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import cache.assemble as assemble_mod
import cache.shards as shards_mod
import core.atomic
from bench.synthetic import Sizes
from cache.assemble import assemble_splits
from cache.fingerprint import content_id, video_fingerprint
from cache.key import extraction_key
from cache.lock import CacheLock
from cache.manifest import read_manifest
from cache.reader import open_cache
from cache.schema import Dims, field_specs
from cache.shards import ShardStore
from core.errors import CacheError
from data.sequence import Video
from extract.channels import CHANNEL_NAMES

ROOT = Path(__file__).resolve().parents[1]
DIMS = Sizes(frames=4, embed_dim=8, dino_dim=6, attn_hw=(2, 2), swav_dim=5, max_hands=2).dims()
CLASSES = ["grab", "swipe", "tap"]
CHUNKED = [name for name, (shape, _) in field_specs(DIMS).items() if shape]


# ---- synthetic cache builders (also used by test_cache_reader.py and test_cache_verify.py) ----


def cid_of(sequence_id: str) -> str:
    return hashlib.sha256(sequence_id.encode()).hexdigest()


def make_record(sequence_id: str, class_names: list[str], seed: int = 0, dims: Dims = DIMS) -> dict:
    """One sequence with random values in every schema field; the label follows the id's class."""
    rng = np.random.default_rng(int(cid_of(sequence_id)[:8], 16) + seed)
    rec = {}
    for spec in dims.fields:  # each stream field: in its declared range where it has one
        shape, dtype = (dims.frames, *spec.shape), dims.dtype(spec)
        if spec.bounds is not None:
            value = rng.uniform(*spec.bounds, shape)
            rec[spec.name] = (value if np.issubdtype(dtype, np.floating) else value.round()).astype(dtype)
        elif np.issubdtype(dtype, np.floating):
            rec[spec.name] = rng.standard_normal(shape).astype(dtype)
    t = dims.frames
    rec.update(
        frame_indices=np.arange(t, dtype=np.int32),
        valid=np.array([1] * (t - 1) + [int(rng.integers(0, 2))], dtype=np.uint8),
        labels=class_names.index(sequence_id.split("/")[0]),
        sequence_ids=sequence_id,
        content_ids=cid_of(sequence_id),
        aug_index=int(sequence_id.split("#a")[1]) if "#a" in sequence_id else 0,
    )
    return rec


def write_cache(
    key_dir: Path, layout: dict[str, list[str]], class_names: list[str] = CLASSES, shard_size: int = 3
) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """Write the sequences of ``layout`` (split -> sequence ids) as shards, then assemble the splits."""
    ids = [sid for split in ("train", "val", "test") for sid in layout.get(split, [])]
    records = {cid_of(sid): make_record(sid, class_names) for sid in ids}
    store = ShardStore(key_dir)
    recs = list(records.values())
    for start in range(0, len(recs), shard_size):
        store.write_shard(
            recs[start : start + shard_size], DIMS, {"class_names": class_names, "key": key_dir.name}
        )
    members = {split: [cid_of(s) for s in sids] for split, sids in layout.items()}
    assemble_splits(key_dir, members, class_names, meta_for(key_dir))
    return members, records


def meta_for(key_dir: Path) -> dict:
    return {
        "key": key_dir.name,
        "dims": DIMS.to_json(),
        "channel_layout": list(CHANNEL_NAMES),
        "encoders": {"vit": {"name": "tiny-vit", "weights": "random:0"}},
        "config": {"frames": DIMS.frames},
    }


LAYOUT = {
    "train": ["grab/v1", "grab/v1#a1", "swipe/v2", "tap/v3"],
    "val": ["swipe/v4", "tap/v5"],
    "test": [],
}


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / extraction_key({"test": 1})


# ---- key and fingerprint ----


def test_extraction_key_is_canonical_and_sensitive():
    spec = {"frames": 32, "encoders": {"vit": "a", "cnn": "b"}, "augment": {"seed": 0}, "dtype": "float16"}
    reordered = {
        "dtype": "float16",
        "augment": {"seed": 0},
        "encoders": {"cnn": "b", "vit": "a"},
        "frames": 32,
    }
    key = extraction_key(spec)
    assert len(key) == 16 and int(key, 16) >= 0
    assert extraction_key(reordered) == key
    assert extraction_key({**spec, "frames": 16}) != key
    assert extraction_key({**spec, "augment": {"seed": 1}}) != key


def _video(root: Path, n: int = 3) -> Video:
    frames = tuple(sorted((root / "grab" / "v1").glob("*.jpg")))
    return Video("grab", 0, "v1", len(frames), root, frames=frames)


def test_fingerprint_changes_with_any_frame_change(tmp_path: Path):
    folder = tmp_path / "grab" / "v1"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(b"x" * (10 + i))
    base = video_fingerprint(_video(tmp_path))
    assert video_fingerprint(_video(tmp_path)) == base

    st = (folder / "1.jpg").stat()
    os.utime(folder / "1.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    touched = video_fingerprint(_video(tmp_path))
    assert touched != base

    (folder / "3.jpg").write_bytes(b"new")
    added = video_fingerprint(_video(tmp_path))
    assert added not in (base, touched)

    (folder / "0.jpg").unlink()
    assert video_fingerprint(_video(tmp_path)) not in (base, touched, added)


def test_fingerprint_survives_moving_the_dataset(tmp_path: Path):
    for root in (tmp_path / "a", tmp_path / "b"):
        (root / "grab" / "v1").mkdir(parents=True)
        path = root / "grab" / "v1" / "0.jpg"
        path.write_bytes(b"same")
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert video_fingerprint(_video(tmp_path / "a")) == video_fingerprint(_video(tmp_path / "b"))


def test_content_id_differs_per_augmented_copy():
    ids = {content_id("f" * 64, k) for k in range(3)}
    assert len(ids) == 3 and all(len(c) <= 64 and int(c, 16) >= 0 for c in ids)


# ---- shards ----


def test_index_finds_every_content_id(key_dir: Path):
    records = [make_record(sid, CLASSES) for sid in LAYOUT["train"] + LAYOUT["val"]]
    store = ShardStore(key_dir)
    a = store.write_shard(records[:4], DIMS, {"class_names": CLASSES})
    b = store.write_shard(records[4:], DIMS, {"class_names": CLASSES})
    assert a != b and a.suffix == ".h5" and b.suffix == ".h5"
    index = store.index()
    assert set(index) == {r["content_ids"] for r in records}
    for rec in records:
        ref = index[rec["content_ids"]]
        with h5py.File(ref.path, "r") as h5:
            assert h5["sequence_ids"][ref.row].decode() == rec["sequence_ids"]
            np.testing.assert_array_equal(h5["embeddings"][ref.row], rec["embeddings"])


def test_stale_tmp_is_ignored_and_cleaned_but_a_live_writers_tmp_is_kept(key_dir: Path):
    store = ShardStore(key_dir)
    store.write_shard([make_record("grab/v1", CLASSES)], DIMS, {"class_names": CLASSES})
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = shards_mod._host_tag()
    stale = store.dir / f"shard-1-{host}-{int(dead.stdout)}-0.h5.tmp"
    live = store.dir / f"shard-2-{host}-{os.getpid()}-0.h5.tmp"
    for tmp in (stale, live):
        tmp.write_bytes(b"half-written HDF5")
    index = store.index()
    assert list(index) == [cid_of("grab/v1")]
    assert not stale.exists()
    assert live.exists()


def test_interrupted_shard_write_leaves_no_shard(key_dir: Path, monkeypatch: pytest.MonkeyPatch):
    def crash(tmp: Path, final: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shards_mod, "publish", crash)
    store = ShardStore(key_dir)
    with pytest.raises(CacheError, match=r"shards/shard-.*\.h5\.tmp: No space left on device"):
        store.write_shard([make_record("grab/v1", CLASSES)], DIMS, {"class_names": CLASSES})
    assert list(store.dir.iterdir()) == []
    assert store.index() == {}


def test_write_shard_refuses_wrong_shapes(key_dir: Path):
    rec = make_record("grab/v1", CLASSES)
    rec["embeddings"] = rec["embeddings"][:, :11]
    with pytest.raises(ValueError, match="embeddings"):
        ShardStore(key_dir).write_shard([rec], DIMS, {"class_names": CLASSES})


# ---- assembly ----


def test_assembly_copies_chunks_byte_identically(key_dir: Path):
    members, records = write_cache(key_dir, LAYOUT)
    index = ShardStore(key_dir).index()
    for split, cids in members.items():
        with h5py.File(key_dir / f"{split}.h5", "r") as out:
            for i, cid in enumerate(cids):
                ref = index[cid]
                with h5py.File(ref.path, "r") as shard:
                    for name in CHUNKED:
                        tail = (0,) * (len(out[name].shape) - 1)
                        assert out[name].id.read_direct_chunk((i, *tail)) == shard[name].id.read_direct_chunk(
                            (ref.row, *tail)
                        )
                        np.testing.assert_array_equal(out[name][i], records[cid][name])
                assert out["sequence_ids"][i].decode() == records[cid]["sequence_ids"]
                assert out["content_ids"][i].decode() == cid
                assert out["aug_index"][i] == records[cid]["aug_index"]


def test_assembly_remaps_labels_by_class_name(key_dir: Path):
    store = ShardStore(key_dir)
    # Two shards written with different class lists (e.g. a class folder added between runs).
    store.write_shard([make_record("tap/v1", ["tap", "grab"])], DIMS, {"class_names": ["tap", "grab"]})
    store.write_shard([make_record("grab/v2", ["grab"])], DIMS, {"class_names": ["grab"]})
    final = ["grab", "swipe", "tap"]
    assemble_splits(key_dir, {"train": [cid_of("tap/v1"), cid_of("grab/v2")]}, final, meta_for(key_dir))
    with h5py.File(key_dir / "train.h5", "r") as h5:
        assert h5["labels"][...].tolist() == [2, 0]
        assert json.loads(h5.attrs["class_names"]) == final


def test_empty_splits_are_written_and_plain(key_dir: Path):
    write_cache(key_dir, LAYOUT)
    manifest = read_manifest(key_dir)
    assert manifest["complete"] is True
    assert manifest["splits"]["test"] == {"file": "test.h5", "count": 0, "sequence_ids": []}
    assert manifest["splits"]["val"]["sequence_ids"] == LAYOUT["val"]
    for split, n in (("train", 4), ("val", 2), ("test", 0)):
        with h5py.File(key_dir / f"{split}.h5", "r") as h5:  # plain h5py, default options
            for name, (shape, dtype) in field_specs(DIMS).items():
                ds = h5[name]
                assert ds.shape == (n, *shape) and ds.dtype == dtype
                assert ds.dtype.kind != "O" and h5py.check_vlen_dtype(ds.dtype) is None
                assert h5py.check_string_dtype(ds.dtype) is None or h5py.check_string_dtype(ds.dtype).length
            assert json.loads(h5.attrs["split"]) == split  # every root attribute is JSON text


def test_assembly_is_a_noop_when_nothing_changed(key_dir: Path):
    members, _ = write_cache(key_dir, LAYOUT)
    before = {p.name: p.stat().st_ino for p in key_dir.glob("*.h5")}
    manifest_before = (key_dir / "manifest.json").read_bytes()
    again = assemble_splits(key_dir, members, CLASSES, {**meta_for(key_dir), "config": {"workers": 9}})
    assert again["unchanged"] is True
    assert {p.name: p.stat().st_ino for p in key_dir.glob("*.h5")} == before
    assert (key_dir / "manifest.json").read_bytes() == manifest_before

    moved = {"train": members["train"][:-1], "val": members["val"], "test": members["train"][-1:]}
    result = assemble_splits(key_dir, moved, CLASSES, meta_for(key_dir))
    assert result["unchanged"] is False and result["counts"] == {"train": 3, "val": 2, "test": 1}
    assert result["chunks_copied"] == 6 * len(CHUNKED) and result["recompressed"] == 0
    assert open_cache(key_dir).counts == {"train": 3, "val": 2, "test": 1}


def test_manifest_is_incomplete_during_assembly_and_written_last(key_dir: Path, monkeypatch):
    members, _ = write_cache(key_dir, LAYOUT)
    events: list[tuple[str, object]] = []
    real_publish = core.atomic.publish

    def spy(tmp: Path, final: Path) -> None:
        real_publish(tmp, final)
        state = read_manifest(key_dir)["complete"] if final.name == "manifest.json" else None
        events.append((final.name, state))

    monkeypatch.setattr(core.atomic, "publish", spy)  # the manifest is written through core.atomic
    monkeypatch.setattr(assemble_mod, "publish", spy)
    swapped = {"train": members["train"], "val": members["val"][::-1], "test": []}
    assemble_splits(key_dir, swapped, CLASSES, meta_for(key_dir))
    assert events == [
        ("manifest.json", False),
        ("train.h5", None),
        ("val.h5", None),
        ("test.h5", None),
        ("manifest.json", True),
    ]


def test_crash_during_assembly_leaves_an_incomplete_cache(key_dir: Path, monkeypatch):
    members, _ = write_cache(key_dir, LAYOUT)
    real = assemble_mod._write_split

    def crash_on_val(path: Path, *args, **kwargs):
        if path.name == "val.h5":
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(assemble_mod, "_write_split", crash_on_val)
    with pytest.raises(KeyboardInterrupt):
        assemble_splits(key_dir, {**members, "val": members["val"][:1]}, CLASSES, meta_for(key_dir))
    assert read_manifest(key_dir)["complete"] is False
    with pytest.raises(CacheError, match="incomplete"):
        open_cache(key_dir)
    monkeypatch.setattr(assemble_mod, "_write_split", real)
    assert assemble_splits(key_dir, members, CLASSES, meta_for(key_dir))["unchanged"] is False
    assert open_cache(key_dir).counts == {"train": 4, "val": 2, "test": 0}


def test_assembly_refuses_missing_sequences_and_leaking_videos(key_dir: Path):
    write_cache(key_dir, LAYOUT)
    with pytest.raises(CacheError, match="not stored"):
        assemble_splits(key_dir, {"train": [cid_of("grab/never")]}, CLASSES, meta_for(key_dir))
    leak = {"train": [cid_of("grab/v1")], "val": [cid_of("grab/v1#a1")]}
    with pytest.raises(ValueError, match="grab/v1"):
        assemble_splits(key_dir, leak, CLASSES, meta_for(key_dir))
    assert read_manifest(key_dir)["complete"] is True  # refused before touching anything


# ---- lock ----

HOLD = """
import sys
from cache.lock import CacheLock
with CacheLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_lock_refuses_a_second_holder_naming_its_pid(key_dir: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(key_dir)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CacheError) as err:
            with CacheLock(key_dir):
                pass
        message = str(err.value)
        assert f"pid {holder.pid}" in message and "--wait-lock" in message and "\n" not in message
    finally:
        holder.communicate("\n", timeout=30)
    with CacheLock(key_dir) as lock:  # released when the holder exits
        assert lock.took_over is None


def test_lock_left_by_a_dead_process_is_taken_over(key_dir: Path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    key_dir.mkdir(parents=True)
    info = {
        "pid": int(dead.stdout),
        "host": "somewhere",
        "command": "extract",
        "since": "2020-01-01T00:00:00",
    }
    (key_dir / ".lock").write_text(json.dumps(info))
    with CacheLock(key_dir) as lock:
        assert lock.took_over == info
        assert json.loads((key_dir / ".lock").read_text())["pid"] == os.getpid()


def test_a_shard_field_of_another_row_shape_is_a_damaged_shard_not_a_traceback(tmp_path):
    """A damaged dataspace gives a field rows of another shape: assembly names the shard, completes none."""
    from faults import synthetic

    key_dir = tmp_path / "0123456789abcdef"
    members = synthetic.write_key_dir(key_dir, per_class=2, shard_size=6)
    shard = sorted((key_dir / "shards").glob("*.h5"))[0]
    with h5py.File(shard, "r+") as h5:
        n, frames, width = h5["swav"].shape
        del h5["swav"]
        h5.create_dataset(
            "swav", data=np.zeros((n, frames, width // 2), np.float16), chunks=(1, frames, width // 2),
            shuffle=True, compression="gzip", fletcher32=True,
        )  # fmt: skip
    with pytest.raises(CacheError) as caught:
        assemble_splits(key_dir, members, synthetic.CLASSES, synthetic.meta(key_dir.name))
    message = str(caught.value)
    assert "\n" not in message and shard.name in message and "swav: rows of shape" in message
    assert json.loads((key_dir / "manifest.json").read_text())["complete"] is False  # says incomplete


def test_damaged_filter_parameters_of_a_shard_field_are_a_damaged_shard(tmp_path, monkeypatch):
    """h5py raises IndexError parsing a deflate filter whose parameters were lost (found by make fuzz)."""
    from faults import synthetic

    key_dir = tmp_path / "0123456789abcdef"
    members = synthetic.write_key_dir(key_dir, per_class=2, shard_size=6)
    real = assemble_mod._filters

    def parse(ds):
        if "/shards/" in ds.file.filename and ds.name == "/swav":
            raise IndexError("tuple index out of range")
        return real(ds)

    monkeypatch.setattr(assemble_mod, "_filters", parse)
    with pytest.raises(CacheError) as caught:
        assemble_splits(key_dir, members, synthetic.CLASSES, synthetic.meta(key_dir.name))
    message = str(caught.value)
    assert "\n" not in message and "/shards/shard-" in message and "swav (its storage settings)" in message
