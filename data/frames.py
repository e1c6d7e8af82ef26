"""Decoding pixels: frame images with PIL, video files with PyAV, always to (H, W, 3) uint8 RGB.

Every failure becomes a one-line ``BadInputError`` that names the file and says what to do, because a
bad frame is the user's to fix, not a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from data.sequence import Video
from errors import BadInputError

# Refuse images above this many pixels before decoding them: a 40 MP frame is already far beyond any
# video frame, and a decompression bomb would otherwise take all memory.
MAX_PIXELS = 40_000_000

# Metadata frame counts of some containers are off by a frame or two; a larger shortfall means damage.
_VIDEO_SHORTFALL_FRACTION = 0.05

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _undecodable(path: Path, error: BaseException) -> BadInputError:
    return BadInputError(
        f"{path}: cannot be decoded ({_one_line(error)}); "
        "re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or delete it"
    )


def open_image(path: Path) -> Image.Image:
    """``PIL.Image.open`` as Pillow defines it, even after another library replaced it process-wide.

    ultralytics (imported for the hand detector) swaps ``PIL.Image.open`` for a wrapper that, when a
    file is not a known image, runs ``pip install pi-heif`` and retries: a corrupt frame would start
    a package install, or fail with ModuleNotFoundError offline. A wrapper that keeps the original
    as ``_image_open`` in its module (as ultralytics does) or ``__wrapped__`` is unwrapped here.
    """
    opener = Image.open
    for _ in range(8):  # wrappers of wrappers, bounded
        if getattr(opener, "__module__", "PIL.Image") == "PIL.Image":
            break
        inner = getattr(opener, "__wrapped__", None) or getattr(
            sys.modules.get(getattr(opener, "__module__", "")), "_image_open", None
        )
        if not callable(inner):
            break
        opener = inner
    return opener(path)


def load_image(path: Path) -> np.ndarray:
    """Decode one frame image to (H, W, 3) uint8 RGB; grayscale, palette, RGBA and 16-bit are converted."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise BadInputError(
            f"{path}: cannot be read ({error.strerror or _one_line(error)}); "
            "check that it exists and is readable"
        ) from None
    if size == 0:
        raise BadInputError(f"{path}: is empty (0 bytes); re-export the frame or delete it")
    try:
        with open_image(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise BadInputError(
                    f"{path}: is {width}x{height} pixels, over the {MAX_PIXELS // 1_000_000} MP limit; "
                    "downscale the frames first"
                )
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError:
        raise BadInputError(
            f"{path}: is too large to decode safely (decompression bomb guard); downscale the frames first"
        ) from None
    except UnidentifiedImageError:
        raise BadInputError(
            f"{path}: is not a readable image (unknown or damaged format); "
            "re-export it as JPEG/PNG or delete it"
        ) from None
    except PermissionError:
        raise BadInputError(f"{path}: cannot be read (permission denied); fix its permissions") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadInputError(
            f"{path}: is truncated or corrupt ({_one_line(error)}); re-export the frame or delete it"
        ) from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8. 16-bit data is scaled, not clipped: PIL's own convert would saturate it to white."""
    if image.mode == "RGB":
        return np.array(image, dtype=np.uint8)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)  # (H, W)
        if image.mode == "F" and values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        elif image.mode != "F":
            values = values / 257.0  # 0..65535 -> 0..255
        gray = np.nan_to_num(values).clip(0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("P", "PA", "LA", "RGBA", "La", "RGBa"):
        # Via RGBA so palette transparency is honoured; the alpha channel itself is dropped.
        image = image.convert("RGBA")
    return np.array(image.convert("RGB"), dtype=np.uint8)


def probe_video(path: Path) -> int:
    """Frame count of a video file: container metadata, or decoded frames counted when it is unknown."""
    import av  # lazy: only datasets of video files pay for PyAV

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInputError(
                    f"{path}: has no video stream (truncated or not a video); re-encode or delete it"
                )
            stream = container.streams.video[0]
            count = int(stream.frames or 0)
            if count <= 0:
                count = sum(1 for _ in container.decode(stream))
    except BadInputError:
        raise
    except PermissionError:
        raise BadInputError(f"{path}: cannot be read (permission denied); fix its permissions") from None
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        raise _undecodable(path, error) from None
    if count <= 0:
        raise BadInputError(f"{path}: has no decodable frames; re-encode or delete it")
    return count


def _decode_video(path: Path, wanted: np.ndarray, expected: int) -> dict[int, np.ndarray]:
    """Decode frames ``wanted`` (sorted unique) in one pass, stopping after the last one needed."""
    import av

    out: dict[int, np.ndarray] = {}
    wanted_set = set(int(i) for i in wanted)
    last_wanted = int(wanted[-1])
    decoded = 0
    last_frame = None
    last_array: np.ndarray | None = None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInputError(
                    f"{path}: has no video stream (truncated or not a video); re-encode or delete it"
                )
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                last_frame = frame
                if index in wanted_set:
                    out[index] = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                if index >= last_wanted:
                    break
            # Kept only when the video ran out early, to stand in for the missing frames below.
            short = last_frame is not None and decoded <= last_wanted
            last_array = last_frame.to_ndarray(format="rgb24") if short else None
    except BadInputError:
        raise
    except PermissionError:
        raise BadInputError(f"{path}: cannot be read (permission denied); fix its permissions") from None
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        raise _undecodable(path, error) from None
    if decoded == 0:
        raise BadInputError(f"{path}: has no decodable frames; re-encode or delete it")
    if decoded <= last_wanted:
        shortfall = expected - decoded
        if shortfall > max(2, _VIDEO_SHORTFALL_FRACTION * expected):
            raise BadInputError(
                f"{path}: only {decoded} of its {expected} frames decode (truncated or corrupt); "
                "re-encode it or delete it"
            )
        # A metadata count a frame or two too high: stand in the last real frame for the missing ones.
        for index in wanted_set:
            out.setdefault(index, last_array)
    return out


def read_frames(video: Video, indices: np.ndarray) -> np.ndarray:
    """Frames ``indices`` (T,) of ``video`` as (T, H, W, 3) uint8 RGB; each distinct frame is decoded once."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1 or indices.size == 0:
        raise ValueError(f"indices must be a non-empty 1-D array, got shape {indices.shape}")
    if indices.min() < 0 or indices.max() >= video.source_length:  # indices into the source
        raise ValueError(f"indices must lie in [0, {video.source_length}) for {video.key}")
    unique = np.unique(indices)
    if video.video_file is not None:
        decoded = _decode_video(video.video_file, unique, video.source_length)
        names = {int(i): f"{video.video_file} (frame {int(i)})" for i in unique}
    else:
        decoded = {int(i): load_image(video.frames[int(i)]) for i in unique}
        names = {int(i): str(video.frames[int(i)]) for i in unique}
    first = int(unique[0])
    ref_h, ref_w = decoded[first].shape[:2]
    for index in (int(i) for i in unique):
        height, width = decoded[index].shape[:2]
        if (height, width) != (ref_h, ref_w):
            raise BadInputError(
                f"{names[index]}: is {width}x{height} but {names[first]} is {ref_w}x{ref_h}; "
                "all frames of one video must have the same size, so resize them"
            )
    return np.stack([decoded[int(i)] for i in indices])  # (T, H, W, 3)
