"""Attention against hand masks: IoU and mass share on hand-made maps, and evaluate's report of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_fixtures import write_synthetic_cache

from train.attention_masks import attention_keep, frame_agreement, sequence_agreement, unpack_masks
from train.config import EvaluateConfig
from train.evaluate import run_evaluate

# Attention on a 2x2 grid: 0.7 top-left, 0.1 elsewhere. At mass 0.6 only the top-left patch is kept.
ATTN = np.array([[0.7, 0.1], [0.1, 0.1]])


def _mask(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((64, 64), bool)
    m[rows, cols] = True
    return m


LEFT_HALF = _mask(slice(None), slice(0, 32))
TOP_LEFT = _mask(slice(0, 32), slice(0, 32))
BOTTOM_RIGHT = _mask(slice(32, 64), slice(32, 64))


def test_iou_and_mass_share_on_hand_made_maps():
    # Left-half mask: covers patches TL and BL. Kept region {TL}: IoU = 1 / (1 + 1); mass 0.7 + 0.1.
    iou, share = frame_agreement(ATTN[None], LEFT_HALF[None], 0.6)
    assert iou[0] == pytest.approx(0.5) and share[0] == pytest.approx(0.8)
    # The mask is exactly the kept patch: IoU 1, mass share 0.7.
    iou, share = frame_agreement(ATTN[None], TOP_LEFT[None], 0.6)
    assert iou[0] == pytest.approx(1.0) and share[0] == pytest.approx(0.7)
    # At mass 0.75 the first two patches (0.7, then 0.1 in row-major tie order) are kept: TL and TR.
    # Left-half mask: intersection TL (1), union TL + TR + BL (3); mass share unchanged at 0.8.
    iou, share = frame_agreement(ATTN[None], LEFT_HALF[None], 0.75)
    assert iou[0] == pytest.approx(1 / 3) and share[0] == pytest.approx(0.8)


def test_a_grid_that_does_not_divide_the_mask_counts_exact_areas():
    # 3x3 attention, all of it on the centre patch; at mass 0.5 only that patch is kept.
    attn = np.zeros((3, 3))
    attn[1, 1] = 1.0
    # Left-half mask over 3 columns covers columns 0, 1, 2 by 1, 1/2, 0 of their area.
    # Intersection: the centre patch's half (0.5). Union: the kept patch (1) + the rest of the mask:
    # column 0 (3 patches x 1) + the two other column-1 patches (2 x 0.5) = 5. IoU 0.5 / 5.
    iou, share = frame_agreement(attn[None], LEFT_HALF[None], 0.5)
    assert iou[0] == pytest.approx(0.1) and share[0] == pytest.approx(0.5)


def test_a_sequence_counts_valid_frames_with_a_valid_hand_and_the_union_of_hands():
    t = 4
    attn = np.tile(ATTN, (t, 1, 1))
    masks = np.zeros((t, 2, 64, 64), np.uint8)
    masks[:, 0], masks[:, 1] = TOP_LEFT, BOTTOM_RIGHT
    mask_valid = np.array([[1, 0], [1, 1], [1, 1], [0, 0]], np.uint8)
    valid = np.array([1, 1, 0, 1], np.uint8)
    # frame 0: hand 0 only -> IoU 1, share 0.7; frame 1: both hands (TL + BR) -> IoU 1/2, share 0.8;
    # frame 2 is a repeated (invalid) frame, frame 3 has no valid hand: neither counts.
    iou, share, frames = sequence_agreement(attn, masks, mask_valid, valid, 0.6)
    assert frames == 2
    assert iou == pytest.approx((1.0 + 0.5) / 2) and share == pytest.approx((0.7 + 0.8) / 2)
    packed = np.packbits(masks, axis=-1)  # (T, 2, 64, 8): the cache's storage layout
    assert sequence_agreement(attn, packed, mask_valid, valid, 0.6) == (iou, share, frames)
    assert sequence_agreement(attn, masks, np.zeros((t, 2)), valid, 0.6) is None


def test_unpack_masks_accepts_dense_and_packed_and_refuses_other_shapes():
    masks = np.random.default_rng(0).random((3, 2, 64, 64)) > 0.5
    assert np.array_equal(unpack_masks(np.packbits(masks, axis=-1)), masks)
    assert np.array_equal(unpack_masks(masks.astype(np.uint8)), masks)
    with pytest.raises(ValueError, match="neither"):
        unpack_masks(np.zeros((3, 2, 100), np.uint8))


def test_the_attention_region_is_the_one_swavs_crop_box_bounds():
    from extract.crops import attention_box

    attn = np.random.default_rng(1).random((20, 7, 5)) ** 4  # peaked maps, no ties
    keep = attention_keep(attn, 0.6)
    box = attention_box(torch.from_numpy(attn).float(), 0.6, 0.0).numpy()
    for k, b in zip(keep, box, strict=True):
        rows, cols = np.flatnonzero(k.any(1)), np.flatnonzero(k.any(0))
        expected = [cols[0] / 5, rows[0] / 7, (cols[-1] + 1) / 5, (rows[-1] + 1) / 7]
        assert b == pytest.approx(expected, abs=1e-6)


def _train_one_epoch(cache, out):
    from train.config import TrainConfig
    from train.fit import run_train

    cfg = TrainConfig(
        cache=cache, out=out, name="r", streams="dino-swav", epochs=1, batch_size=8, hidden=8,
        dropout=0.0, seed=0, device="cpu", patience=0,
    )  # fmt: skip
    return run_train(cfg)


@pytest.mark.parametrize("masks", ["packed", None])
def test_evaluate_reports_attention_against_masks_only_when_the_cache_has_masks(tmp_path, masks, capsys):
    counts = {"train": 6, "val": 6, "test": 0}
    cache = write_synthetic_cache(tmp_path / "cache", counts=counts, masks=masks)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["encoders"]["dino"] = {"name": "dino_vit_s8", "weights": "random:0"}
    manifest["config"]["attention_mass"] = 0.5
    (cache / "manifest.json").write_text(json.dumps(manifest))
    run_dir = _train_one_epoch(cache, tmp_path / "runs")
    report = run_evaluate(EvaluateConfig(checkpoint=run_dir / "best.pt", device="cpu", out=tmp_path / "ev"))
    saved = json.loads((tmp_path / "ev" / "report.json").read_text())["val"]
    printed = capsys.readouterr().out
    if masks is None:
        assert "attention_masks" not in report and "attention_masks" not in saved
        assert "attention_masks" not in saved["plots"] and "hand masks" not in printed
        return
    figures = saved["attention_masks"]["dino_vit_s8"]  # keyed by the recorded DINO flavour
    assert figures["attention_mass"] == 0.5 and figures["sequences"] == 6
    assert 0.0 < figures["iou"] < 1.0 and 0.0 < figures["mass_share"] < 1.0
    assert (tmp_path / "ev" / saved["plots"]["attention_masks"]).stat().st_size > 0
    assert "attention vs hand masks (dino_vit_s8" in printed
