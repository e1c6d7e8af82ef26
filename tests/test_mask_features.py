"""mask_dino's tokens: the masks stream's own DINOv2 role by default, or dino's when it runs that model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_extract_config

from core.errors import UserError, WeightsUnavailableError
from extract.encode import FrameEncoder
from extract.plan import encoder_models, make_plan
from extract.run import build_encoders
from extract.streams import StreamOptions, resolve_models
from models.encoders import create_encoder


def _frame_encoder(dino: str, mask_features: str = "tiny_dinov2", dino_seed: int = 0) -> FrameEncoder:
    """The tiny masks stream and what it needs, each role built on its own (as predict rebuilds them)."""
    encoders = {
        "dino": create_encoder(dino, "random", dino_seed),
        "hands": create_encoder("tiny_hands", "random"),
        "masks": create_encoder("tiny_sam2", "random"),
        "mask_features": create_encoder(mask_features, "random"),
    }
    return FrameEncoder(encoders, torch.device("cpu"), StreamOptions())


def _encode_counting(fe: FrameEncoder) -> tuple[dict, dict[str, int]]:
    """Encode 2 small frames; count forward passes per model (by the identity of the module object)."""
    calls: dict[int, int] = {}
    for enc in fe.encoders.values():
        enc.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls.get(id(m), 0) + 1))
    out = fe(
        torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    )
    return out, {role: calls.get(id(enc), 0) for role, enc in fe.encoders.items()}


def test_mask_dino_pools_the_dinov2_role_not_the_default_dino_flavour():
    assert resolve_models("full", "masks=sam2.1_hiera_tiny")["mask_features"] == "dinov2_vit_s14"
    assert resolve_models("tiny", "masks=tiny_sam2")["mask_features"] == "tiny_dinov2"
    fe = _frame_encoder("tiny_dino")  # the tiny preset's dino role: 64-d tokens on an 8x8 grid
    out, calls = _encode_counting(fe)
    assert out["mask_dino"].shape == (2, 2, fe.encoders["mask_features"].out_dim)
    assert fe.encoders["mask_features"].out_dim != fe.encoders["dino"].out_dim
    assert calls["mask_features"] == 1 and calls["dino"] == 1


def test_the_same_model_in_the_dino_role_runs_once_and_another_seed_does_not_count():
    out, calls = _encode_counting(_frame_encoder("tiny_dinov2"))
    assert calls["dino"] == 1 and calls["mask_features"] == 0  # two objects, one model: pooled dino's tokens
    assert out["mask_dino"].shape == (2, 2, 32)
    _, calls = _encode_counting(_frame_encoder("tiny_dinov2", dino_seed=1))  # same name, other weights
    assert calls["dino"] == 1 and calls["mask_features"] == 1


def test_only_a_running_masks_stream_builds_its_features_model(small_demo, tmp_path):
    off = tiny_extract_config(small_demo, tmp_path, frames=2)
    assert "mask_features" not in encoder_models(off)  # default extractions never look DINOv2 up
    shared = tiny_extract_config(small_demo, tmp_path, frames=2, encoders="masks=tiny_sam2,dino=tiny_dinov2")
    encoders = build_encoders(shared)
    assert encoders["mask_features"] is encoders["dino"]  # built once
    chosen = resolve_models("tiny", "masks=tiny_sam2,mask_features=dino_vit_s16")  # any DINO flavour
    assert chosen["mask_features"] == "dino_vit_s16"
    with pytest.raises(UserError, match="not a mask_features model; valid for mask_features: dino_vit_b16"):
        resolve_models("tiny", "masks=tiny_sam2,mask_features=tiny_sam2")


def test_a_mask_features_choice_without_the_masks_stream_is_one_note_and_leaves_the_key(
    small_demo, tmp_path, capsys
):
    base = make_plan(tiny_extract_config(small_demo, tmp_path, frames=2)).key
    chosen = tiny_extract_config(small_demo, tmp_path, frames=2, encoders="mask_features=tiny_dino")
    assert make_plan(chosen).key == base  # the unused choice never re-extracts anything
    err = capsys.readouterr().err
    note = "note: --encoders mask_features=tiny_dino has no effect: the masks stream does not run"
    assert err.count(note) == 1 and "turn it on with --encoders masks=MODEL" in err


def test_missing_dinov2_weights_for_mask_features_are_one_line_naming_the_model(tmp_path, monkeypatch):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GESTURE_DIGEST_MEMO", str(Path(tmp_path) / "digests.json"))
    model = resolve_models("full", "masks=sam2.1_hiera_tiny")["mask_features"]
    with pytest.raises(WeightsUnavailableError) as info:
        create_encoder(model)
    message = str(info.value)
    assert "\n" not in message and "dinov2_vit_s14" in message and "--weights random" in message


def test_predict_builds_one_encoder_for_the_roles_that_share_a_model(monkeypatch):
    # predict and show rebuild the cache's encoders from its manifest: DINOv2 for both dino and
    # mask_features must be built (and held in memory) once, as extraction does; another seed is another.
    import extract.single

    built = []

    def counting(*args):
        built.append(args)
        return create_encoder(*args)

    monkeypatch.setattr(extract.single, "create_encoder", counting)
    manifest = {
        "encoders": {
            "dino": {"name": "tiny_dinov2", "weights": "random:0"},
            "mask_features": {"name": "tiny_dinov2", "weights": "random:0"},
            "swav": {"name": "tiny_dinov2", "weights": "random:1"},
        }
    }
    encoders = extract.single.encoders_from_manifest(manifest)
    assert encoders["dino"] is encoders["mask_features"] and encoders["swav"] is not encoders["dino"]
    assert len(built) == 2
