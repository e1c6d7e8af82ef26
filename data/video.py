"""Reading frames out of video files with PyAV: upright, by source index, without decoding what no one wants.

A wanted frame is addressed by its index in presentation order (0 = the first frame a full decode
yields). To reach frame 2,000 of a long recording the reader seeks to the keyframe before it and
decodes forward, naming each decoded frame by its timestamp: ``(pts - start) * time_base * rate``.
That holds only for constant-rate streams, so every index a timestamp gives is checked against
frame counting; a stream where the two disagree (variable rate, broken timestamps) is read again
from its first frame without seeking, which is always right.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import BadInputError

# Matched case-insensitively (".MP4" is a video too).
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts"}
)

# PyAV/FFmpeg decoder threading: "AUTO" lets FFmpeg pick frame and slice threads (bench/decode.py).
THREAD_TYPE = "AUTO"

# Until a stream shows its keyframe spacing, a jump of more than this many frames is worth a seek.
_MIN_SEEK_GAP = 16

# A timestamp must name a frame index to within this fraction of a frame, or the stream is not
# constant-rate and seeking is off for it.
_PTS_TOLERANCE = 0.3

# Metadata frame counts of some containers are off by a frame or two; a larger shortfall means damage.
_SHORTFALL_FRACTION = 0.05


def is_video_file(path: Path) -> bool:
    """True for a file whose extension, in any letter case, is a video container."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class DecodeCounter:
    """What reading cost in this process: frames decoded from videos, images opened, seeks, opens.

    Module-wide so benchmarks and tests can read it; DataLoader workers count in their own process.
    """

    video_frames: int = 0
    images: int = 0
    seeks: int = 0
    opens: int = 0

    def reset(self) -> None:
        self.video_frames = self.images = self.seeks = self.opens = 0


COUNTER = DecodeCounter()


def upright(frame: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a PyAV frame, turned as its display matrix says (portrait phone videos).

    ``frame.rotation`` is the matrix's counter-clockwise angle; ``np.rot90`` turns counter-clockwise
    for positive k, as FFmpeg's own autorotate does. Flips in the matrix are rare and not applied.
    """
    array = frame.to_ndarray(format="rgb24")  # (H, W, 3)
    quarter_turns = round(getattr(frame, "rotation", 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(array, quarter_turns)) if quarter_turns else array


class _SeekUnreliable(Exception):
    """Timestamps do not name frame indices here (variable rate, broken timestamps), or seeking misbehaves:
    only counting from the first frame is right."""


@dataclass
class _Clock:
    """Frame index <-> timestamp (in the stream's time base) of a constant-rate stream.

    Frame 0's timestamp is taken from the first decoded frame, not ``stream.start_time``: with
    B-frames, edit lists or MPEG-TS clocks the two need not agree.
    """

    ticks_per_frame: Fraction
    start: int | None = None

    @classmethod
    def of(cls, stream: Any) -> _Clock | None:
        rate = stream.average_rate or stream.guessed_rate
        if not rate or not stream.time_base:
            return None
        return cls(1 / (Fraction(rate) * Fraction(stream.time_base)))

    def pts(self, index: int) -> int:
        return int(self.start or 0) + int(index * self.ticks_per_frame)

    def index(self, pts: int | None) -> int:
        if pts is None:
            raise _SeekUnreliable
        if self.start is None:
            self.start = int(pts)  # the first frame of a pass from the beginning
        exact = (pts - self.start) / self.ticks_per_frame
        nearest = round(exact)
        if abs(exact - nearest) > _PTS_TOLERANCE:
            raise _SeekUnreliable
        return int(nearest)


class _Keyframes:
    """Keyframe spacing as far as decoding has shown it: used only to decide whether a seek pays off."""

    def __init__(self) -> None:
        self.widest = 0  # largest distance seen between two keyframes decoded one after the other
        self.last: int | None = None  # the latest keyframe of the current run (forgotten at a seek)

    def saw(self, index: int) -> None:
        if self.last is not None and index > self.last:
            self.widest = max(self.widest, index - self.last)
        self.last = index

    def gap_bound(self, position: int) -> int:
        """A lower bound of the keyframe spacing: the widest gap seen, or the run since the last one."""
        since_last = position - self.last if self.last is not None else 0
        return max(_MIN_SEEK_GAP, self.widest, since_last)

    def worth_seeking(self, position: int, target: int) -> bool:
        """Whether a keyframe (probably) lies after ``position`` and at or before ``target``, so that a
        seek skips frames a forward decode would pay for. Spacing unknown: only a jump of more than a
        lower bound of it is taken to pass one."""
        if self.widest and self.last is not None and position > self.last:
            predicted = self.last + (target - self.last) // self.widest * self.widest  # regular GOPs
            return predicted > position and target - position > _MIN_SEEK_GAP // 2
        return target - position > self.gap_bound(position)


def _open_stream(path: Path, thread_type: str) -> tuple[Any, Any]:
    import av  # lazy: only datasets of video files pay for PyAV

    container = av.open(str(path))
    COUNTER.opens += 1
    if not container.streams.video:
        container.close()
        raise BadInputError(f"{path}: has no video stream (truncated or not a video); re-encode or delete it")
    stream = container.streams.video[0]
    stream.thread_type = thread_type
    return container, stream


def _seek(container: Any, stream: Any, pts: int, keyframes: _Keyframes) -> Any:
    """Jump to the keyframe at or before ``pts`` and return a fresh decode of what follows."""
    container.seek(pts, backward=True, any_frame=False, stream=stream)
    COUNTER.seeks += 1
    keyframes.last = None
    return container.decode(stream)


def _read_pass(
    path: Path, wanted: list[int], seek: bool, thread_type: str
) -> tuple[dict[int, np.ndarray], int, np.ndarray | None]:
    """Frames ``wanted`` (sorted, unique), the number of frames the video has at least, and, when it
    ended before the last wanted frame, its last frame.

    Seeks forward when the next wanted frame lies more than about a keyframe interval ahead.
    """
    out: dict[int, np.ndarray] = {}
    container, stream = _open_stream(path, thread_type)
    with container:
        clock = _Clock.of(stream) if seek else None
        keyframes = _Keyframes()
        frames = container.decode(stream)
        position = 0  # index of the next frame the decoder yields; -1 just after a seek
        last = None
        seeks_left = 2 * len(wanted) + 8  # a demuxer that seeks erratically must not loop forever
        aim = pinned = -1  # the frame index the latest seek aimed at, and the target it served
        k = 0
        while k < len(wanted):
            target = wanted[k]
            # Frame 0 is always decoded first: it fixes the clock's start before any seek.
            ahead = keyframes.worth_seeking(position, target)
            if clock is not None and last is not None and position >= 0 and ahead and target != pinned:
                if seeks_left <= 0:
                    raise _SeekUnreliable
                aim = pinned = target  # one seek per target: one that lands short is decoded forward
                frames, position = _seek(container, stream, clock.pts(aim), keyframes), -1
                seeks_left -= 1
            frame = next(frames, None)
            if frame is None:
                if position < 0:
                    raise _SeekUnreliable  # a seek past the real end: only counting finds the length
                break
            COUNTER.video_frames += 1
            index = position if clock is None else clock.index(frame.pts)
            if position >= 0 and index != position:
                raise _SeekUnreliable  # timestamps and frame counting disagree
            if position < 0 and index > target:
                # Demuxers that seek by decode timestamps (B-frames) or by byte estimates (MPEG-PS)
                # can land after the target: aim earlier, stepping back further each time.
                if seeks_left <= 0:
                    raise _SeekUnreliable
                aim = max(0, aim - max(target - aim, index - target, 1))
                frames = _seek(container, stream, clock.pts(aim), keyframes)
                seeks_left -= 1
                continue
            position, last = index + 1, frame
            if frame.key_frame:
                keyframes.saw(index)
            if index == target:
                out[index] = upright(frame)
                k += 1
        short = k < len(wanted) and last is not None
        return out, max(position, 0), upright(last) if short else None


def read_video(
    path: Path,
    wanted: list[int] | np.ndarray,
    expected: int,
    *,
    seek: bool = True,
    thread_type: str = THREAD_TYPE,
    decode: str = "cpu",
) -> dict[int, np.ndarray]:
    """Frames ``wanted`` (sorted unique source indices) of the video at ``path``, each (H, W, 3) uint8
    RGB upright, in one open and one forward pass.

    ``expected`` is the frame count discovery found; a video that yields a frame or two fewer gets its
    last frame repeated for the missing ones (metadata counts are often off by that much), a larger
    shortfall is damage. ``decode``: ``cpu`` (PyAV), ``gpu`` (torchcodec's NVDEC decoder), ``auto`` (the GPU
    for 1080p and above); see data/gpu_decode.py.
    """
    import av

    path = Path(path)
    wanted = [int(i) for i in wanted]
    try:
        if decode != "cpu" and _decode_on_gpu(path, decode):
            return _read_gpu(path, wanted)
        try:
            out, count, tail = _read_pass(path, wanted, seek, thread_type)
        except _SeekUnreliable:
            out, count, tail = _read_pass(path, wanted, False, thread_type)
    except BadInputError:
        raise
    except PermissionError:
        raise BadInputError(f"{path}: cannot be read (permission denied); fix its permissions") from None
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        raise BadInputError(
            f"{path}: cannot be decoded ({' '.join(str(error).split()) or type(error).__name__}); "
            "re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or delete it"
        ) from None
    if count == 0:
        raise BadInputError(f"{path}: has no decodable frames; re-encode or delete it")
    if tail is not None:
        if expected - count > max(2, _SHORTFALL_FRACTION * expected):
            raise BadInputError(
                f"{path}: only {count} of its {expected} frames decode (truncated or corrupt); "
                "re-encode it or delete it"
            )
        for index in wanted:  # a metadata count a frame or two too high: repeat the last real frame
            out.setdefault(index, tail)
    return out


def _decode_on_gpu(path: Path, decode: str) -> bool:
    """``gpu``, or ``auto`` and the stream is 1080p or more (its coded size, read without decoding)."""
    from data.gpu_decode import use_gpu

    if decode == "gpu":
        return True
    container, stream = _open_stream(path, THREAD_TYPE)
    with container:
        size = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    return use_gpu(decode, *size, cuda=True, torchcodec=True)


def _read_gpu(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    from data.gpu_decode import read_video_gpu

    try:
        return read_video_gpu(path, wanted)
    except (RuntimeError, ValueError, IndexError) as error:
        raise BadInputError(
            f"{path}: cannot be decoded on the GPU ({' '.join(str(error).split()) or type(error).__name__}); "
            "re-encode it or extract with --decode cpu"
        ) from None
