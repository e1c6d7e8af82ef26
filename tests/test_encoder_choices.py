"""Per-role model choice, DINO flavours, hands=none and pinned weight versions in the cache key."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import h5py
import pytest
import torch
from conftest import tiny_extract_config

import core.digests as digests
from cache.inspect import cache_info
from cache.verify import verify_cache
from core.errors import UserError, WeightsUnavailableError
from extract.plan import make_plan
from extract.run import run as extract
from models.encoders import create_encoder, encoder_identity, list_encoders
from train.config import TrainConfig
from train.fit import run_train

# Attention grid at 224 px: the patch size decides it.
DINO_GRIDS = {
    "dino_vit_s16": 14,
    "dino_vit_b16": 14,
    "dino_vit_s8": 28,
    "dino_vit_b8": 28,
    "dinov2_vit_s14": 16,
}
DINO_REPO = "timm/vit_small_patch16_224.dino"


def test_every_registered_dino_flavour_is_covered():
    assert sorted(DINO_GRIDS) == sorted(n for n in list_encoders("dino") if not n.startswith("tiny"))


@pytest.mark.parametrize("name", sorted(DINO_GRIDS))
def test_dino_flavour_attention_grid_follows_its_patch_size(name):
    enc = create_encoder(name, weights="random")
    g = DINO_GRIDS[name]
    assert enc.preprocess.input_size == (224, 224) and enc.attn_hw == (g, g)
    with torch.inference_mode():
        out = enc(enc.prepare(torch.rand(1, 3, 96, 128)))
    assert out.attention.shape == (1, g, g) and out.heads.shape == (1, enc.num_heads, g, g)
    torch.testing.assert_close(out.heads.mean(1), out.attention)  # the stored map is the mean of the heads


def _extract_with(small_demo: Path, tmp_path: Path, encoders: str, **flags):
    cfg = tiny_extract_config(small_demo, tmp_path / "cache", frames=2, encoders=encoders, **flags)
    return extract(cfg).key_dir


def test_hands_none_builds_no_yolo_and_training_and_info_cope(small_demo, tmp_path, monkeypatch):
    import models.encoders.hands as hands

    def no_yolo(*args, **kwargs):
        raise AssertionError("a YOLO model was built although hands=none")

    monkeypatch.setattr(hands, "YoloHands", no_yolo)
    monkeypatch.setattr(hands, "_random_yolo", no_yolo)
    key_dir = _extract_with(small_demo, tmp_path, "hands=none", dino_heads=True)
    assert verify_cache(key_dir) == []
    with h5py.File(key_dir / "train.h5") as h5:
        assert "hand_boxes" not in h5 and "hand_count" not in h5  # absent, not zero-filled
        assert h5["dino_attention_heads"].shape[2:] == (2, 8, 8)  # tiny DINO: 2 heads, 8x8 grid
    info = cache_info(key_dir)
    assert "hands" not in info.split("encoders:")[1].split("channel layout")[0]
    run_dir = run_train(TrainConfig(cache=key_dir, out=tmp_path / "runs", epochs=1))
    assert (run_dir / "best.pt").is_file()


def test_dino_choice_changes_the_key_and_the_stored_grid(small_demo, tmp_path):
    base = tiny_extract_config(small_demo, tmp_path / "cache", frames=2, encoders="hands=none")
    s8 = tiny_extract_config(small_demo, tmp_path / "cache", frames=2, encoders="hands=none,dino=dino_vit_s8")
    assert make_plan(base).key != make_plan(s8).key
    key_dir = extract(s8).key_dir
    assert verify_cache(key_dir) == []
    with h5py.File(key_dir / "train.h5") as h5:
        assert h5["dino_attention"].shape[2:] == (28, 28) and h5["dino_cls"].shape[2:] == (384,)
    run_dir = run_train(TrainConfig(cache=key_dir, out=tmp_path / "runs", epochs=1, streams="dino-swav"))
    assert (run_dir / "best.pt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DINO_GRIDS))
def test_each_dino_flavour_extracts_verifies_and_trains(name, small_demo, tmp_path):
    key_dir = _extract_with(small_demo, tmp_path, f"hands=none,dino={name}")
    assert verify_cache(key_dir) == []
    g = DINO_GRIDS[name]
    with h5py.File(key_dir / "train.h5") as h5:
        assert h5["dino_attention"].shape[2:] == (g, g)
    assert (run_train(TrainConfig(cache=key_dir, out=tmp_path / "runs", epochs=1)) / "best.pt").is_file()


@pytest.mark.parametrize(
    ("choice", "needle"),
    [
        ("lips=tiny_cnn", "unknown role 'lips'"),
        ("dino=tiny_cnn", "not a dino model"),
        ("dino", "not ROLE=VALUE"),
        ("dino=none", "needs stream 'dino'"),  # SwAV crops where DINO looks
        ("vit=none,cnn=none,dino=none,swav=none,hands=none", "nothing to extract"),
        ("vit=none", "the twelve stream needs vit and cnn"),  # dropped the CNN with it, silently
        ("masks=tiny_sam2,mask_features=none", "turn the whole stream off with --encoders masks=none"),
        ("hands=none,hands=tiny_hands", "role 'hands' is given twice"),  # last-wins, silently
    ],
)
def test_bad_encoder_choices_are_one_line_user_errors(small_demo, tmp_path, choice, needle):
    with pytest.raises(UserError, match=needle) as info:
        make_plan(tiny_extract_config(small_demo, tmp_path / "c", encoders=choice))
    assert "\n" not in str(info.value)


def test_crop_mode_hands_needs_the_hands_stream(small_demo, tmp_path):
    cfg = tiny_extract_config(small_demo, tmp_path / "c", encoders="hands=none", crop_mode="hands")
    with pytest.raises(UserError, match="needs stream 'hands'"):
        make_plan(cfg)


@pytest.mark.parametrize(
    ("off", "flag", "value"),
    [
        ("dino=none,swav=none", "dino_heads", True),
        ("hands=none", "hands_every", 4),
        ("swav=none", "attention_mass", 0.5),
        ("swav=none", "crop_margin", 0.3),
        ("vit=none,cnn=none", "crop_mode", "hands"),
    ],
)
def test_an_option_of_a_stream_that_does_not_run_is_one_note_and_leaves_the_key(
    small_demo, tmp_path, capsys, off, flag, value
):
    """A user who passes --hands-every 4 with hands=none believes YOLO ran on keyframes: one note says
    the option went unused, and the key (only running streams' options) is the same as without it."""
    base = make_plan(tiny_extract_config(small_demo, tmp_path / "c", encoders=off)).key
    assert "note:" not in capsys.readouterr().err
    given = make_plan(tiny_extract_config(small_demo, tmp_path / "c", encoders=off, **{flag: value})).key
    err = capsys.readouterr().err
    stream = off.split("=")[0] if flag != "crop_mode" else "twelve"
    note = f"note: --{flag.replace('_', '-')} has no effect: the {stream} stream does not run"
    assert err.count(note) == 1, err
    assert given == base  # an unused flag never re-extracts anything


# ---- pinned weights ----


def _hub_snapshot(root: Path, repo: str, revision: str, files: dict[str, bytes], main: bool = False) -> None:
    """A hand-made Hugging Face hub cache entry: snapshots/<revision>/<file>, refs/main when ``main``."""
    repo_dir = root / "hub" / f"models--{repo.replace('/', '--')}"
    for name, data in files.items():
        path = repo_dir / "snapshots" / revision / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if main:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(revision)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("GESTURE_DIGEST_MEMO", str(tmp_path / "digests.json"))
    old, new = "a" * 40, "b" * 40
    _hub_snapshot(tmp_path / "hf", DINO_REPO, old, {"model.safetensors": b"weights, first upload"})
    _hub_snapshot(
        tmp_path / "hf", DINO_REPO, new, {"model.safetensors": b"weights, second upload"}, main=True
    )
    return tmp_path / "hf"


def _pinned_key(small_demo: Path, tmp_path: Path, pin: str) -> str:
    only_dino = "vit=none,cnn=none,swav=none,hands=none,dino=dino_vit_s16"
    cfg = tiny_extract_config(small_demo, tmp_path / "c", encoders=only_dino, weights_revision=pin)
    return make_plan(replace(cfg, weights="pretrained")).key


def test_two_revisions_of_the_weights_make_two_cache_keys(hub, small_demo, tmp_path):
    old, new = "a" * 40, "b" * 40
    keys = {pin: _pinned_key(small_demo, tmp_path, pin) for pin in ("", f"dino={old}", f"dino={new}")}
    assert keys[f"dino={old}"] != keys[f"dino={new}"]
    assert keys[""] == keys[f"dino={new}"]  # unpinned = the repo's main, which points at the new upload
    ident = encoder_identity("dino_vit_s16", "pretrained", revision=old)
    assert ident["repo"] == DINO_REPO and ident["revision"] == old
    with pytest.raises(WeightsUnavailableError, match="c" * 40):  # a pin that is not in the cache
        _pinned_key(small_demo, tmp_path, "dino=" + "c" * 40)
    with pytest.raises(UserError, match="unknown role"):
        _pinned_key(small_demo, tmp_path, "dinosaur=main")


def test_a_weight_file_is_hashed_once_per_version(hub, monkeypatch):
    reads: list[Path] = []
    real = digests.file_digest
    monkeypatch.setattr(digests, "file_digest", lambda path, algo: reads.append(path) or real(path, algo))
    first = encoder_identity("dino_vit_s16", "pretrained")
    second = encoder_identity("dino_vit_s16", "pretrained")
    assert first == second and len(reads) == 1  # the second identity came from the memo
    path = reads[0]
    path.write_bytes(b"weights, edited in place")  # another size and mtime: hashed again
    os.utime(path, ns=(1, 1))
    third = encoder_identity("dino_vit_s16", "pretrained")
    assert len(reads) == 2 and third["sha256"] != first["sha256"]
