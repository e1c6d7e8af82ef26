"""Small videos the tests write with PyAV: frames whose pixels say which frame they are."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames: list[np.ndarray], codec: str = "mpeg4", **kw: object) -> Path:
    """Encode (H, W, 3) uint8 frames at 25 fps. ``gop``, ``options`` (codec options) and ``rotation``
    (a display matrix turning the picture that many degrees counter-clockwise) are optional."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if kw.get("gop"):
            stream.codec_context.gop_size = int(kw["gop"])
        if kw.get("options"):
            stream.options = dict(kw["options"])
        if kw.get("rotation") is not None:
            stream.set_display_rotation(kw["rotation"])
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def flat_frames(count: int, size: tuple[int, int] = (48, 32)) -> list[np.ndarray]:
    """Flat grey frames whose brightness encodes their index (10 * i): order mistakes show in pixels."""
    return [np.full((size[1], size[0], 3), 10 * i, np.uint8) for i in range(count)]


def moving_frames(count: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """Frames that differ everywhere from one index to the next (a bar sweeps, the tone ramps), so any
    frame read in place of another is far off."""
    width, height = size
    out = []
    for i in range(count):
        frame = np.full((height, width, 3), (i * 37) % 200, np.uint8)
        frame[(2 * i) % height, :, 1] = 255
        frame[:, (3 * i) % width, 2] = 255
        out.append(frame)
    return out
