"""The input kinds the fuzz suite damages: every file the product reads, one registration each.

Each ``make`` writes a small good file with the product's own writers; each ``consume`` calls what
the CLI calls on it and returns a summary that two equal inputs share (hashes of arrays, dicts).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from fuzz.mutate import damaged_documents, json_documents
from fuzz.registry import Refused, Sample, fuzz_kind

CLASSES = ["fist", "palm", "peace"]


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _h5_digest(path: Path) -> str:
    with h5py.File(path, "r", locking=False) as h5:
        return _digest({k: h5[k][()] for k in h5})


def _verified(key_dir: Path) -> None:
    """``cache verify``'s faults as a refusal (the CLI prints them and exits 2)."""
    from cache.verify import verify_cache

    faults = verify_cache(key_dir)
    if faults:
        raise Refused("FAULTS\n" + "\n".join(faults))


# ---------------------------------------------------------------- the cache: split file and manifest


def _cache(folder: Path) -> Sample:
    """A cache as extract leaves it: shards, then split files assembled from them and the manifest."""
    from faults import synthetic

    from cache.assemble import assemble_splits

    key_dir = folder / "0123456789abcdef"
    members = synthetic.write_key_dir(key_dir, per_class=3, shard_size=9)
    assemble_splits(key_dir, members, synthetic.CLASSES, synthetic.meta(key_dir.name))
    return Sample(key_dir / "train.h5", key_dir)


def _cache_view(key_dir: Path) -> dict[str, Any]:
    """What train and evaluate read: open_cache's view, then every item of every split."""
    from cache.reader import CacheDataset, open_cache

    info = open_cache(key_dir)
    view: dict[str, Any] = {"key": info.key, "classes": info.class_names, "dims": info.dims.to_json()}
    for split, path in info.splits.items():
        ds = CacheDataset(path, ("embeddings", "dino_cls", "swav"))
        items = [ds[i] for i in range(len(ds))]
        view[split] = _digest({f"{i}/{k}": v.numpy() for i, it in enumerate(items) for k, v in it.items()})
    return view


@fuzz_kind("split file (train.h5)", changed_ok=False, make=_cache)
def consume_split_file(sample: Sample) -> Any:
    _verified(sample.folder)  # a clean verify must mean: the data is what was written
    return _cache_view(sample.folder)


def _manifest(folder: Path) -> Sample:
    s = _cache(folder)
    return Sample(s.folder / "manifest.json", s.folder)


def _yaml_docs(good: bytes):
    return damaged_documents(
        yaml.safe_load(good), lambda d: yaml.safe_dump(d, allow_unicode=True, sort_keys=False)
    )


@fuzz_kind("manifest.json", changed_ok=False, make=_manifest, text=json_documents)
def consume_manifest(sample: Sample) -> Any:
    view = _cache_view(sample.folder)  # train/evaluate: open_cache refuses what it cannot use
    _verified(sample.folder)
    return view


# ---------------------------------------------------------------- shards, key.json, splits.json


def _shard(folder: Path) -> Sample:
    from faults import synthetic

    key_dir = folder / "0123456789abcdef"
    members = synthetic.write_key_dir(key_dir, per_class=2, shard_size=6)
    (folder / "members.json").write_text(json.dumps(members))
    shard = sorted((key_dir / "shards").glob("*.h5"))[0]
    return Sample(shard, key_dir, {"members": members})


@fuzz_kind("shard", changed_ok=False, make=_shard)
def consume_shard(sample: Sample) -> Any:
    """What extract does with the shards of an earlier run: index them, assemble, then verify."""
    from faults import synthetic

    from cache.assemble import assemble_splits
    from cache.shards import ShardStore

    key_dir = sample.folder
    for name in ("train.h5", "val.h5", "test.h5", "manifest.json"):
        (key_dir / name).unlink(missing_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = ShardStore(key_dir).index()
    skipped = [str(w.message) for w in caught if "unreadable shard skipped" in str(w.message)]
    if skipped:
        raise Refused(skipped[0])  # extract recomputes that shard's sequences: nothing damaged is used
    members = {s: [c for c in ids if c in index] for s, ids in sample.context["members"].items()}
    assemble_splits(key_dir, members, synthetic.CLASSES, synthetic.meta(key_dir.name))
    _verified(key_dir)
    return {s: _h5_digest(key_dir / f"{s}.h5") for s in ("train", "val", "test")}


def _key_json(folder: Path) -> Sample:
    from bench.synthetic import Sizes

    folder.mkdir(parents=True, exist_ok=True)
    dims = Sizes(frames=4, embed_dim=16, dino_dim=8, attn_hw=(4, 4), swav_dim=12, max_hands=2).dims()
    path = folder / "key.json"
    path.write_text(json.dumps({"key": "0123456789abcdef", "spec": {"frames": 4}, "dims": dims.to_json()}))
    return Sample(path, folder)


@fuzz_kind("key.json", changed_ok=True, make=_key_json, text=json_documents)
def consume_key_json(sample: Sample) -> Any:
    from types import SimpleNamespace

    from extract.run import _load_dims

    plan = SimpleNamespace(key="0123456789abcdef", key_spec={"frames": 4})  # what a rebuilt key.json holds
    return _load_dims(sample.folder, plan).to_json()


def _splits_json(folder: Path) -> Sample:
    from data.splits import save_splits

    assignment = {f"{c}/v{i}": ("train", "val", "test")[i % 3] for c in CLASSES for i in range(4)}
    path = folder / "splits.json"
    save_splits(path, assignment, {"root": "data", "val": 0.2, "test": 0.1, "seed": 0})
    return Sample(path, folder)


@fuzz_kind("splits.json", changed_ok=True, make=_splits_json, text=json_documents)
def consume_splits_json(sample: Sample) -> Any:
    from data.splits import load_splits

    return load_splits(sample.path)


# ---------------------------------------------------------------- config YAML


def _config(folder: Path) -> Sample:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "data": "data",
        "frames": 8,
        "image_size": 64,
        "val": 0.2,
        "preset": "tiny",
        "weights": "random",
        "flip_swap": ["swipe_left:swipe_right"],
        "group_regex": "^(s\\d+)_",
        "workers": 0,
        "fingerprint": "stat",
    }
    path = folder / "extract.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return Sample(path, folder)


@fuzz_kind("config YAML (--config)", changed_ok=True, make=_config, text=_yaml_docs)
def consume_config(sample: Sample) -> Any:
    import pipeline
    from cli.config_args import build_config
    from core.config import config_to_dict
    from extract.config import ExtractConfig

    ns = pipeline.build_parser().parse_args(["extract", "--config", str(sample.path)])
    return config_to_dict(build_config(ExtractConfig, ns))


# ---------------------------------------------------------------- checkpoint


def _checkpoint(folder: Path) -> Sample:
    """What train saves, with small heads: weights, args, config, classes and the cache record."""
    import torch

    from models.heads.model import GestureModel, ModelArgs
    from train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    args = ModelArgs(
        num_classes=3,
        streams=("twelve", "dino-swav"),
        inputs={"embeddings": (12, 16), "dino_cls": (8,), "swav": (12,)},
        hidden=8,
    )
    model = GestureModel.from_args(args.to_dict())
    payload = {
        "state_dict": model.state_dict(),
        "model_args": args.to_dict(),
        "config": {"cache": "cache/0123456789abcdef", "batch_size": 4, "workers": 0},
        "class_names": CLASSES,
        "cache": {"key": "0123456789abcdef", "class_names": CLASSES, "dims": {"frames": 4}},
        "trained_videos": [f"{c}/v{i}" for c in CLASSES for i in range(3)],
        "best": {"metric": "acc", "value": 0.75, "epoch": 1},
    }
    path = folder / "best.pt"
    save_checkpoint(path, payload)
    return Sample(path, folder)


@fuzz_kind("checkpoint (best.pt)", changed_ok=False, make=_checkpoint)
def consume_checkpoint(sample: Sample) -> Any:
    import torch

    from train.checkpoint import load_checkpoint
    from train.evaluate import model_from_checkpoint

    ckpt = load_checkpoint(sample.path)
    model = model_from_checkpoint(ckpt, torch.device("cpu"), sample.path)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    return (_digest(state), list(ckpt["class_names"]), json.dumps(ckpt["cache"], sort_keys=True, default=str))


# ---------------------------------------------------------------- frames and videos


def _image(suffix: str):
    def make(folder: Path) -> Sample:
        from PIL import Image

        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        pixels = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
        path = folder / f"v1_frame_0.{suffix}"
        Image.fromarray(pixels).save(path)
        return Sample(path, folder)

    return make


def _frame(sample: Sample) -> Any:
    from data.frames import load_image

    return _digest({"frame": load_image(sample.path)})


fuzz_kind("JPEG frame", changed_ok=True, make=_image("jpg"))(_frame)
fuzz_kind("PNG frame", changed_ok=True, make=_image("png"))(_frame)


def _mp4(folder: Path) -> Sample:
    import av

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "v1.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(8):
            img = np.full((32, 32, 3), i * 30, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Sample(path, folder)


@fuzz_kind("MP4 video", changed_ok=True, make=_mp4)
def consume_mp4(sample: Sample) -> Any:
    from data.frames import probe_video, read_frames
    from data.sequence import Video

    n = probe_video(sample.path)
    video = Video("wave", 0, "v1", n, sample.folder, video_file=sample.path)
    return _digest({"frames": read_frames(video, np.arange(min(n, 8)))})
