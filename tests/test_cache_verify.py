"""`cache verify`: every kind of damage is found and named by file and dataset; a good cache is clean."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from faults.harness import flip_bytes_in_chunk
from test_cache_store import CLASSES, DIMS, LAYOUT, cid_of, make_record, meta_for, write_cache

from cache.assemble import assemble_splits
from cache.inspect import cache_info, cache_ls
from cache.key import extraction_key
from cache.reader import CacheDataset, open_cache
from cache.shards import ShardStore
from cache.verify import verify_cache
from core.errors import CacheError


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    key_dir = tmp_path / "cache" / extraction_key({"verify": 1})
    write_cache(key_dir, LAYOUT)
    return key_dir


def _one(faults: list[str], *needles: str) -> str:
    hits = [f for f in faults if all(n in f for n in needles)]
    assert hits, f"no fault with {needles} in {faults}"
    return hits[0]


def test_a_good_cache_has_no_faults(key_dir: Path):
    assert verify_cache(key_dir) == []


def test_flipped_bytes_inside_a_compressed_chunk(key_dir: Path):
    flip_bytes_in_chunk(key_dir / "train.h5", "embeddings", 2)
    faults = verify_cache(key_dir)
    assert "[2]" in _one(faults, "train.h5: embeddings: cannot read sequence")
    assert len(faults) == 1
    with pytest.raises(CacheError, match="train.h5"):  # and the reader names the file too
        CacheDataset(key_dir / "train.h5", ("embeddings",))[2]


def test_truncated_split_file(key_dir: Path):
    path = key_dir / "val.h5"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    _one(verify_cache(key_dir), "val.h5")


def test_edited_manifest_count(key_dir: Path):
    path = key_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["splits"]["train"]["count"] = 5
    path.write_text(json.dumps(manifest))
    _one(verify_cache(key_dir), "manifest.json", "count", "train.h5")


def test_nan_in_embeddings(tmp_path: Path):
    key_dir = tmp_path / "nan"
    rec = make_record("tap/v9", CLASSES)
    rec["embeddings"][1, 3, 2] = np.nan
    ShardStore(key_dir).write_shard([rec], DIMS, {"class_names": CLASSES})
    assemble_splits(key_dir, {"val": [cid_of("tap/v9")]}, CLASSES, meta_for(key_dir))
    assert _one(verify_cache(key_dir), "val.h5: embeddings: NaN").endswith("[0]")


def test_a_video_in_two_splits(key_dir: Path):
    # Rewrite val's first sequence id to a video that train holds, keeping the manifest in step.
    with h5py.File(key_dir / "val.h5", "r+") as h5:
        h5["sequence_ids"][0] = b"grab/v1"
    path = key_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["splits"]["val"]["sequence_ids"][0] = "grab/v1"
    path.write_text(json.dumps(manifest))
    faults = verify_cache(key_dir)
    assert faults == [_one(faults, "train.h5/val.h5: sequence_ids: video grab/v1")]


@pytest.mark.parametrize(
    ("dataset", "value", "needle"),
    [
        ("labels", 7, "label outside"),
        ("valid", np.zeros(4, np.uint8), "without any valid frame"),
        ("valid", np.full(4, 2, np.uint8), "not in {0, 1}"),
        ("hand_count", np.full(4, 3, np.uint8), "outside its declared range (0.0, 2.0)"),
        ("swav_boxes", np.full((4, 4), np.inf, np.float32), "NaN or Inf"),
    ],
)
def test_bad_values_are_named_by_file_and_dataset(key_dir: Path, dataset: str, value, needle: str):
    with h5py.File(key_dir / "train.h5", "r+") as h5:
        h5[dataset][1] = value
    faults = verify_cache(key_dir)
    assert faults == [_one(faults, f"train.h5: {dataset}:", needle, "[1]")]


def test_ids_that_disagree_with_the_manifest_and_an_incomplete_flag(key_dir: Path):
    path = key_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["splits"]["val"]["sequence_ids"].reverse()
    manifest["complete"] = False
    path.write_text(json.dumps(manifest))
    faults = verify_cache(key_dir)
    _one(faults, "manifest.json", "complete")
    _one(faults, "manifest.json", "splits.val.sequence_ids", "val.h5")


def test_wrong_dtype_and_a_virtual_dataset(key_dir: Path, tmp_path: Path):
    with h5py.File(key_dir / "train.h5", "r+") as h5:
        labels = h5["labels"][...]
        del h5["labels"]
        h5["labels"] = labels.astype(np.int32)
    layout = h5py.VirtualLayout(shape=(2, 4), dtype="uint8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "gone.h5"), "valid", shape=(2, 4))
    with h5py.File(key_dir / "val.h5", "r+") as h5:
        del h5["valid"]
        h5.create_virtual_dataset("valid", layout, fillvalue=1)
    faults = verify_cache(key_dir)
    _one(faults, "train.h5: labels:", "int32")
    _one(faults, "val.h5: valid: virtual dataset")


def test_missing_manifest_and_dir(tmp_path: Path, key_dir: Path):
    assert verify_cache(tmp_path / "nope") == [f"{tmp_path / 'nope'}: cache directory not found"]
    (key_dir / "shards").rename(tmp_path / "elsewhere")
    (key_dir / "manifest.json").unlink()
    assert verify_cache(key_dir) == [
        f"{key_dir}: no manifest.json, so not a cache key directory; see `pipeline.py cache ls`"
    ]


@pytest.mark.parametrize("state", ["shards only", "marked incomplete"])
def test_an_interrupted_extraction_is_called_unfinished_not_damaged(key_dir: Path, state: str, capsys):
    """A key directory an interrupted extract left (its shards, and no manifest, or one not yet marked
    complete) is resumed by re-running extract: info, verify and train say so, and verify blames no file."""
    import pipeline
    from cache.manifest import mark_incomplete

    if state == "shards only":
        for path in key_dir.glob("*.*"):
            path.unlink()
    else:
        mark_incomplete(key_dir)
    assert pipeline.main(["cache", "verify", str(key_dir)]) == 2
    out, err = capsys.readouterr()
    assert "FAULT" not in out and "delete" not in err
    assert "incomplete cache" in err and "re-run the same `pipeline.py extract`" in err
    with pytest.raises(CacheError, match="incomplete cache: an extraction was interrupted"):
        open_cache(key_dir)  # what train and evaluate open
    if state == "shards only":
        with pytest.raises(CacheError, match="incomplete cache: an extraction was interrupted"):
            cache_info(key_dir)
    else:  # a manifest to describe: shown, marked
        assert "complete:   NO (re-run extract)" in cache_info(key_dir).splitlines()


# ---- cache ls / cache info (the read-only `cache` commands beside verify) ----


def test_cache_ls_lists_every_key_with_state_and_counts(key_dir: Path):
    root = key_dir.parent
    (root / "0000000000000000" / "shards").mkdir(parents=True)  # an extraction that never assembled
    (root / "not-a-cache").mkdir()
    lines = cache_ls(root).splitlines()
    assert len(lines) == 2
    incomplete, good = sorted(lines)
    assert incomplete.startswith("0000000000000000") and "INCOMPLETE" in incomplete
    assert good.startswith(key_dir.name) and "complete" in good and "train=4 val=2 test=0" in good
    assert "tiny-vit" in good and " KB" in good
    with pytest.raises(CacheError, match="nope"):
        cache_ls(root / "nope")
    assert cache_ls(key_dir).split() == good.split()  # a key directory given as the root lists itself


def test_cache_ls_and_info_name_the_corpus_a_key_holds(key_dir: Path):
    """Two corpora extracted alike share a key directory, so the listing says whose split files it holds,
    in the format extract read it as (detected where the config says 'auto')."""
    path = key_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"] = {**manifest.get("config", {}), "data": "/corpora/IPN_Hand", "format": "auto"}
    manifest["stream_options"] = {**manifest.get("stream_options", {}), "annotations": "ipn"}
    path.write_text(json.dumps(manifest))
    assert "/corpora/IPN_Hand (ipn)" in cache_ls(key_dir.parent)
    assert "dataset:    /corpora/IPN_Hand (ipn)" in cache_info(key_dir).splitlines()
    assert '  format: "auto"  (read as ipn)' in cache_info(key_dir).splitlines()  # as given, and read as


def test_cache_ls_takes_the_root_as_extract_names_it(key_dir: Path, capsys):
    from pipeline import main

    assert main(["cache", "ls", str(key_dir.parent)]) == 0
    positional = capsys.readouterr().out
    assert main(["cache", "ls", "--cache-dir", str(key_dir.parent)]) == 0
    assert capsys.readouterr().out == positional and key_dir.name in positional


def test_cache_info_reports_layout_classes_size_and_compression(key_dir: Path):
    text = cache_info(key_dir)
    assert f"key:        {key_dir.name}" in text and "complete:   yes" in text
    assert "0 left_vit" in text and "11 whole_cnn_2" in text
    # every stream the cache holds, with the datasets its module declared
    assert "  hands    hand_boxes (2, 6) float32, hand_count () uint8" in text.splitlines()
    assert "  twelve   embeddings (12, 8) float16" in text.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("  ")}
    assert (
        rows["grab"] == ["2", "0", "0"]
        and rows["swipe"] == ["1", "1", "0"]
        and rows["tap"] == ["1", "1", "0"]
    )
    ratio = float(text.split("compression: ")[1].split("x")[0])
    assert ratio > 1.0  # float16 + gzip stores less than raw float32
    with pytest.raises(CacheError, match="manifest"):
        cache_info(key_dir / "shards")


def test_damaged_small_fields_are_caught(key_dir: Path):
    with h5py.File(key_dir / "train.h5", "r+") as h5:
        h5["aug_index"][1] = 3  # grab/v1#a1 is augmented copy 1
        h5["content_ids"][2] = b"\xff" * 64
    faults = verify_cache(key_dir)
    _one(faults, "train.h5: aug_index:", "[1]")
    _one(faults, "train.h5: content_ids:", "[2]")
    assert len(faults) == 2


def test_verify_reports_instead_of_crashing_on_damage_anywhere(key_dir: Path):
    """A byte flipped at spread-out offsets (metadata and data alike) never raises; data flips are found."""
    path = key_dir / "train.h5"
    original = path.read_bytes()
    with h5py.File(path, "r") as h5:
        chunks = [
            (c.byte_offset, c.byte_offset + c.size)
            for ds in h5.values()
            if ds.chunks
            for c in (ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks()))
        ]
    for offset in range(0, len(original), max(1, len(original) // 80)):
        damaged = bytearray(original)
        damaged[offset] ^= 0xFF
        path.write_bytes(bytes(damaged))
        faults = verify_cache(key_dir)  # must not raise
        if any(a <= offset < b for a, b in chunks):
            assert any(f.startswith("train.h5: ") for f in faults), offset
    path.write_bytes(original)
    assert verify_cache(key_dir) == []


@pytest.mark.parametrize("where", ["the cache root", "no such path"])
def test_verify_of_a_path_that_is_no_cache_says_so_and_advises_no_deleting(key_dir: Path, where: str, capsys):
    """`cache verify` given the cache root (or a typo) is not a damaged cache: one line, and never "delete
    the folder", which for the root would mean every cache in it."""
    import pipeline

    path = key_dir.parent if where == "the cache root" else key_dir.parent / "nosuch"
    assert pipeline.main(["cache", "verify", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "FAULT" not in out and "delete" not in err and len(err.strip().splitlines()) == 1
    assert str(path) in err and "cache ls" in err


def test_a_damaged_shard_chunk_is_a_fault_naming_the_shard(key_dir: Path):
    """Split files are assembled by copying the shards' compressed chunks: a damaged shard chunk passed
    verify, then went into the next split files, and came back after they were deleted. verify now
    decodes the shards too, and deleting the named shard leaves a cache that verifies (extract recomputes
    what it held)."""
    shard = ShardStore(key_dir).shard_paths()[0]
    flip_bytes_in_chunk(shard, "embeddings", 1)
    faults = verify_cache(key_dir)
    assert "[1]" in _one(faults, f"shards/{shard.name}: embeddings: cannot read sequence")
    assert len(faults) == 1  # the split files' copies were made before the damage
    shard.unlink()
    assert verify_cache(key_dir) == []


def test_assembly_refuses_an_earlier_runs_damaged_shard_chunk_instead_of_marking_it_complete(key_dir: Path):
    """Re-assembly (a split file deleted, a resume) copied an earlier run's shard chunks as raw bytes: a
    damaged one landed in the split files of a cache marked complete. Those chunks are decoded first."""
    members = {}
    for split in ("train", "val"):
        with h5py.File(key_dir / f"{split}.h5") as h5:
            members[split] = [c.decode() for c in h5["content_ids"][...]]
    shard = ShardStore(key_dir).shard_paths()[0]
    flip_bytes_in_chunk(shard, "embeddings", 1)
    (key_dir / "train.h5").unlink()
    with pytest.raises(CacheError, match=f"{shard}: damaged shard, cannot read embeddings"):
        assemble_splits(key_dir, members, CLASSES, meta_for(key_dir))
    assert json.loads((key_dir / "manifest.json").read_text())["complete"] is False
    shard.unlink()  # the advised repair: extract recomputes what it held; the rest assembles
    kept = {s: [c for c in ids if c in ShardStore(key_dir).index()] for s, ids in members.items()}
    assert assemble_splits(key_dir, kept, CLASSES, meta_for(key_dir))["unchanged"] is False
    assert verify_cache(key_dir) == []


@pytest.mark.parametrize(
    ("field", "value"), [("encoders", 5), ("splits", ["train"]), ("config", "x"), ("class_names", None)]
)
def test_a_hand_edited_manifest_field_is_one_row_and_one_line_not_a_traceback(key_dir: Path, field, value):
    """A manifest field of the wrong kind crashed `cache ls` for the whole root (so no other cache was
    listed) and `cache info` with a traceback; ls marks that one row, info says which file, in one line."""
    other = key_dir.parent / extraction_key({"verify": 2})
    write_cache(other, LAYOUT)
    path = key_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest[field] = value
    path.write_text(json.dumps(manifest))
    rows = dict(line.split(maxsplit=1) for line in cache_ls(key_dir.parent).splitlines())
    listed = "complete" if field == "class_names" else "DAMAGED manifest"  # ls does not read class names
    assert rows[key_dir.name].startswith(listed) and rows[other.name].startswith("complete")
    with pytest.raises(CacheError, match=f"{path}: damaged .*re-run the same extract"):
        cache_info(key_dir)


def test_info_of_a_cache_stopped_while_assembling_its_splits_says_re_run(key_dir: Path):
    # Ctrl-C during assembly leaves {"complete": false, "splits": {}} and no "dims": a KeyError traceback.
    (key_dir / "manifest.json").write_text(json.dumps({"complete": False, "key": key_dir.name, "splits": {}}))
    with pytest.raises(CacheError, match="incomplete cache.*re-run the same"):
        cache_info(key_dir)


# ---- the record files extract writes beside the split files, and split files gone from a complete cache ----


@pytest.fixture
def extracted(key_dir: Path) -> Path:
    """The fixture cache as extract leaves it: the key spec in the manifest (only extract records one) and
    key.json, splits.json and config.yaml beside the split files."""
    spec = {"verify": 1}  # what the key directory's name hashes
    path = key_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "key_spec": spec}))
    (key_dir / "key.json").write_text(json.dumps({"key": key_dir.name, "spec": spec, "dims": DIMS.to_json()}))
    assignment = {sid.split("#")[0]: split for split, ids in LAYOUT.items() for sid in ids}
    (key_dir / "splits.json").write_text(json.dumps({"format": "gesture-splits/1", "assignment": assignment}))
    (key_dir / "config.yaml").write_text("frames: 4\n")
    return key_dir


def _verify_cli(key_dir: Path, capsys) -> tuple[int, list[str], str]:
    """`cache verify`'s exit status, its FAULT/NOTE/OK lines, and its stderr."""
    import pipeline

    status = pipeline.main(["cache", "verify", str(key_dir)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out.splitlines(), err


def test_a_cache_with_its_record_files_verifies(extracted: Path, capsys):
    status, lines, _ = _verify_cli(extracted, capsys)
    assert status == 0 and lines == [f"OK {extracted}"]


def _edit_key_json_dims(path: Path) -> None:
    recorded = json.loads(path.read_text())
    recorded["dims"]["fields"]["embeddings"]["shape"][1] += 1
    path.write_text(json.dumps(recorded))


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (_edit_key_json_dims, "key.json: dims (embeddings) differ from the split files' and manifest.json's"),
        (lambda p: p.write_text('{"dims": '), "key.json: unreadable (JSONDecodeError"),
        (lambda p: p.write_text('{"key": "x"}'), "key.json: unreadable (KeyError"),
        (
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "key": "0" * 16})),
            "key.json: key '0000000000000000' differs from manifest.json's",
        ),
    ],
    ids=["dims edited", "truncated", "no dims", "key edited"],
)
def test_a_key_json_that_disagrees_or_is_unreadable_is_one_fault_line_saying_what_to_do(
    extracted: Path, damage, needle: str, capsys
):
    """A reused extract takes the layout from key.json alone: an edited one made it blame a good shard (and
    advise deleting it). verify names key.json and the repair (extract rebuilds it from the shards)."""
    damage(extracted / "key.json")
    status, lines, err = _verify_cli(extracted, capsys)
    faults = [line for line in lines if line.startswith("FAULT ")]
    assert status == 2 and len(faults) == 1, lines
    assert faults[0].startswith(f"FAULT {needle}")
    assert faults[0].endswith(
        "delete key.json and re-run the same `pipeline.py extract`, which rebuilds it from the shards"
    )
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "status", "kind"),
    [("splits.json", 2, "FAULT"), ("key.json", 0, "NOTE"), ("config.yaml", 0, "NOTE")],
)
def test_a_deleted_record_file_is_named_with_what_to_do(
    extracted: Path, name: str, status: int, kind: str, capsys
):
    """verify said a bare OK with extract's record files deleted. splits.json alone knows the subjects (cache
    info and cross-validation read them): a fault. The manifest repeats key.json and config.yaml: a note."""
    (extracted / name).unlink()
    got, lines, _ = _verify_cli(extracted, capsys)
    said = [line for line in lines if line.startswith(f"{kind} {name}: file missing")]
    assert got == status and len(said) == 1, lines
    assert "re-run the same `pipeline.py extract`" in said[0]
    assert [line for line in lines if line.startswith(("FAULT", "NOTE"))] == said


def test_an_unreadable_config_yaml_is_a_fault_naming_it(extracted: Path, capsys):
    (extracted / "config.yaml").write_text("frames: [4\n")
    status, lines, _ = _verify_cli(extracted, capsys)
    assert status == 2 and lines[0].startswith("FAULT config.yaml: unreadable (")
    assert lines[0].endswith(
        "delete it and re-run the same `pipeline.py extract` to rewrite it "
        "(stored sequences are not recomputed)"
    )


def test_ls_info_and_verify_agree_a_complete_cache_without_its_split_files_is_unusable(key_dir: Path, capsys):
    """`cache ls` listed a cache whose split files were deleted as complete, beside info and verify."""
    import pipeline

    (key_dir / "train.h5").unlink()
    (key_dir / "test.h5").unlink()
    assert pipeline.main(["cache", "ls", str(key_dir.parent)]) == 0
    [row] = capsys.readouterr().out.splitlines()
    assert row.split(maxsplit=1)[1].startswith("INCOMPLETE: split files missing (train.h5, test.h5)")
    info = cache_info(key_dir).splitlines()
    assert (
        "complete:   NO (split files missing: train.h5, test.h5; re-run the same extract to re-assemble them)"
        in info
    )
    assert not [line for line in info if "unreadable" in line]  # said once, not as an errno per file
    status, lines, _ = _verify_cli(key_dir, capsys)
    assert status == 2 and lines == ["FAULT train.h5: file missing", "FAULT test.h5: file missing"]
