"""Decoding pixels: frame images with PIL, video files with PyAV, always to (H, W, 3) uint8 RGB.

Every failure becomes a one-line ``BadInputError`` that names the file and says what to do, because a
bad frame is the user's to fix, not a bug.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from core.errors import BadInputError, one_line
from data.sequence import Video
from data.video import COUNTER, THREAD_TYPE, read_video

# Refuse images above this many pixels before decoding them: a 40 MP frame is already far beyond any
# video frame, and a decompression bomb would otherwise take all memory.
MAX_PIXELS = 40_000_000

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _undecodable(path: Path, error: BaseException) -> BadInputError:
    return BadInputError(
        f"{path}: cannot be decoded ({one_line(error)}); "
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
            f"{path}: cannot be read ({error.strerror or one_line(error)}); "
            "check that it exists and is readable"
        ) from None
    if size == 0:
        raise BadInputError(f"{path}: is empty (0 bytes); re-export the frame or delete it")
    COUNTER.images += 1
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
            f"{path}: is truncated or corrupt ({one_line(error)}); re-export the frame or delete it"
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
                stream.thread_type = THREAD_TYPE
                count = sum(1 for _ in container.decode(stream))
                COUNTER.video_frames += count
    except BadInputError:
        raise
    except PermissionError:
        raise BadInputError(f"{path}: cannot be read (permission denied); fix its permissions") from None
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        raise _undecodable(path, error) from None
    if count <= 0:
        raise BadInputError(f"{path}: has no decodable frames; re-encode or delete it")
    return count


# A source is a video file, or the frame files of a folder in source order (index i = frames[i]).
Source = Path | tuple[Path, ...]


def read_source(
    source: Source, wanted: Iterable[int], num_frames: int, decode: str = "cpu"
) -> dict[int, np.ndarray]:
    """Frames ``wanted`` (source indices) of ``source``, each (H, W, 3) uint8 RGB, by index.

    A video is opened once and read forward, seeking past what no one wants (data/video.py); of a
    frame folder only the wanted images are opened.
    """
    unique = sorted({int(i) for i in wanted})
    if not unique:
        return {}
    if unique[0] < 0 or unique[-1] >= num_frames:
        raise ValueError(f"indices must lie in [0, {num_frames}) for {_describe(source)}")
    if isinstance(source, Path):
        return read_video(source, unique, num_frames, decode=decode)  # decode: cpu|gpu|auto (videos only)
    return {i: load_image(source[i]) for i in unique}


def read_segments(
    source: Source,
    segments: Sequence[np.ndarray],
    num_frames: int,
    image_size: int | None = None,
    decode: str = "cpu",
) -> list[np.ndarray]:
    """Several index arrays of one source (sequences, segments of one recording) read in one pass:
    one (T_i, H, W, 3) uint8 array per array of ``segments``, each distinct frame decoded once.

    Frames of one array that differ in size are each resized to ``image_size`` (square; the first
    frame's size when None), with a one-line warning naming the folder, rather than stopping the run.
    """
    arrays = [np.asarray(indices, dtype=np.int64) for indices in segments]
    for indices in arrays:
        if indices.ndim != 1 or indices.size == 0:
            raise ValueError(f"indices must be a non-empty 1-D array, got shape {indices.shape}")
    decoded = read_source(source, (int(i) for a in arrays for i in a), num_frames, decode)
    return [_stack(source, indices, [decoded[int(i)] for i in indices], image_size) for indices in arrays]


def read_frames(video: Video, indices: np.ndarray, image_size: int | None = None) -> np.ndarray:
    """Frames ``indices`` (T,) of ``video`` as (T, H, W, 3) uint8 RGB; each distinct frame is decoded once."""
    return read_segments(source_of(video), [indices], video.source_length, image_size)[0]


def source_of(video: Video) -> Source:
    return video.video_file if video.video_file is not None else tuple(video.frames)


def _describe(source: Source) -> str:
    """The file or folder a user would look at: the video, or the folder of the frames."""
    return str(source) if isinstance(source, Path) else str(Path(source[0]).parent)


def _stack(
    source: Source, indices: np.ndarray, frames: list[np.ndarray], image_size: int | None
) -> np.ndarray:
    """(T, H, W, 3): frames of one size as they are; of several sizes, each resized to one."""
    sizes = {frame.shape[:2] for frame in frames}
    if len(sizes) == 1:
        return np.stack(frames)
    import cv2  # albumentations' own dependency; INTER_AREA as the augmenter resizes

    height, width = (image_size, image_size) if image_size else frames[0].shape[:2]
    folder = _describe(source)
    if folder not in _WARNED_MIXED_SIZES:
        _WARNED_MIXED_SIZES.add(folder)
        odd = next(int(i) for i, f in zip(indices, frames, strict=True) if f.shape != frames[0].shape)
        name = source[odd].name if not isinstance(source, Path) else f"frame {odd}"
        shown = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
        # tqdm.write: a line of its own even while the extraction's progress bar is drawn.
        tqdm.write(
            f"warning: {folder}: frames differ in size ({shown}; e.g. {name}); "
            f"each is resized to {width}x{height}",
            file=sys.stderr,
        )
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


# Folders already warned about in this process: one line per folder, not one per sequence.
_WARNED_MIXED_SIZES: set[str] = set()
