"""The frames of one frame folder, listed from names alone, and a memo that makes a second listing free.

A corpus like Jester holds millions of frame files, so listing never opens or stats a frame: one
``os.scandir`` per folder, names ordered by their number (``00001.jpg``, ``img_12.png``,
``frame-0003.jpg``). A folder of contiguous, uniformly named frames is stored as a pattern (prefix,
width, first number, count, suffix) instead of a million ``Path`` objects, and ``ListingMemo`` keeps those
listings on disk keyed by each folder's mtime, so an unchanged tree is planned again without listing it.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import pickle
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_path
from core.errors import BadInputError
from core.sealed import seal, unseal

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
_IMAGE_ENDINGS = tuple(IMAGE_SUFFIXES | {s.upper() for s in IMAGE_SUFFIXES})
# The last run of digits in the name, before the suffix: 'img_12.png' -> 12, 'clip3_frame-0007.jpg' -> 7.
_NUMBER = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)(?P<rest>\D*)$")
MEMO_VERSION = 4  # 4: segments of IPN and EgoGesture are cut by frame number
# The kept parses (``ListingMemo.keep``: the Dataset a format read) have their own version, so a change to
# what a parse holds re-parses the corpora without listing every folder or probing every video again.
# 5: HaGRID's annotations are packed (HagridNotes); a kept parse of plain dicts is parsed again.
PARSE_VERSION = 5

# (prefix, width, first, count, suffix): names f"{prefix}{n:0{width}d}{suffix}" for n in first..first+count-1
Pattern = tuple[str, int, int, int, str]


class FrameList(Sequence[Path]):
    """Frame paths of one folder in numeric order, built lazily from a pattern or a tuple of names."""

    # The folder is kept as a string: a memo of a million-frame corpus unpickles tens of thousands of
    # these, and a Path costs ~10x a str to rebuild.
    __slots__ = ("_folder", "names", "pattern")

    def __init__(self, folder: Path, names: tuple[str, ...] = (), pattern: Pattern | None = None) -> None:
        self._folder = os.fspath(folder)
        self.names = names
        self.pattern = pattern

    @property
    def folder(self) -> Path:
        return Path(self._folder)

    def name(self, index: int) -> str:
        if self.pattern is None:
            return self.names[index]
        prefix, width, first, count, suffix = self.pattern
        if not -count <= index < count:
            raise IndexError(index)
        return f"{prefix}{first + index % count:0{width}d}{suffix}"

    def __len__(self) -> int:
        return self.pattern[3] if self.pattern is not None else len(self.names)

    def positions(self, first: int, last: int) -> tuple[int, int]:
        """0-based positions of the first and last frame whose names number ``first``..``last``: how a
        corpus that annotates frames by the numbers in their names (IPN Hand, EgoGesture) is cut. A frame
        missing from the run (deleted as corrupt) then leaves the frames after it where they were. Numbers
        beyond the folder's frames map past its ends (by their distance), so a bound outside the
        recording is still caught as one."""
        if self.pattern is not None:  # contiguous: position = number - the first number
            return first - self.pattern[2], last - self.pattern[2]
        numbers = [int(_NUMBER.match(name.rsplit(".", 1)[0])["digits"]) for name in self.names]  # sorted
        if not numbers:
            return first, last
        start = bisect.bisect_left(numbers, first) if first >= numbers[0] else first - numbers[0]
        end = bisect.bisect_right(numbers, last) - 1
        if last > numbers[-1]:
            end = len(numbers) - 1 + last - numbers[-1]
        return start, end

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        return Path(self._folder, self.name(index))

    def __iter__(self) -> Iterator[Path]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._folder, len(self)))

    def __getstate__(self) -> tuple:
        return (self._folder, self.names, self.pattern)

    def __setstate__(self, state: tuple) -> None:
        self._folder, self.names, self.pattern = state

    def __repr__(self) -> str:
        return f"FrameList({str(self.folder)!r}, {len(self)} frames)"


def _as_pattern(numbered: list[tuple[int, str]]) -> Pattern | None:
    """The pattern that spells exactly these (number, name) pairs, or None."""
    first_number, first_name = numbered[0]
    match = _NUMBER.match(first_name)
    if match is None:
        return None
    # Interned: a corpus has a few spellings (".jpg", "img_"), and one object each lets a memo pickle
    # each spelling once instead of once per folder.
    prefix, digits, rest = sys.intern(match["prefix"]), match["digits"], sys.intern(match["rest"])
    for width in (len(digits), 0):
        pattern = (prefix, width, first_number, len(numbered), rest)
        if all(f"{prefix}{first_number + i:0{width}d}{rest}" == name for i, (_, name) in enumerate(numbered)):
            return pattern
    return None


_FORMS: dict[tuple[str, int, str], re.Pattern[str]] = {}


def _contiguous(names: list[str]) -> Pattern | None:
    """Fast path for the common case, names like 00001.jpg .. 00036.jpg, checked without a Python step
    per name: the lowest and highest names (same prefix, suffix and digit width, so their order is the
    numeric order) span exactly len(names) numbers, and one regex pass finds every name of that form.
    Names in a folder are unique, so that is exactly the contiguous run."""
    low, high = _NUMBER.match(min(names)), _NUMBER.match(max(names))
    if low is None or high is None:
        return None
    prefix, digits, rest = low["prefix"], low["digits"], low["rest"]
    if (high["prefix"], len(high["digits"]), high["rest"]) != (prefix, len(digits), rest):
        return None
    start, width = int(digits), len(digits)
    if int(high["digits"]) - start + 1 != len(names):
        return None
    form = _FORMS.get((prefix, width, rest))
    if form is None:
        form = _FORMS[(prefix, width, rest)] = re.compile(
            f"(?:{re.escape(prefix)}\\d{{{width}}}{re.escape(rest)}\n)*"
        )
    if form.fullmatch("\n".join(names) + "\n") is None:
        return None
    return (prefix, width, start, len(names), rest)


def number_frames(folder: str | Path, names: list[str]) -> FrameList:
    """Order frame ``names`` of ``folder`` numerically; a name without a number, or two frames with one
    number, leave the order unknown and are bad input naming the file."""
    if names and (pattern := _contiguous(names)) is not None:  # names in a folder are unique
        return FrameList(folder, pattern=pattern)
    numbered: list[tuple[int, str]] = []
    for name in names:
        match = _NUMBER.match(name.rsplit(".", 1)[0])
        if match is None:
            raise BadInputError(f"{Path(folder, name)}: frame name has no number to order it by; rename it")
        numbered.append((int(match["digits"]), name))
    numbered.sort()
    for (n_a, a), (n_b, b) in zip(numbered, numbered[1:], strict=False):
        if n_a == n_b:
            raise BadInputError(
                f"{Path(folder, b)}: has the same frame number {n_a} as {a}, so the frame order is "
                "ambiguous; rename or delete one"
            )
    if not numbered:
        return FrameList(folder)
    pattern = _as_pattern(numbered)
    return FrameList(folder, pattern=pattern) if pattern else FrameList(folder, tuple(n for _, n in numbered))


def _listdir(folder: str | Path) -> list[str]:
    try:
        return os.listdir(folder)  # names only: no DirEntry, no stat
    except FileNotFoundError:
        raise BadInputError(
            f"{folder}: frame folder does not exist; check the path or the annotation"
        ) from None
    except NotADirectoryError:
        raise BadInputError(f"{folder}: is a file, not a frame folder; check the path") from None
    except OSError as error:
        raise BadInputError(f"{folder}: cannot list folder ({error.strerror or error}); check it") from None


def _images(names: list[str]) -> list[str]:
    return [
        n
        for n in names
        if (n.endswith(_IMAGE_ENDINGS) or os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES)
        and not n.startswith(".")
    ]


def frame_names(folder: str | Path) -> list[str]:
    """Names of the image files in ``folder``, from one directory read; hidden files are ignored."""
    return _images(_listdir(folder))


def list_frames(folder: str | Path) -> FrameList:
    """The numerically ordered frames of ``folder``. A folder holding nothing but contiguously numbered
    images (the usual case) is recognised from one parsed name, without filtering or parsing the rest."""
    names = _listdir(folder)
    pattern = _contiguous(names) if names else None
    if pattern is not None and pattern[4].lower() in IMAGE_SUFFIXES:
        return FrameList(folder, pattern=pattern)
    return number_frames(folder, _images(names))


def memo_path(cache_root: Path, data: Path | None) -> Path:
    """Where the listings of dataset root ``data`` are kept under a ``--cache-dir``: outside every key
    directory, so all extractions of one corpus share them, and so do the readers that go back to it."""
    root_id = hashlib.sha256(str(Path(data or "").resolve()).encode()).hexdigest()[:16]
    return Path(cache_root) / ".listings" / f"{root_id}.pkl"


class ListingMemo:
    """Folder listings persisted between runs, each valid while its folder's mtime is unchanged.

    Adding, removing or renaming a frame changes the folder's mtime, so the folder is listed again; a frame
    rewritten in place keeps the listing right (its name did not change). Video files' frame counts are
    kept the same way, each while its size and mtime are unchanged. Without a path it only lists.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        # Two files: the kept parses (read first), and the folder listings, read only when a parse must
        # be redone, so an unchanged corpus never pays for loading its listings.
        self.results_path = self.path.with_name(self.path.name + ".parsed") if self.path else None
        self._entries: dict[str, tuple[int, tuple[str, ...] | None, Pattern | None]] | None = None
        # signature -> (annotation file stamps, consulted folder mtimes, the parsed result)
        self.results: dict[str, tuple[tuple, dict[str, int], Any]] = _load(self.results_path, PARSE_VERSION)
        self.consulted: dict[str, int] = {}  # folder -> mtime_ns (-1: missing) seen by this run
        self.lengths_path = self.path.with_name(self.path.name + ".lengths") if self.path else None
        self._lengths: dict[str, tuple[int, int, int]] | None = None  # video -> (size, mtime_ns, frames)
        self.changed = False

    @property
    def entries(self) -> dict[str, tuple[int, tuple[str, ...] | None, Pattern | None]]:
        if self._entries is None:
            self._entries = _load(self.path)
        return self._entries

    def result(self, signature: str, files: list[Path]) -> Any | None:
        """A whole parse kept by ``keep``, when its annotation files and every folder it consulted are
        unchanged: an unchanged corpus is planned again from one stat per folder."""
        stored = self.results.get(signature)
        if stored is None or stored[0] != _stamps(files):
            return None
        for folder, mtime in stored[1].items():
            try:
                if os.stat(folder).st_mtime_ns != mtime:
                    return None
            except OSError:
                if mtime != -1:
                    return None
        return stored[2]

    def keep(self, signature: str, files: list[Path], result: Any) -> None:
        """Remember ``result`` of parsing with ``files`` and the folders consulted since construction."""
        self.results[signature] = (_stamps(files), dict(self.consulted), result)
        self.changed = True

    def watch(self, folder: str | Path) -> None:
        """Make a parse kept from now on depend on ``folder``'s listing (a parse that listed it itself,
        as HaGRID's per-class image folders are): reused only while its mtime is the same, or while it is
        still missing."""
        try:
            self.consulted[os.fspath(folder)] = os.stat(folder).st_mtime_ns
        except (OSError, ValueError):
            self.consulted[os.fspath(folder)] = -1

    def frames(self, folder: str | Path) -> FrameList:
        """The numerically ordered frames of ``folder``, from the memo when the folder is unchanged."""
        key = os.fspath(folder)
        try:
            mtime = os.stat(folder).st_mtime_ns
        except FileNotFoundError:
            self.consulted[key] = -1
            raise BadInputError(
                f"{folder}: frame folder does not exist; check the path or annotation"
            ) from None
        except OSError as error:
            raise BadInputError(f"{folder}: cannot be read ({error.strerror or error}); check it") from None
        except ValueError:  # a NUL in the name, from an annotation file
            raise BadInputError(f"{ascii(str(folder))}: not a valid folder name (a NUL byte)") from None
        self.consulted[key] = mtime
        known = self.entries.get(key)
        if known is not None and known[0] == mtime:
            return FrameList(folder, known[1] or (), known[2])
        listing = list_frames(folder)
        self.entries[key] = (mtime, listing.names or None, listing.pattern)
        self.changed = True
        return listing

    def video_length(self, path: Path) -> int:
        """Frames of the video file ``path`` (``probe_video``), kept while its size and mtime_ns are
        unchanged: planning a corpus of videos again opens none of them (a container without a frame count
        is decoded whole to count it). A video that fails to probe is never kept, so it fails again."""
        from data.frames import probe_video  # lazy: listing frame folders needs no decoder

        try:
            st = os.stat(path)
        except OSError:
            return probe_video(path)  # says what is wrong with the path
        if self._lengths is None:
            self._lengths = _load(self.lengths_path)
        key = os.fspath(path)
        known = self._lengths.get(key)
        if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
            return known[2]
        count = probe_video(path)
        self._lengths[key] = (st.st_size, st.st_mtime_ns, count)
        self.changed = True
        return count

    def save(self) -> None:
        """Write the memo atomically (tmp + replace); a read-only place just means no memo."""
        if self.path is None or not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        if self._entries is not None:
            _dump(self.path, self._entries)
        if self._lengths is not None:
            _dump(self.lengths_path, self._lengths)
        _dump(self.results_path, self.results, PARSE_VERSION)


def _load(path: Path | None, version: int = MEMO_VERSION) -> dict:
    """A memo file's dict; missing, stale (written under another ``version``) or damaged only costs a
    fresh listing."""
    if path is None or not path.is_file():
        return {}
    try:
        memo = unseal(path.read_bytes())  # None unless this user wrote it: a shared cache runs no code
        written, payload = memo if isinstance(memo, tuple) and len(memo) == 2 else (None, None)
        return payload if written == version and isinstance(payload, dict) else {}
    except (OSError, EOFError, ValueError, TypeError, AttributeError, ImportError, pickle.UnpicklingError):
        return {}


def _dump(path: Path, payload: dict, version: int = MEMO_VERSION) -> None:
    """Write sealed and atomically; a read-only place just means no memo."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(seal((version, payload)))
    except OSError:
        pass


def _stamps(files: list[Path]) -> tuple:
    """(path, size, mtime_ns) of each file; None for a missing one."""
    out = []
    for path in files:
        try:
            st = os.stat(path)
            out.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(path), None, None))
    return tuple(out)
