"""How hand masks are stored: 64x64 binary masks bit-packed along rows, one byte per 8 pixels.

bench/mask_storage.py stores 20 sequences x 32 frames x 2 hands both ways in the cache's own layout
(one-sequence chunks, shuffle + gzip-4): bit-packed took 1679 bytes per sequence against 3998 for uint8
0/1 on moving-ellipse masks, and 25025 against 35608 on ragged random blobs, and read back no slower.
So the writer packs (``pack_masks``) and every reader unpacks (``unpack_masks``); the layout is defined
here only.
"""

from __future__ import annotations

import numpy as np
import torch

MASK_SIZE = 64  # masks are MASK_SIZE x MASK_SIZE over the (square, resized) frame
PACKED_WIDTH = MASK_SIZE // 8  # bytes per stored mask row
MASK_SOURCES = ("none", "box", "attention")  # ``mask_source`` values: no prompt, a YOLO box, DINO peaks


def pack_masks(masks: torch.Tensor) -> torch.Tensor:
    """(..., S, S) bool -> (..., S, S // 8) uint8, most significant bit first (NumPy's packbits)."""
    bits = masks.to(torch.uint8).unflatten(-1, (-1, 8))  # (..., S, S // 8, 8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=masks.device)
    return (bits * weights).sum(-1, dtype=torch.uint8)


def unpack_masks(packed: np.ndarray | torch.Tensor) -> np.ndarray:
    """(..., S, S // 8) uint8 as stored -> (..., S, S) bool."""
    array = packed.cpu().numpy() if isinstance(packed, torch.Tensor) else np.asarray(packed)
    return np.unpackbits(array.astype(np.uint8, copy=False), axis=-1).astype(bool)
