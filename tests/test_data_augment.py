"""Augmentation: one set of parameters per sequence, deterministic, with label swaps on flips."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest

from core.errors import UserError
from data.augment import SequenceAugmenter, parse_flip_swap

CLASSES = ["push", "swipe_left", "swipe_right"]
SIZE = 48


def moving_square(frames: int = 6) -> np.ndarray:
    """(T, 40, 56, 3): a bright square moving right over a textured background."""
    rng = np.random.default_rng(0)
    clip = np.repeat(rng.integers(0, 120, (1, 40, 56, 3), dtype=np.uint8), frames, axis=0)
    for t in range(frames):
        clip[t, 10:25, 5 + 6 * t : 20 + 6 * t] = 240
    return clip


def first_seed(augmenter: SequenceAugmenter, frames: np.ndarray, want_flip: bool) -> int:
    return next(s for s in range(200) if augmenter.augment(frames, 0, s).flipped == want_flip)


def test_every_frame_of_a_sequence_gets_identical_params():
    augmenter = SequenceAugmenter(SIZE, flip=True, class_names=CLASSES)
    clip = moving_square()
    seen: set[str] = set()
    for seed in range(40):
        result = augmenter.augment(clip, 0, seed)
        assert result.frames.shape == (6, SIZE, SIZE, 3) and result.frames.dtype == np.uint8
        assert all(params == result.params[0] for params in result.params[1:]), f"seed {seed}"
        seen.update(name for name, _ in result.params[0])
    # The check above covered every transform of the recipe, noise and distortion included.
    assert {"HorizontalFlip", "GaussNoise", "ISONoise", "OpticalDistortion", "GridDistortion"} <= seen
    assert {"MotionBlur", "GaussianBlur", "RandomBrightnessContrast", "ColorJitter"} <= seen


def test_identical_frames_stay_identical_even_with_noise():
    # If any parameter (or noise realisation) were resampled per frame, copies of one frame would diverge.
    augmenter = SequenceAugmenter(SIZE, flip=True)
    still = np.repeat(moving_square()[:1], 5, axis=0)
    for seed in range(25):
        out = augmenter(still, 0, seed)[0]
        assert all(np.array_equal(frame, out[0]) for frame in out[1:]), f"seed {seed}"


def test_same_seed_same_output_and_seeds_differ():
    augmenter = SequenceAugmenter(SIZE)
    clip = moving_square()
    first = augmenter(clip, 0, 5)[0]
    augmenter(clip, 0, 6)  # calls in between must not matter
    assert np.array_equal(first, augmenter(clip, 0, 5)[0])
    assert np.array_equal(first, SequenceAugmenter(SIZE)(clip, 0, 5)[0])
    outputs = {augmenter(clip, 0, seed)[0].tobytes() for seed in range(8)}
    assert len(outputs) == 8


def test_no_seed_means_resize_only():
    augmenter = SequenceAugmenter(SIZE, flip_swap=("swipe_left:swipe_right",), class_names=CLASSES)
    clip = moving_square()
    frames, label = augmenter(clip, 1, None)
    expected = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in clip])
    assert label == 1 and np.array_equal(frames, expected)


def test_flip_swaps_labels_both_ways_and_mirrors_the_motion():
    augmenter = SequenceAugmenter(SIZE, flip_swap=("swipe_left:swipe_right",), class_names=CLASSES)
    clip = moving_square()
    seed = first_seed(augmenter, clip, want_flip=True)
    left, right, push = CLASSES.index("swipe_left"), CLASSES.index("swipe_right"), CLASSES.index("push")

    frames, label = augmenter(clip, left, seed)
    assert label == right
    assert augmenter(clip, right, seed)[1] == left
    assert augmenter(clip, push, seed)[1] == push  # not in the swap map
    # The square moved right in the input; after the flip it moves left.
    columns = [np.argmax(frame.mean(axis=(0, 2))) for frame in frames]
    assert columns[-1] < columns[0]

    unflipped = first_seed(augmenter, clip, want_flip=False)
    assert augmenter(clip, left, unflipped)[1] == left


def test_flip_can_be_switched_off():
    augmenter = SequenceAugmenter(
        SIZE, flip=False, flip_swap=("swipe_left:swipe_right",), class_names=CLASSES
    )
    clip = moving_square()
    assert not any(augmenter.augment(clip, 1, seed).flipped for seed in range(30))
    assert all(augmenter(clip, 1, seed)[1] == 1 for seed in range(30))
    assert augmenter.describe() != SequenceAugmenter(SIZE, flip=True, class_names=CLASSES).describe()


def test_augmenter_pickles_for_dataloader_workers():
    augmenter = SequenceAugmenter(SIZE, flip_swap={"swipe_left": "swipe_right"}, class_names=CLASSES)
    clone = pickle.loads(pickle.dumps(augmenter))
    clip = moving_square()
    assert np.array_equal(clone(clip, 2, 11)[0], augmenter(clip, 2, 11)[0])
    json.dumps(augmenter.describe())  # goes into the cache key


@pytest.mark.parametrize(
    ("swap", "message"),
    [
        (("swipe_left-swipe_right",), "class_a:class_b"),
        (("swipe_left:jump",), "unknown class 'jump'"),
        (("push:push",), "itself"),
        (("push:swipe_left", "push:swipe_right"), "both"),
    ],
)
def test_bad_flip_swap_is_a_user_error(swap, message):
    with pytest.raises(UserError, match=message):
        parse_flip_swap(swap, CLASSES)


def test_wrong_frame_array_is_rejected():
    with pytest.raises(ValueError):
        SequenceAugmenter(SIZE)(np.zeros((4, 8, 8), np.uint8), 0, 1)
