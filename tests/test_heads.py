"""The trainable heads: shapes, masking, gating and gradient flow."""

from __future__ import annotations

import pytest
import torch

from models.heads import (
    STREAM_FIELDS,
    ChannelAttention,
    GatedFusion,
    GestureModel,
    ModelArgs,
    ResidualLSTM,
    SequenceAttention,
    TemporalCNN,
)

B, T, C, D, DD, S, H = 3, 8, 12, 16, 8, 12, 16


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[0, 5:] = False  # a short video: trailing repeats
    valid[1, 1::2] = False  # repeats spread through the sequence
    return {
        "valid": valid,
        "embeddings": torch.randn(B, T, C, D, generator=g),
        "dino_cls": torch.randn(B, T, DD, generator=g),
        "swav": torch.randn(B, T, S, generator=g),
    }


def _model(streams: str, dropout: float = 0.0) -> GestureModel:
    torch.manual_seed(0)
    args = ModelArgs(
        num_classes=4, streams=streams, embed_dim=D, dino_dim=DD, swav_dim=S, hidden=H, dropout=dropout
    )
    return GestureModel(args)


def test_block_shapes():
    x = torch.randn(B, T, C, D)
    pooled, w = ChannelAttention(D, C, hidden=8)(x)
    assert pooled.shape == (B, T, D) and w.shape == (B, T, C)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, T))
    torch.testing.assert_close(pooled, (w.unsqueeze(-1) * x).sum(2))  # a convex mix of the channels
    cnn = TemporalCNN(D, H)
    assert cnn(pooled).shape == (B, T, H)
    lstm = ResidualLSTM(H, H)
    assert lstm(torch.randn(B, T, H)).shape == (B, T, 2 * H) and lstm.out_dim == 2 * H


@pytest.mark.parametrize("streams", list(STREAM_FIELDS))
def test_model_outputs(streams):
    model = _model(streams).eval()
    logits, aux = model(**_inputs())
    assert logits.shape == (B, 4)
    assert aux["embedding"].shape == (B, model.embed_dim)
    assert aux["frame_weights"].shape == (B, T)
    if streams != "dino-swav":
        assert aux["channel_weights"].shape == (B, T, C)
    if streams != "twelve":
        assert aux["frame_gate"].shape == (B, T, H)
    assert ("stream_gate" in aux) == (streams == "all")


def test_masked_frames_get_exactly_zero_attention():
    valid = _inputs()["valid"]
    att = SequenceAttention(H)
    x = torch.randn(B, T, H)
    pooled, w = att(x, valid)
    assert pooled.shape == (B, H) and w.shape == (B, T)
    assert torch.all(w[~valid] == 0)
    torch.testing.assert_close(w.sum(1), torch.ones(B))
    x_changed = x.clone()
    x_changed[~valid] = 1e3  # whatever sits in a masked frame must not reach the summary
    torch.testing.assert_close(att(x_changed, valid)[0], pooled)


def test_full_model_frame_weights_respect_mask():
    inputs = _inputs()
    for streams in STREAM_FIELDS:
        _, aux = _model(streams).eval()(**inputs)
        assert torch.all(aux["frame_weights"][~inputs["valid"]] == 0)
        if "dino_frame_weights" in aux:
            assert torch.all(aux["dino_frame_weights"][~inputs["valid"]] == 0)


def test_gated_fusion_is_a_convex_combination():
    torch.manual_seed(0)
    fusion = GatedFusion(DD, S, H)
    a, b = torch.randn(B, T, DD), torch.randn(B, T, S)
    out, g = fusion(a, b)
    assert out.shape == g.shape == (B, T, H)
    assert torch.all((g > 0) & (g < 1))
    pa, pb = fusion.project(a, b)
    torch.testing.assert_close(out, g * pa + (1 - g) * pb)
    lo, hi = torch.minimum(pa, pb), torch.maximum(pa, pb)
    assert torch.all(out >= lo - 1e-6) and torch.all(out <= hi + 1e-6)


@pytest.mark.parametrize("streams", list(STREAM_FIELDS))
def test_gradients_reach_every_parameter_of_the_used_streams(streams):
    model = _model(streams).train()
    logits, _ = model(**_inputs())
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    if streams == "twelve":  # unused streams hold no weights at all
        assert not names & {"frame_fusion", "dino_swav_attention", "stream_fusion"}
    if streams == "dino-swav":
        assert not names & {"channel_attention", "cnn", "lstm", "frame_attention", "stream_fusion"}


@pytest.mark.parametrize("streams,unused", [("twelve", ("dino_cls", "swav")), ("dino-swav", ("embeddings",))])
def test_unused_streams_do_not_affect_the_output(streams, unused):
    model = _model(streams).eval()
    inputs = _inputs()
    changed = {**inputs, **{k: torch.randn_like(inputs[k]) * 100 for k in unused}}
    torch.testing.assert_close(model(**inputs)[0], model(**changed)[0])


def test_model_rebuilds_from_plain_args():
    model = _model("all").eval()
    args = model.args.to_dict()
    assert all(isinstance(v, str | int | float) for v in args.values())
    clone = GestureModel.from_args(args).eval()
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone(**_inputs())[0], model(**_inputs())[0])
    with pytest.raises(ValueError, match="streams"):
        ModelArgs(num_classes=2, streams="rgb")
