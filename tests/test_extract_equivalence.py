"""The batched extractor gives the same 12-channel block as a plain one-image-at-a-time loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extract.channels import NUM_CHANNELS
from extract.encode import FrameEncoder
from extract.streams import preset_models
from models.encoders import create_encoder


@pytest.fixture(scope="module")
def encoders():
    return {role: create_encoder(name, "random", seed=3) for role, name in preset_models("tiny").items()}


def _frames(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8)  # (N, S, S, 3)


def reference_embeddings(encoders, frames: torch.Tensor) -> np.ndarray:
    """One frame, one view, one encoder call at a time; halves sliced and chunks padded by hand."""
    vit, cnn = encoders["vit"], encoders["cnn"]
    out = []
    with torch.inference_mode():
        for frame in frames:
            img = frame.permute(2, 0, 1).float()[None] / 255  # (1, 3, S, S)
            half = img.shape[-1] // 2
            views = {"left": img[..., :half], "right": img[..., half:], "whole": img}
            v = {k: vit(vit.prepare(x))[0].numpy() for k, x in views.items()}  # (D,)
            c = {k: cnn(cnn.prepare(x))[0].numpy() for k, x in views.items()}  # (C,)
            d = v["whole"].shape[0]
            chunks = {}
            for k, feat in c.items():
                padded = np.zeros(3 * d, dtype=np.float32)
                padded[: feat.shape[0]] = feat
                chunks[k] = [padded[i * d : (i + 1) * d] for i in range(3)]
            rows = [v["left"], v["right"], *chunks["left"], *chunks["right"], v["whole"], *chunks["whole"]]
            out.append(np.stack(rows))
    return np.stack(out)  # (N, 12, D)


def test_batched_equals_reference_loop(encoders):
    frames = _frames(5, 96)
    batched = FrameEncoder(encoders, torch.device("cpu"))(frames)["embeddings"]
    ref = reference_embeddings(encoders, frames)
    assert batched.shape == ref.shape == (5, NUM_CHANNELS, encoders["vit"].out_dim)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(
        batched.astype(np.float16), ref.astype(np.float16), rtol=2e-3, atol=2e-3 * scale
    )


def test_mirrored_halves_give_identical_left_and_right_channels(encoders):
    frames = _frames(3, 96, seed=1)
    frames[:, :, 48:] = frames[:, :, :48]  # right half is a copy of the left half
    emb = FrameEncoder(encoders, torch.device("cpu"))(frames)["embeddings"]
    np.testing.assert_allclose(emb[:, 0], emb[:, 1], rtol=1e-5, atol=1e-6)  # ViT left == right
    np.testing.assert_allclose(emb[:, 2:5], emb[:, 5:8], rtol=1e-5, atol=1e-6)  # CNN chunks
    assert not np.allclose(emb[:, 0], emb[:, 8])  # the whole view is a different image


def test_padded_tail_of_last_cnn_chunk_is_exactly_zero(encoders):
    emb = FrameEncoder(encoders, torch.device("cpu"))(_frames(2, 96, seed=2))["embeddings"]
    d, c = encoders["vit"].out_dim, encoders["cnn"].out_dim
    tail = c - 2 * d  # valid entries in the third chunk
    assert 0 < tail < d
    for last_chunk in (4, 7, 11):
        assert np.all(emb[:, last_chunk, tail:] == 0)
        assert np.any(emb[:, last_chunk, :tail] != 0)


def test_dino_and_swav_streams_have_their_shapes_and_a_box_inside_the_frame(encoders):
    out = FrameEncoder(encoders, torch.device("cpu"))(_frames(4, 96, seed=4))
    h, w = encoders["dino"].attn_hw
    assert out["dino_cls"].shape == (4, encoders["dino"].out_dim)
    assert out["dino_attention"].shape == (4, h, w)
    assert out["swav"].shape == (4, encoders["swav"].out_dim)
    boxes = out["swav_boxes"]
    assert boxes.shape == (4, 4)
    assert np.all((boxes >= 0) & (boxes <= 1))
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
