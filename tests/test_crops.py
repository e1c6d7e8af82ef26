"""The attention-guided SwAV crop and the hand-box views pick the regions they claim to."""

from __future__ import annotations

import torch

from extract.crops import attention_box, crop_resize, hand_views


def test_attention_box_bounds_the_hot_patches_plus_margin():
    attn = torch.full((1, 14, 14), 1e-4)
    attn[0, 2:5, 9:12] = 1.0  # all the mass sits in rows 2-4, cols 9-11
    box = attention_box(attn, mass=0.9, margin=0.0)[0]
    torch.testing.assert_close(box, torch.tensor([9 / 14, 2 / 14, 12 / 14, 5 / 14]))
    wide = attention_box(attn, mass=0.9, margin=0.1)[0]
    torch.testing.assert_close(wide, torch.tensor([9 / 14 - 0.1, 2 / 14 - 0.1, 12 / 14 + 0.1, 5 / 14 + 0.1]))


def test_attention_box_keeps_at_least_one_patch_and_stays_in_the_frame():
    attn = torch.zeros(2, 4, 4)
    attn[0, 0, 0] = 1.0
    attn[1, 3, 3] = 1.0
    boxes = attention_box(attn, mass=0.01, margin=0.5)
    assert torch.all((boxes >= 0) & (boxes <= 1))
    torch.testing.assert_close(boxes[0], torch.tensor([0.0, 0.0, 0.75, 0.75]))


def test_crop_resize_takes_the_boxed_region():
    frames = torch.zeros(1, 3, 40, 40)
    frames[0, :, 20:, 20:] = 1.0  # bright bottom-right quadrant
    crop = crop_resize(frames, torch.tensor([[0.5, 0.5, 1.0, 1.0]]), (8, 8))
    assert crop.shape == (1, 3, 8, 8)
    assert crop.mean() > 0.98 and torch.all(crop[..., 1:, 1:] > 0.999)  # edges blend bilinearly
    dark = crop_resize(frames, torch.tensor([[0.0, 0.0, 0.5, 0.5]]), (8, 8))
    assert dark.mean() < 0.02


def test_hand_views_fall_back_to_halves_and_order_two_hands_by_x():
    boxes = torch.zeros(3, 4, 6)
    count = torch.tensor([0, 1, 2])
    boxes[1, 0] = torch.tensor([0.7, 0.1, 0.9, 0.3, 0.9, 0])  # one hand on the right
    boxes[2, 0] = torch.tensor([0.6, 0.2, 0.8, 0.4, 0.9, 0])  # most confident, but on the right
    boxes[2, 1] = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.8, 0])
    left, right, found = hand_views(boxes, count)
    torch.testing.assert_close(left[0], torch.tensor([0.0, 0.0, 0.5, 1.0]))
    torch.testing.assert_close(right[0], torch.tensor([0.5, 0.0, 1.0, 1.0]))
    assert found[1].tolist() == [False, True]
    torch.testing.assert_close(right[1], boxes[1, 0, :4])
    torch.testing.assert_close(left[2], boxes[2, 1, :4])
    torch.testing.assert_close(right[2], boxes[2, 0, :4])


def test_hand_views_use_the_two_most_confident_hands_and_a_lone_left_hand_fills_the_left_view():
    boxes = torch.zeros(3, 4, 6)
    count = torch.tensor([1, 3, 2])
    boxes[0, 0] = torch.tensor([0.1, 0.1, 0.3, 0.3, 0.9, 0])  # one hand on the left
    boxes[1, :3, :4] = torch.tensor([[0.5, 0, 0.7, 1], [0.8, 0, 0.9, 1], [0.0, 0, 0.1, 1]])  # third ignored
    boxes[2, :2, :4] = torch.tensor([[0.1, 0, 0.2, 1], [0.6, 0, 0.7, 1]])  # already left to right
    left, right, found = hand_views(boxes, count)
    assert found.tolist() == [[True, False], [True, True], [True, True]]
    torch.testing.assert_close(left[0], boxes[0, 0, :4])
    torch.testing.assert_close(right[0], torch.tensor([0.5, 0.0, 1.0, 1.0]))
    torch.testing.assert_close(left[1], boxes[1, 0, :4])
    torch.testing.assert_close(right[1], boxes[1, 1, :4])
    torch.testing.assert_close(left[2], boxes[2, 0, :4])
    torch.testing.assert_close(right[2], boxes[2, 1, :4])
    # a detector keeping one box per frame
    left, right, found = hand_views(boxes[:1, :1], count[:1])
    assert found.tolist() == [[True, False]]
    torch.testing.assert_close(left[0], boxes[0, 0, :4])
