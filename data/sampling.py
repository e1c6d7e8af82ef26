"""Which T frames of a video the model sees."""

from __future__ import annotations

import numpy as np


def sample_indices(num_frames: int, frames: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Pick ``frames`` (T) indices spread uniformly over a video of ``num_frames`` (n) frames.

    Strategy "centred bins": the video is cut into T equal time slices and each sample is the frame
    under the centre of its slice, ``floor((i + 0.5) * n / T)``. Every sample then stands for the same
    share of the gesture. When n >= T the indices are distinct; when n < T every frame appears, in order,
    repeated as evenly as possible. Integer arithmetic keeps it exact and deterministic.

    Returns ``indices`` (T,) int32 non-decreasing, ``valid`` (T,) uint8 that is 0 where an index repeats
    the previous one, and ``length = min(n, T)`` (the number of 1s in ``valid``).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    i = np.arange(frames, dtype=np.int64)
    indices = ((2 * i + 1) * num_frames // (2 * frames)).astype(np.int32)  # (T,)
    valid = np.ones(frames, dtype=np.uint8)  # (T,)
    valid[1:] = (indices[1:] != indices[:-1]).astype(np.uint8)
    return indices, valid, min(num_frames, frames)
