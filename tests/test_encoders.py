"""Encoder registry contract, on the tiny presets (timm tests/test_models.py style), all offline."""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path

import pytest
import torch

from core.errors import UserError, WeightsUnavailableError
from extract.streams import preset_models, presets, role_kind, roles
from models.encoders import (
    DinoOutput,
    HandOutput,
    create_encoder,
    encoder_spec,
    list_encoders,
)

TINY = sorted(preset_models("tiny").values())
FULL = sorted(preset_models("full").values())
# Every registered encoder; those with real weights are full-size, so building them is a slow test.
REGISTRY = [n if n in TINY else pytest.param(n, marks=pytest.mark.slow) for n in list_encoders()]
PRETRAINED = [n for n in list_encoders() if encoder_spec(n).source is not None]
# What the offline error must name for each full encoder: its hub id or URL.
SOURCES = {
    "resnext50_32x4d": "timm/resnext50_32x4d.a1h_in1k",
    "vit_b16_hand_gestures": "dima806/hand_gestures_image_detection",
    "dino_vit_s16": "timm/vit_small_patch16_224.dino",
    "swav_resnet50": "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar",
    "yolov8x_hands": "lewiswatson/yolov8x-tuned-hand-gestures",
}


@pytest.fixture(scope="module")
def tiny() -> dict:
    return {name: create_encoder(name, weights="random", seed=0) for name in TINY}


@functools.cache
def built(name: str):
    """Registry name -> encoder with random weights, built once per session (full-size ones are slow)."""
    return create_encoder(name, weights="random", seed=0)


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh, empty HF and torch hub caches, offline: a user's own cache can never make a test pass."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GESTURE_DIGEST_MEMO", str(tmp_path / "digests.json"))
    return tmp_path


def fake_hub_file(cache_root: Path, repo_id: str, filename: str) -> Path:
    """Path of ``filename`` inside a hand-made HF hub cache entry (refs/main -> snapshot)."""
    revision = "0" * 40
    repo_dir = cache_root / "hf" / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    path = repo_dir / "snapshots" / revision / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def frames(batch: int = 2, height: int = 48, width: int = 80, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def run(encoder, x: torch.Tensor, *prompts: torch.Tensor):
    with torch.inference_mode():
        return encoder(encoder.prepare(x), *prompts)


def as_tensors(out) -> tuple[torch.Tensor, ...]:
    """Every tensor of an encoder output (a plain tensor or a DinoOutput / HandOutput tuple)."""
    return tuple(out) if isinstance(out, tuple) else (out,)


def test_presets_name_one_registered_encoder_per_role():
    assert presets() == ["full", "tiny"]
    opt_in = {"masks"}  # roles no preset runs: `--encoders masks=MODEL` turns the SAM2 stream on
    for preset in presets():
        assert set(preset_models(preset)) == set(roles()) - opt_in
        for role, name in preset_models(preset).items():
            # mask_features runs DINO flavours: the kind of encoder its stream declares
            assert name in list_encoders(role_kind(role))
            assert encoder_spec(name).role == role_kind(role)


@pytest.mark.parametrize("name", REGISTRY)
def test_output_shapes_and_dtypes(name):
    enc = built(name)
    x = frames(batch=3)
    prepared = enc.prepare(x)
    assert prepared.shape == (3, 3, *enc.preprocess.input_size)
    if enc.role == "masks":  # SAM2 is prompted: a box in slot 0, three points in slot 1
        boxes, points = torch.tensor([[0.1, 0.1, 0.5, 0.6]]).expand(3, 2, 4), torch.rand(3, 3, 2)
        out = run(enc, x, boxes, points, torch.tensor([[1, 2]]).expand(3, 2))
        assert out.masks.shape == (3, 2, enc.out_dim, enc.out_dim) and out.masks.dtype == torch.bool
        assert out.score.shape == out.valid.shape == (3, 2)
        return
    out = run(enc, x)
    if enc.role in ("cnn", "vit", "swav"):
        assert out.shape == (3, enc.out_dim) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
    elif enc.role == "dino":
        assert isinstance(out, DinoOutput)
        assert out.cls.shape == (3, enc.out_dim) and out.cls.dtype == torch.float32
        assert out.attention.shape == (3, *enc.attn_hw) and out.attention.dtype == torch.float32
    else:
        assert isinstance(out, HandOutput)
        assert out.boxes.shape == (3, enc.max_hands, 6) and out.boxes.dtype == torch.float32
        assert out.count.shape == (3,) and out.count.dtype == torch.int64


@pytest.mark.parametrize("name", TINY)
def test_prepare_normalises_with_the_encoders_own_config(tiny, name):
    enc = tiny[name]
    cfg = enc.preprocess
    x = frames(height=cfg.input_size[0], width=cfg.input_size[1])  # already the right size: no resize
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    prepared = enc.prepare(x)
    torch.testing.assert_close(prepared, (x - mean) / std)
    if enc.role == "hands":
        torch.testing.assert_close(prepared, x)  # YOLO takes [0, 1] input, no normalisation
    if enc.role in ("cnn", "swav"):
        assert prepared.is_contiguous(memory_format=torch.channels_last)


def test_prepare_rejects_non_frame_tensors(tiny):
    with pytest.raises(ValueError, match="tiny_cnn"):
        tiny["tiny_cnn"].prepare(torch.rand(2, 48, 80))


def test_tiny_cnn_cuts_into_exactly_three_vit_chunks(tiny):
    d = tiny[preset_models("tiny")["vit"]].out_dim
    c = tiny[preset_models("tiny")["cnn"]].out_dim
    assert 2 * d < c <= 3 * d
    assert math.ceil(c / d) == 3 == math.ceil(2048 / 768)  # same layout as the full preset


@pytest.mark.parametrize("name", TINY)
def test_random_weights_follow_the_seed(name):
    a = create_encoder(name, weights="random", seed=0)
    b = create_encoder(name, weights="random", seed=0)
    c = create_encoder(name, weights="random", seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    x = frames()
    for left, right in zip(as_tensors(run(a, x)), as_tensors(run(b, x)), strict=True):
        assert torch.equal(left, right)
    assert a.identity == {"name": name, "weights": "random:0"}
    assert c.identity == {"name": name, "weights": "random:1"}


def test_building_an_encoder_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    create_encoder("tiny_vit", weights="random", seed=7)
    assert torch.equal(torch.rand(4), expected)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown encoder 'resnet9000'") as info:
        create_encoder("resnet9000", weights="random")
    assert all(name in str(info.value) for name in list_encoders())


def test_unknown_weights_value_is_rejected():
    with pytest.raises(ValueError, match="random"):
        create_encoder("tiny_cnn", weights="imagenet")


@pytest.mark.parametrize("name", PRETRAINED)
def test_missing_pretrained_weights_fail_offline_with_a_way_out(empty_caches, name):
    with pytest.raises(WeightsUnavailableError) as info:
        create_encoder(name)  # default weights="pretrained"
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert "\n" not in message
    assert name in message and str(encoder_spec(name).source.repo or encoder_spec(name).source.url) in message
    assert "--weights random" in message
    assert str(empty_caches) in message  # says where it looked / where to put the file


def test_tiny_encoders_have_no_pretrained_weights():
    with pytest.raises(WeightsUnavailableError, match="--weights random"):
        create_encoder("tiny_cnn", weights="pretrained")


def test_cached_hf_vit_weights_load_offline(empty_caches):
    from transformers import ViTConfig, ViTForImageClassification

    reference = ViTForImageClassification(
        ViTConfig(
            image_size=32,
            patch_size=16,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=18,
        )
    ).eval()
    folder = fake_hub_file(empty_caches, SOURCES["vit_b16_hand_gestures"], "config.json").parent
    reference.save_pretrained(folder)
    enc = create_encoder("vit_b16_hand_gestures")
    assert enc.identity == {
        "name": "vit_b16_hand_gestures",
        "weights": "pretrained",
        "repo": SOURCES[enc.name],
        "revision": "0" * 40,  # the snapshot the files were found in
        "sha256": {
            name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in ("config.json", "model.safetensors")
        },
    }
    x = frames()
    with torch.inference_mode():
        expected = reference.vit(enc.prepare(x)).last_hidden_state.mean(1)
    torch.testing.assert_close(run(enc, x), expected)


def test_cached_timm_weights_load_offline(empty_caches):
    import safetensors.torch
    import timm

    reference = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0)
    path = fake_hub_file(empty_caches, SOURCES["dino_vit_s16"], "model.safetensors")
    safetensors.torch.save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
    enc = create_encoder("dino_vit_s16")
    loaded = enc.model.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in reference.state_dict().items())
    assert enc.preprocess.input_size == (224, 224) and enc.attn_hw == (14, 14)
    assert enc.preprocess.std == (0.229, 0.224, 0.225)  # from the .dino pretrained_cfg


def test_cached_swav_checkpoint_loads_with_module_prefix(empty_caches):
    from torchvision.models import resnet50

    reference = resnet50(weights=None)
    state = {f"module.{k}": v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    state["module.prototypes.weight"] = torch.zeros(3000, 128)  # SwAV extras that must be ignored
    path = empty_caches / "torch" / "hub" / "checkpoints" / "swav_800ep_pretrain.pth.tar"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    enc = create_encoder("swav_resnet50")
    assert enc.out_dim == 2048 and enc.preprocess.std == (0.228, 0.224, 0.225)
    assert torch.equal(enc.model.layer4[2].bn3.running_var, reference.layer4[2].bn3.running_var)
    assert torch.equal(enc.model.conv1.weight, reference.conv1.weight)


def test_swav_checkpoint_missing_backbone_weights_is_refused(empty_caches):
    path = empty_caches / "torch" / "hub" / "checkpoints" / "swav_800ep_pretrain.pth.tar"
    path.parent.mkdir(parents=True)
    torch.save({"module.conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(WeightsUnavailableError, match="backbone weights missing") as info:
        create_encoder("swav_resnet50")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("offline", [True, False])
def test_cached_yolo_checkpoint_loads_without_network(empty_caches, monkeypatch, offline):
    import huggingface_hub
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    if not offline:  # online mode must still take a cached file without asking the hub
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("network used"))

    spec = yaml_model_load("yolov8n.yaml")
    spec["nc"] = 2
    model = DetectionModel(cfg=spec, verbose=False)
    model.names = {0: "left", 1: "right"}
    path = fake_hub_file(empty_caches, SOURCES["yolov8x_hands"], "weights/best.pt")
    torch.save({"model": model.half(), "train_args": {}}, path)
    enc = create_encoder("yolov8x_hands")
    assert enc.class_names == {0: "left", 1: "right"}
    assert enc.identity["repo"] == SOURCES["yolov8x_hands"]
    assert enc.identity["sha256"] == {"weights/best.pt": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = run(enc, frames(batch=1))
    assert out.boxes.shape == (1, 4, 6)


def test_dino_attention_is_the_cls_row_of_the_last_block_softmax(tiny):
    enc = tiny["tiny_dino"]
    attn = enc.model.blocks[-1].attn
    captured = {}
    handle = attn.register_forward_pre_hook(lambda module, args: captured.setdefault("x", args[0]))
    try:
        out = run(enc, frames(batch=2))
    finally:
        handle.remove()
    # Recompute the softmax independently of timm's forward: q.k^T over the block's input tokens.
    x = captured["x"]
    b, n, c = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    full = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1)  # (B, heads, N, N)
    prefix = enc.model.num_prefix_tokens
    expected = full[:, :, 0, prefix:].mean(1).reshape(b, *enc.attn_hw)
    cls_share = full[:, :, 0, :prefix].sum(-1).mean(1)  # (B,)
    assert out.attention.shape == (2, *enc.attn_hw)
    assert (out.attention >= 0).all()
    torch.testing.assert_close(out.attention, expected)
    torch.testing.assert_close(out.attention.sum((1, 2)) + cls_share, torch.ones(2))


def test_vit_features_are_taken_after_the_final_layernorm(tiny):
    enc = tiny["tiny_vit"]
    prepared = enc.prepare(frames())
    with torch.inference_mode():
        features = enc(prepared)
        outputs = enc.model.vit(pixel_values=prepared, output_hidden_states=True)
    torch.testing.assert_close(features, outputs.last_hidden_state.mean(1))
    assert not torch.allclose(features, outputs.hidden_states[-1].mean(1), atol=1e-3)


def test_hand_boxes_are_normalised_sorted_and_zero_padded():
    enc = create_encoder("tiny_hands", weights="random")
    assert enc.max_hands == 4
    x = frames(batch=3, height=90, width=160)
    enc.conf_threshold = 0.0  # random weights score low: keep every candidate
    full = run(enc, x)
    assert (full.count == 4).all()
    boxes = full.boxes
    assert ((boxes[..., :4] >= 0) & (boxes[..., :4] <= 1)).all()
    assert (boxes[..., 0] <= boxes[..., 2]).all() and (boxes[..., 1] <= boxes[..., 3]).all()
    assert ((boxes[..., 4] > 0) & (boxes[..., 4] <= 1)).all()
    assert (boxes[..., 4].diff(dim=1) <= 0).all()  # most confident first

    enc.max_hands = 1000  # more slots than NMS keeps: the tail must be zero padding
    padded = run(enc, x)
    assert padded.boxes.shape == (3, 1000, 6)
    assert ((padded.count > 0) & (padded.count < 1000)).all()
    for i, n in enumerate(padded.count.tolist()):
        assert (padded.boxes[i, n:] == 0).all()
        assert (padded.boxes[i, :n, 4] > 0).all()
    torch.testing.assert_close(padded.boxes[:, :4], full.boxes)


@pytest.mark.parametrize("classes", [1, 5])
def test_batched_hand_nms_keeps_what_ultralytics_nms_keeps(classes):
    from ultralytics.utils.nms import non_max_suppression

    from bench.nms import hand_like_predictions
    from models.encoders.hands import greedy_nms

    for seed in range(3):
        p = hand_like_predictions(batch=12, classes=classes, anchors=2100, seed=seed)
        for max_det in (1, 4, 8):
            reference = non_max_suppression(p.clone(), 0.25, 0.7, agnostic=True, max_det=max_det)
            boxes, count = greedy_nms(p, 0.25, 0.7, max_det)
            assert count.tolist() == [len(r) for r in reference]
            assert count.max() == max_det and count[-1] == 0  # frames filled to max_det, and an empty one
            for i, ref in enumerate(reference):
                torch.testing.assert_close(boxes[i, : len(ref)], ref[:, :6], rtol=0, atol=0)
                assert (boxes[i, len(ref) :] == 0).all()


@pytest.mark.parametrize("name", REGISTRY)
def test_encoders_are_frozen(name):
    enc = built(name)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
