"""Hand masks: the SAM2 stream (tiny, random weights, real transformers classes), mask pooling and crops."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import tiny_extract_config

from cache.inspect import cache_info
from cache.masks import pack_masks, unpack_masks
from cache.verify import verify_cache
from core.errors import UserError, WeightsUnavailableError
from extract.crops import attention_box
from extract.mask_pool import mask_pool
from extract.run import run as extract
from extract.streams import FrameBatch, StreamOptions, active_streams, get_stream, resolve_models
from extract.streams.masks import BOX, NO_PROMPT, POINTS, mask_prompts
from models.encoders import create_encoder
from train.config import TrainConfig
from train.fit import run_train as train

SAM2_REPO = "facebook/sam2.1-hiera-tiny"


def test_masks_are_stored_bit_packed_and_read_back_exactly():
    masks = torch.rand(3, 2, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.7
    packed = pack_masks(masks)
    assert packed.shape == (3, 2, 64, 8) and packed.dtype == torch.uint8
    np.testing.assert_array_equal(unpack_masks(packed), masks.numpy())


def test_mask_pooling_averages_the_patch_tokens_the_mask_covers():
    # A 4x4 grid of 2-d tokens: patch (r, c) holds (r, c), so every average is easy to do by hand.
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    tokens = torch.stack([rows, cols], -1)[None]  # (1, 4, 4, 2)
    masks = torch.zeros(1, 3, 64, 64, dtype=torch.bool)  # 64 px / 4 patches = 16 px per patch
    masks[0, 0, 0:32, 0:32] = True  # patches (0,0) (0,1) (1,0) (1,1) whole: mean (0.5, 0.5)
    masks[0, 1, 48:64, 32:48] = True  # patch (3, 2) whole ...
    masks[0, 1, 48:64, 48:56] = True  # ... and half of patch (3, 3): (3, 2 + 0.5 * 3) / 1.5
    pooled = mask_pool(tokens, masks)  # slot 2 stays empty
    assert pooled.shape == (1, 3, 2)
    torch.testing.assert_close(pooled[0, 0], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(pooled[0, 1], torch.tensor([3.0, (2.0 + 1.5) / 1.5]))
    torch.testing.assert_close(pooled[0, 2], torch.zeros(2))  # no mask: zeros, never NaN


def _swav_boxes(
    masks: torch.Tensor, valid: torch.Tensor, attention: torch.Tensor, source: str
) -> torch.Tensor:
    """SwAV's stored crop boxes for hand-made stream outputs (the crops themselves go to a stub)."""
    n = masks.shape[0]
    batch = FrameBatch(
        frames=torch.rand(n, 3, 64, 64),
        outputs={"dino_attention": attention, "hand_masks_bool": masks, "mask_valid": valid},
        encoders={"swav": create_encoder("tiny_swav", weights="random")},
        options=StreamOptions(crop_source=source, crop_margin=0.05, attention_mass=0.6),
        run=lambda role, images: torch.zeros(len(images), 96),
        stage=lambda name: nullcontext(),
    )
    return get_stream("swav").run(batch)["swav_boxes"]


def test_mask_crop_is_the_union_of_valid_masks_and_falls_back_to_attention():
    masks = torch.zeros(3, 2, 64, 64, dtype=torch.bool)
    valid = torch.zeros(3, 2, dtype=torch.uint8)
    masks[0, 0, 8:16, 4:12] = True  # left hand: x 4..11, y 8..15
    masks[0, 1, 40:48, 50:60] = True  # right hand: x 50..59, y 40..47
    valid[0] = 1
    masks[1, 1, 0:64, 0:64] = True  # frame 1: pixels, but SAM2 said not valid -> ignored
    masks[2, 0, 20:30, 20:30] = True  # frame 2: one valid hand, one invalid slot with pixels
    masks[2, 1, 50:64, 0:10] = True
    valid[2, 0] = 1
    attention = torch.zeros(3, 8, 8)
    attention[:, 6, 1] = 1.0  # all attention on one patch: x 1/8..2/8, y 6/8..7/8
    boxes = _swav_boxes(masks, valid, attention, "mask")
    m = 0.05
    torch.testing.assert_close(boxes[0], torch.tensor([4 / 64 - m, 8 / 64 - m, 60 / 64 + m, 48 / 64 + m]))
    torch.testing.assert_close(boxes[1], torch.tensor([1 / 8 - m, 6 / 8 - m, 2 / 8 + m, 7 / 8 + m]))
    torch.testing.assert_close(boxes[2], torch.tensor([20 / 64 - m, 20 / 64 - m, 30 / 64 + m, 30 / 64 + m]))
    # --crop-source attention ignores the masks altogether (today's behaviour).
    torch.testing.assert_close(
        _swav_boxes(masks, valid, attention, "attention"), attention_box(attention, 0.6, m)
    )


def test_crop_source_is_keyed_only_when_it_is_not_the_default():
    swav = get_stream("swav")
    assert "crop_source" not in swav.key(StreamOptions())  # existing caches keep their key
    assert swav.key(StreamOptions(crop_source="mask"))["crop_source"] == "mask"
    assert swav.needs(StreamOptions(crop_source="mask")) == ("dino", "masks")


def test_the_masks_stream_is_off_unless_asked_and_a_mask_crop_needs_it():
    for preset in ("full", "tiny"):
        assert "masks" not in [s.name for s in active_streams(resolve_models(preset), StreamOptions())]
    on = active_streams(resolve_models("tiny", "masks=tiny_sam2"), StreamOptions(crop_source="mask"))
    order = [s.name for s in on]
    assert order.index("dino") < order.index("masks") < order.index("swav")
    assert order.index("hands") < order.index("masks")
    with pytest.raises(UserError, match="--encoders masks=MODEL"):
        active_streams(resolve_models("tiny"), StreamOptions(crop_source="mask"))


def test_prompts_are_yolo_boxes_by_side_and_attention_peaks_only_without_hands():
    boxes = torch.zeros(3, 4, 6)
    boxes[0, 0, :4] = torch.tensor([0.6, 0.1, 0.9, 0.4])  # two hands, most confident on the right
    boxes[0, 1, :4] = torch.tensor([0.1, 0.2, 0.3, 0.5])
    boxes[1, 0, :4] = torch.tensor([0.7, 0.5, 0.9, 0.9])  # one hand on the right
    count = torch.tensor([2, 1, 0])
    attention = torch.zeros(3, 4, 4)
    attention[:, 1, 0], attention[:, 2, 1], attention[:, 0, 3] = 0.5, 0.3, 0.2  # peaks, highest first
    slot_boxes, points, source = mask_prompts(boxes, count, attention)
    assert source.tolist() == [[BOX, BOX], [NO_PROMPT, BOX], [POINTS, NO_PROMPT]]
    torch.testing.assert_close(slot_boxes[0], boxes[0, [1, 0], :4])  # left slot = the left hand
    torch.testing.assert_close(slot_boxes[1, 1], boxes[1, 0, :4])
    torch.testing.assert_close(points[2], torch.tensor([[0.125, 0.375], [0.375, 0.625], [0.875, 0.125]]))


def test_tiny_sam2_stream_writes_verified_masks_that_train(small_demo, tmp_path):
    # A small attention mass and no margin make the attention crop a few patches: unlike a mask's box.
    cfg = tiny_extract_config(
        small_demo,
        tmp_path / "cache",
        frames=4,
        encoders="masks=tiny_sam2",
        crop_source="mask",
        attention_mass=0.05,
        crop_margin=0.0,
    )
    key_dir = extract(cfg).key_dir
    assert verify_cache(key_dir) == []
    with h5py.File(key_dir / "train.h5") as h5:
        masks = unpack_masks(h5["hand_masks"][...])  # (N, T, 2, 64, 64)
        valid, score = h5["mask_valid"][...].astype(bool), h5["mask_score"][...]
        source, count = h5["mask_source"][...], h5["hand_count"][...]
        pooled, swav_boxes = h5["mask_dino"][...].astype(np.float32), h5["swav_boxes"][...]
    assert masks.shape[2:] == (2, 64, 64) and pooled.shape[2] == 2
    assert 0 < valid.sum() < valid.size  # random SAM2 weights: some masks, not all
    np.testing.assert_array_equal(masks.any((-2, -1)), valid)  # a valid mask has pixels, others none
    assert (score[~valid] == 0).all() and (score[valid] > 0).all()
    assert (np.abs(pooled[valid]).sum(-1) > 0).all() and (pooled[~valid] == 0).all()
    # The random tiny YOLO finds no hand, so every frame is prompted by its attention peaks, one slot.
    assert (count == 0).all() and ((source == POINTS).sum(-1) == 1).all() and (source != BOX).all()
    # SwAV cropped the bounding box of the valid masks wherever a frame has one.
    for n, t in zip(*np.nonzero(valid.any(-1)), strict=True):
        ys, xs = np.nonzero(masks[n, t].any(0))
        expected = [xs.min() / 64, ys.min() / 64, (xs.max() + 1) / 64, (ys.max() + 1) / 64]
        np.testing.assert_allclose(swav_boxes[n, t], expected, atol=1e-6)
    run_dir = train(TrainConfig(cache=key_dir, out=tmp_path / "runs", epochs=1, streams="masks,dino-swav"))
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    assert ckpt["model_args"]["streams"] == ["masks", "dino-swav"]
    # mask_dino pools the tiny preset's DINOv2 stand-in (32-d tokens), not the dino role's tiny_dino (64-d).
    assert ckpt["model_args"]["inputs"]["mask_dino"] == [2, 32]
    spec = json.loads((key_dir / "key.json").read_text())["spec"]  # what the key hashes
    assert spec["streams"]["masks"]["encoders"]["mask_features"]["name"] == "tiny_dinov2"
    info = cache_info(key_dir)
    assert any(line.split()[:2] == ["mask_features", "tiny_dinov2"] for line in info.splitlines())


def _fake_snapshot(root: Path, files: dict[str, bytes] | None = None) -> Path:
    """A hand-made HF hub cache entry for the SAM2 repo (refs/main -> snapshot), as the hub writes it."""
    revision = "0" * 40
    repo = root / "hf" / "hub" / f"models--{SAM2_REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    folder = repo / "snapshots" / revision
    folder.mkdir(parents=True)
    for name, data in (files or {}).items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GESTURE_DIGEST_MEMO", str(tmp_path / "digests.json"))
    return tmp_path


def test_missing_sam2_weights_are_one_line_naming_the_model(empty_caches):
    _fake_snapshot(empty_caches, {"config.json": b"{}"})  # a snapshot without model.safetensors
    with pytest.raises(WeightsUnavailableError) as info:
        create_encoder("sam2.1_hiera_tiny")
    message = str(info.value)
    assert "\n" not in message and "sam2.1_hiera_tiny" in message and SAM2_REPO in message
    assert "model.safetensors" in message and "--weights random" in message


def test_cached_sam2_weights_load_offline_through_transformers(empty_caches):
    # The hub repo holds a `sam2_video` checkpoint; the image model takes its image-side weights.
    from transformers import Sam2VideoConfig, Sam2VideoModel

    from models.encoders.sam2 import TINY_CONFIG

    torch.manual_seed(1)
    reference = Sam2VideoModel(Sam2VideoConfig(**TINY_CONFIG)).eval()
    reference.save_pretrained(_fake_snapshot(empty_caches))
    enc = create_encoder("sam2.1_hiera_tiny")
    assert enc.identity["repo"] == SAM2_REPO and enc.identity["revision"] == "0" * 40
    assert set(enc.identity["sha256"]) == {"config.json", "model.safetensors"}
    saved = reference.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in enc.model.state_dict().items())
