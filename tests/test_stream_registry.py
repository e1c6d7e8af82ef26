"""A new stream is one file: a test-only stream flows into the cache, verify, info and a head unedited."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from conftest import tiny_extract_config

from cache.inspect import cache_info
from cache.schema import FieldSpec
from cache.verify import verify_cache
from extract.run import run as extract
from extract.streams import FrameBatch, Stream, StreamOptions, register_stream, unregister_stream
from models.encoders import Encoder, PreprocessConfig, register_encoder, unregister_encoder
from train.config import TrainConfig
from train.fit import run_train as train


class MeanRGB(Encoder):
    """Frames at 8x8 -> their mean colour (B, 3): no weights, so the test knows exactly what is stored."""

    def __init__(self) -> None:
        super().__init__("mean_rgb", 3, PreprocessConfig(input_size=(8, 8)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))  # (B, 3)


class MeanRGBStream(Stream):
    """The whole declaration of the toy stream, as a stream module would hold it."""

    name = "mean_rgb"
    models = {"mean_rgb": {"tiny": "mean_rgb_v1"}}

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        return (FieldSpec("mean_rgb", (encoders["mean_rgb"].out_dim,), bounds=(0.0, 1.0)),)

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        return {"mean_rgb": batch.run("mean_rgb", batch.frames)}


@pytest.fixture
def toy_stream() -> Iterator[None]:
    register_encoder("mean_rgb_v1", role="mean_rgb")(lambda weights: MeanRGB())
    register_stream(MeanRGBStream)
    try:
        yield
    finally:
        unregister_stream("mean_rgb")
        unregister_encoder("mean_rgb_v1")


def test_a_registered_stream_flows_into_cache_verify_info_and_a_head(toy_stream, small_demo, tmp_path):
    cfg = tiny_extract_config(small_demo, tmp_path / "cache", frames=4, encoders="hands=none")
    key_dir = extract(cfg).key_dir
    assert verify_cache(key_dir) == []
    assert "  mean_rgb mean_rgb (3,) float16" in cache_info(key_dir).splitlines()
    with h5py.File(key_dir / "train.h5") as h5:
        stored = h5["mean_rgb"][...].astype(np.float32)  # (N, T, 3)
        emb = h5["embeddings"][...]
    assert stored.shape == (len(emb), 4, 3)
    # Demo gestures are coloured shapes moving on a plain background: frames differ in mean colour.
    assert ((stored >= 0) & (stored <= 1)).all() and stored.std(axis=(0, 1)).min() > 1e-3
    run_dir = train(TrainConfig(cache=key_dir, out=tmp_path / "runs", epochs=1, streams="twelve,mean_rgb"))
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    assert ckpt["model_args"]["streams"] == ["twelve", "mean_rgb"]
    assert ckpt["model_args"]["inputs"]["mean_rgb"] == [3]


def test_without_the_stream_registered_the_cache_has_other_key_and_no_field(small_demo, tmp_path, toy_stream):
    cfg = tiny_extract_config(small_demo, tmp_path / "cache", frames=4, encoders="hands=none")
    from extract.plan import make_plan

    with_toy = make_plan(cfg).key
    unregister_stream("mean_rgb")
    assert make_plan(cfg).key != with_toy  # the key covers every active stream
    register_stream(MeanRGBStream)
    assert make_plan(cfg).key == with_toy


def test_mean_rgb_values_are_the_frames_mean(toy_stream):
    from extract.encode import FrameEncoder

    frames = torch.zeros(2, 16, 16, 3, dtype=torch.uint8)
    frames[0, ..., 0] = 255  # red
    frames[1, :8] = 255  # top half white
    out = FrameEncoder({"mean_rgb": MeanRGB()}, torch.device("cpu"))(frames)
    assert set(out) == {"mean_rgb"}  # only the streams whose encoders were given
    np.testing.assert_allclose(out["mean_rgb"], [[1, 0, 0], [0.5, 0.5, 0.5]], atol=1e-6)
