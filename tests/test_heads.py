"""The trainable heads: shapes, masking, gating and gradient flow."""

from __future__ import annotations

import json

import pytest
import torch

from bench.synthetic import Sizes
from models.heads import (
    ChannelAttention,
    GatedFusion,
    GestureModel,
    ModelArgs,
    ResidualLSTM,
    SequenceAttention,
    TemporalCNN,
)

B, T, C, D, DD, S, H = 3, 8, 12, 16, 8, 12, 16
MANIFEST = {
    "class_names": ["a", "b", "c", "d"],
    "dims": Sizes(frames=T, embed_dim=D, dino_dim=DD, swav_dim=S).dims().to_json(),
}
STREAMS = ["all", "twelve", "dino-swav"]


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
    return GestureModel(ModelArgs.from_manifest(MANIFEST, streams, H, dropout))


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


@pytest.mark.parametrize("streams", STREAMS)
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
    for streams in STREAMS:
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


@pytest.mark.parametrize("streams", STREAMS)
def test_gradients_reach_every_parameter_of_the_used_streams(streams):
    model = _model(streams).train()
    logits, _ = model(**_inputs())
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
    names = {".".join(n.split(".")[:2]) for n, _ in model.named_parameters()}
    used = {"twelve", "dino-swav"} if streams == "all" else {streams}
    assert {
        n.split(".")[1] for n in names if n.startswith("heads.")
    } == used  # unused streams hold no weights
    assert any(n.startswith("fusions.") for n in names) == (streams == "all")


@pytest.mark.parametrize("streams,unused", [("twelve", ("dino_cls", "swav")), ("dino-swav", ("embeddings",))])
def test_unused_streams_do_not_affect_the_output(streams, unused):
    model = _model(streams).eval()
    inputs = _inputs()
    changed = {**inputs, **{k: torch.randn_like(inputs[k]) * 100 for k in unused}}
    torch.testing.assert_close(model(**inputs)[0], model(**changed)[0])


def test_model_rebuilds_from_plain_args():
    model = _model("all").eval()
    args = model.args.to_dict()
    assert isinstance(json.loads(json.dumps(args)), dict)  # plain data: a weights_only checkpoint holds it
    clone = GestureModel.from_args(args).eval()
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone(**_inputs())[0], model(**_inputs())[0])


def test_streams_the_cache_cannot_feed_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="rgb") as info:
        ModelArgs.from_manifest(MANIFEST, "twelve,rgb", H, 0.0)
    assert all(name in str(info.value) for name in ("all", "twelve", "dino-swav"))
    no_dino = {
        **MANIFEST,
        "dims": {
            **MANIFEST["dims"],
            "fields": {k: v for k, v in MANIFEST["dims"]["fields"].items() if v["stream"] != "dino"},
        },
    }
    assert ModelArgs.from_manifest(no_dino, "all", H, 0.0).streams == ("twelve",)  # all = what it can feed
    with pytest.raises(ValueError, match="dino-swav"):
        ModelArgs.from_manifest(no_dino, "dino-swav", H, 0.0)


def test_any_cached_vector_field_trains_through_the_generic_head():
    fields = {**MANIFEST["dims"]["fields"], "mean_rgb": {"shape": [3], "dtype": "float", "stream": "toy"}}
    args = ModelArgs.from_manifest(
        {**MANIFEST, "dims": {**MANIFEST["dims"], "fields": fields}}, "twelve,mean_rgb", H, 0.0
    )
    assert args.inputs["mean_rgb"] == (3,)
    model = GestureModel(args).eval()
    inputs = {**_inputs(), "mean_rgb": torch.randn(B, T, 3)}
    logits, aux = model(**inputs)
    assert logits.shape == (B, 4) and "stream_gate" in aux
    changed = {**inputs, "mean_rgb": inputs["mean_rgb"] + 5}
    assert not torch.allclose(model(**changed)[0], logits)  # the new field reaches the prediction


@pytest.mark.parametrize("field", ["dino_cls", "swav"])
def test_a_field_a_head_reads_is_refused_naming_that_head(field):
    """dino_cls and swav are in the cache but left out of the choices because the dino-swav head reads
    them: the refusal says so and names the stream to use, instead of calling them missing."""
    with pytest.raises(ValueError) as info:
        ModelArgs.from_manifest(MANIFEST, field, H, 0.0)
    message = str(info.value)
    assert f"{field} is read by the dino-swav head; use --streams dino-swav" in message, message
    assert "not in this cache" not in message and "valid: all, twelve, dino-swav" in message


def test_a_stored_field_no_head_trains_on_is_not_called_missing():
    """Boxes and attention maps are stored for plots, not trained on: refused as such, while a name the
    cache does not hold at all is still 'not in this cache'."""
    from models.heads.model import cache_shapes
    from models.heads.streams import resolve_streams

    fields = {**MANIFEST["dims"]["fields"], "dino_attention": {"shape": [4, 4], "dtype": "float"}}
    with pytest.raises(ValueError) as info:
        resolve_streams("dino_attention,rgb", cache_shapes({"dims": {"fields": fields}}), fields)
    message = str(info.value)
    assert "dino_attention is in this cache but is no per-frame feature vector a head trains on" in message
    assert "rgb not in this cache" in message, message
