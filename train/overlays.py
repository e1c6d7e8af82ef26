"""Draw what the encoders saw onto an original frame: DINO attention, hand masks, boxes and landmarks.

Every cached position is normalised to the square the encoders saw (``--image-size``), which was a plain
resize of the whole frame, so it maps back onto the original frame by its width and height alone. Each
function takes and returns an (H, W, 3) uint8 RGB frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from train.attention_masks import attention_keep, unpack_masks

HAND_COLOURS = ((60, 220, 60), (60, 140, 255))  # RGB: hand slot 0 green, hand slot 1 blue
BOX_COLOUR = (255, 220, 0)
REGION_COLOUR = (0, 255, 255)  # the attention region SwAV's crop is cut around
# MediaPipe's 21 hand landmarks: wrist, then four joints per finger (thumb .. little finger).
HAND_EDGES = (
    *((0, 1), (1, 2), (2, 3), (3, 4)),
    *((0, 5), (5, 6), (6, 7), (7, 8)),
    *((5, 9), (9, 10), (10, 11), (11, 12)),
    *((9, 13), (13, 14), (14, 15), (15, 16)),
    *((13, 17), (0, 17), (17, 18), (18, 19), (19, 20)),
)


def _thickness(frame: np.ndarray) -> int:
    return max(1, round(min(frame.shape[:2]) / 240))


def draw_attention(frame: np.ndarray, attn: np.ndarray, mass: float) -> np.ndarray:
    """Blend the max-normalised (h, w) attention map in as a heat map and outline the region holding
    the top ``mass`` of it (the same threshold as SwAV's crop)."""
    hgt, wid = frame.shape[:2]
    attn = np.clip(np.nan_to_num(attn.astype(np.float32)), 0.0, None)
    scaled = attn / max(float(attn.max()), 1e-12)
    heat = cv2.resize(scaled, (wid, hgt), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]  # BGR->RGB
    out = cv2.addWeighted(frame, 0.55, np.ascontiguousarray(colour), 0.45, 0.0)
    region = attention_keep(attn[None], mass)[0].astype(np.uint8)
    region = cv2.resize(region, (wid, hgt), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, REGION_COLOUR, _thickness(frame))
    return out


def draw_masks(frame: np.ndarray, masks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Tint each valid hand's mask in its slot colour and outline it. ``masks`` (2, 64, 64) or packed."""
    hgt, wid = frame.shape[:2]
    out = frame.copy()
    for slot, mask in enumerate(unpack_masks(masks)):
        if not valid[slot] or not mask.any():
            continue
        big = cv2.resize(mask.astype(np.uint8), (wid, hgt), interpolation=cv2.INTER_NEAREST).astype(bool)
        colour = np.array(HAND_COLOURS[slot % 2], np.float32)
        out[big] = (0.45 * out[big] + 0.55 * colour).astype(np.uint8)
        contours, _ = cv2.findContours(big.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, HAND_COLOURS[slot % 2], _thickness(frame))
    return out


def draw_boxes(frame: np.ndarray, boxes: np.ndarray, count: int) -> np.ndarray:
    """Hand boxes, (K, 4+) normalised x1 y1 x2 y2, then the detector's confidence and class where it made
    them (a corpus' annotated boxes have neither); the first ``count``."""
    hgt, wid = frame.shape[:2]
    out = frame.copy()
    for box in boxes[: int(count)]:
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        p1 = (round(x1 * (wid - 1)), round(y1 * (hgt - 1)))
        p2 = (round(x2 * (wid - 1)), round(y2 * (hgt - 1)))
        cv2.rectangle(out, p1, p2, BOX_COLOUR, _thickness(frame))
        if wid >= 200 and len(box) > 4:
            cv2.putText(out, f"{float(box[4]):.2f}", (p1[0], max(p1[1] - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, BOX_COLOUR, 1, cv2.LINE_AA)  # fmt: skip
    return out


def draw_landmarks(frame: np.ndarray, points: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """21 landmarks per valid hand, ``points`` (2, 21, 3) with x, y normalised to the frame, as a
    skeleton in the hand's slot colour."""
    hgt, wid = frame.shape[:2]
    out = frame.copy()
    for slot, hand in enumerate(points):
        if not valid[slot]:
            continue
        xy = [(round(float(x) * (wid - 1)), round(float(y) * (hgt - 1))) for x, y in hand[:, :2]]
        for a, b in HAND_EDGES:
            cv2.line(out, xy[a], xy[b], HAND_COLOURS[slot % 2], _thickness(frame), cv2.LINE_AA)
        for p in xy:
            cv2.circle(out, p, _thickness(frame) + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """A line of text in the top-left corner, on frames wide enough to read it."""
    if frame.shape[1] < 200:
        return frame
    out = frame.copy()
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out
