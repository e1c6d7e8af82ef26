"""Test-wide environment: never touch the network, keep ultralytics' settings in a temp dir."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout; pytest imports it (pyproject `pythonpath`)

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see pipeline.py
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["YOLO_OFFLINE"] = "1"


def _scratch_dir(prefix: str) -> str:
    """A temp folder for this session's settings, removed when the session ends (each run left two)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


if "YOLO_CONFIG_DIR" not in os.environ:
    os.environ["YOLO_CONFIG_DIR"] = _scratch_dir("yolo-config-")
# Weight-file digests are memoised per user; tests keep theirs out of the user's cache folder.
if "GESTURE_DIGEST_MEMO" not in os.environ:
    os.environ["GESTURE_DIGEST_MEMO"] = os.path.join(_scratch_dir("digests-"), "sha256.json")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: full-size models or long runs; deselect with -m 'not slow'")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    """A small synthetic gesture dataset (6 classes x 3 videos, 64x48 frames), written once per session."""
    from data.demo import write_demo_dataset

    root = tmp_path_factory.mktemp("demo") / "data"
    write_demo_dataset(root, size=(64, 48), videos_per_class=3, seed=0)
    return root


def tiny_extract_argv(data: Path, cache_dir: Path, **flags: object) -> list[str]:
    """``extract`` CLI arguments for the same tiny, offline run as ``tiny_extract_config``.

    ``flags`` override or add options by their config name (``shard_size=2`` -> ``--shard-size 2``).
    """
    options = {
        "preset": "tiny",
        "weights": "random",
        "frames": 8,
        "image_size": 64,
        "workers": 0,
        "val": 0.34,
    }
    options.update(flags)
    argv = ["extract", "--data", str(data), "--cache-dir", str(cache_dir)]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def tiny_extract_config(data: Path, cache_dir: Path, **overrides):
    """An offline, fast ExtractConfig: tiny encoders with random weights, small frames, no workers."""
    from data.config import DataConfig
    from extract.config import ExtractConfig

    data_keys = {
        "val",
        "test",
        "seed",
        "frames",
        "image_size",
        "augment_copies",
        "group_regex",
        "on_bad_frame",
        "flip_swap",
    }
    d = {
        "data": data,
        "frames": 8,
        "image_size": 64,
        "val": 0.34,
        **{k: v for k, v in overrides.items() if k in data_keys},
    }
    rest = {k: v for k, v in overrides.items() if k not in data_keys}
    return ExtractConfig(
        dataset=DataConfig(**d),
        cache_dir=cache_dir,
        preset="tiny",
        weights="random",
        **{"workers": 0, "shard_size": 4, **rest},
    )


def demo_boxes_config(data: Path, cache_dir: Path, **dataset: object):
    """The demo format with its true hand boxes stored by the annotations stream, tiny random encoders and no
    YOLO (``dataset`` adds DataConfig options, e.g. augment_copies)."""
    from data.config import DataConfig
    from extract.config import ExtractConfig

    return ExtractConfig(
        dataset=DataConfig(data=data, frames=16, image_size=32, val=0.34, format="demo", **dataset),
        cache_dir=cache_dir,
        preset="tiny",
        weights="random",
        workers=0,
        encoders="hands=none",
    )


def augmentation_of(sequence_id: str, image_size: int, augment_seed: int = 0):
    """The ``AugmentResult`` extraction gave the copy ``sequence_id`` (flip, distortion), recomputed: the
    recipe's parameters depend on the seed and the copy's size only, never on the pixels."""
    from types import SimpleNamespace

    import numpy as np

    from data.augment import SequenceAugmenter
    from data.sequences import augmentation_seed

    copy = SimpleNamespace(sequence_id=sequence_id, aug_index=0 if "#a" not in sequence_id else 1)
    seed = augmentation_seed(copy, augment_seed)
    return SequenceAugmenter(image_size).augment(np.zeros((1, 8, 8, 3), np.uint8), 0, seed)
