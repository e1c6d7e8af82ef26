"""`show`: one video's sampled frames as an MP4, with what the encoders saw drawn over them.

The frames are the video's originals at the positions the cache sampled (``frame_indices``), one MP4
frame per sampled frame. Overlays come from the cache when it holds the video (matched by its sequence
id ``<class>/<video_id>`` and checked against its frame count), so nothing is run; otherwise only the
streams that compute the chosen overlays are re-run, with the cache's own encoders (``extract.single``).
An overlay whose stream the cache was never extracted with cannot be computed from it: a one-line error.
Landmarks imported from ``.npz`` files (``--landmarks npz:DIR``) can be re-extracted only for a video whose
file is in DIR: without one, drawing every overlay leaves them out (a note), and ``--landmarks`` refuses.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cache.schema import decode_id
from core.atomic import atomic_path, refuse_unwritable
from core.device import resolve_device
from core.errors import BadInputError, CacheError
from data.frames import read_frames
from data.inputs import predict_inputs
from data.landmark_files import find_npz, npz_names
from data.sampling import sample_indices
from data.sequence import Video
from models.tracking import BOX_SOURCES
from train.attention_masks import attention_mass
from train.config import ShowConfig
from train.corpus import corpus_videos, source_config
from train.runtime import open_manifest

# overlay -> the cache fields it draws from: the first alternative the cache holds all of (boxes: the
# hand detector's, else a corpus' own annotated ones, as the hand track reads them).
OVERLAY_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "attention": (("dino_attention",),),
    "masks": (("hand_masks", "mask_valid"),),
    "boxes": BOX_SOURCES,
    "landmarks": (("landmarks", "landmark_valid"),),
}
WHAT = {"attention": "DINO attention", "masks": "hand masks", "boxes": "hand boxes", "landmarks": "landmarks"}


def run_show(cfg: ShowConfig) -> Path:
    """Write ``cfg.out``; returns its path. Notes (where the overlays came from) go to stderr."""
    if len(cfg.video) != 1:
        raise BadInputError(f"show takes one VIDEO, got {len(cfg.video)}; pass a video file or frame folder")
    if Path(cfg.out).suffix.lower() != ".mp4":
        raise BadInputError(f"--out {cfg.out}: show writes MP4; name the file FILE.mp4")
    if not 0 < cfg.fps < 1000:  # also refuses nan and inf, which the video writer cannot take
        raise BadInputError(f"--fps must be a frame rate above 0 and below 1000, got {cfg.fps}")
    refuse_unwritable(Path(cfg.out), "--out")  # before any work: the MP4 is written last
    cache_dir = Path(cfg.cache)
    manifest = open_manifest(cache_dir)
    chosen = [name for name in OVERLAY_FIELDS if getattr(cfg, name)] or _everything_held(manifest, cache_dir)
    sources = _available(chosen, manifest, cache_dir)  # overlay -> the fields it draws from
    fields = _fields(sources)
    named = _cached_sequence(str(cfg.video[0]), manifest, cache_dir)
    if named is not None:  # a sequence id: its row, drawn over the corpus frames it was extracted from
        video, (path, row) = named
        arrays = _read_row(path, row, fields, video.video_id)
    else:
        video = resolve_video(Path(cfg.video[0]))
        arrays = cached_arrays(video, manifest, cache_dir, fields)
    if arrays is None:  # the cache lacks the video as it is now: landmarks only where its file is
        sources = _extractable(sources, video, manifest, cache_dir, asked=cfg.landmarks)
        fields = _fields(sources)
    if arrays is None and not fields:  # nothing to draw (no landmarks): the frames alone
        arrays = {"frame_indices": sample_indices(video.num_frames, int(manifest["dims"]["frames"]))[0]}
    elif arrays is None:
        if "annotated_boxes" in fields:  # annotations are the corpus', and this video is not in it
            print(
                f"note: a video the cache lacks has no annotated boxes; {video.video_id} shows none",
                file=sys.stderr,
            )
        arrays = _extract(video, manifest, fields, cfg.device)
    frames = read_frames(video, np.asarray(arrays["frame_indices"]))  # (T, H, W, 3), original size
    drawn = _draw(frames, arrays, sources, attention_mass(manifest))
    _write_mp4(drawn, Path(cfg.out), cfg.fps)
    return Path(cfg.out)


def resolve_video(path: Path) -> Video:
    """The one video ``path`` names: a video file, a frame folder holding one video, or FOLDER/<video_id>."""
    videos = predict_inputs(path)
    if len(videos) != 1:
        ids = ", ".join(v.video_id for v in videos[:3])
        raise BadInputError(f"{path}: holds {len(videos)} videos ({ids}, ...); pass one as {path}/<video_id>")
    return videos[0]


def _fields(sources: dict[str, tuple[str, ...]]) -> set[str]:
    """The cache fields the overlays in ``sources`` draw from."""
    return {f for names in sources.values() for f in names}


def _cached_fields(manifest: dict[str, Any]) -> set[str]:
    return set((manifest.get("dims") or {}).get("fields") or {})


def _source(overlay: str, have: set[str]) -> tuple[str, ...] | None:
    """The fields ``overlay`` draws from: its first alternative the cache holds all of; None: none."""
    return next((names for names in OVERLAY_FIELDS[overlay] if set(names) <= have), None)


def _everything_held(manifest: dict[str, Any], cache_dir: Path) -> list[str]:
    """With no overlay flag, every overlay the cache holds the fields of, named in a note: asking for
    nothing should still show what the cache saw, not stop at an error."""
    have = _cached_fields(manifest)
    held = [name for name in OVERLAY_FIELDS if _source(name, have) is not None]
    what = ", ".join(f"--{name}" for name in held) or "no overlay: the frames alone"
    print(f"note: no overlay chosen; drawing what cache {cache_dir} holds ({what})", file=sys.stderr)
    return held


def _available(chosen: list[str], manifest: dict[str, Any], cache_dir: Path) -> dict[str, tuple[str, ...]]:
    """The chosen overlays the cache's streams can give, each with the fields it draws from. Landmarks are
    optional (a note when absent); any other overlay without its fields is an error: the cache's encoders
    cannot compute it. ``--landmarks`` alone on a cache without them is an error too: it would draw nothing,
    and bare frames would pass for a video in which no hand was found."""
    have = _cached_fields(manifest)
    streams = sorted({spec.get("stream", "?") for spec in manifest["dims"]["fields"].values()})
    out: dict[str, tuple[str, ...]] = {}
    for name in chosen:
        found = _source(name, have)
        if found is not None:
            out[name] = found
        elif name == "landmarks" and chosen == ["landmarks"]:
            held = [f"--{other}" for other in OVERLAY_FIELDS if _source(other, have) is not None]
            pick = f", or draw what it holds ({', '.join(held)})" if held else ""
            raise CacheError(
                f"--landmarks: cache {cache_dir} has no landmarks (landmarks, landmark_valid), so there is "
                f"nothing to draw; re-extract it with --landmarks mediapipe or --landmarks npz:DIR{pick}"
            )
        elif name == "landmarks":
            print(f"note: cache {cache_dir} has no landmarks; drawing the rest", file=sys.stderr)
        else:
            missing = next(f for f in OVERLAY_FIELDS[name][0] if f not in have)
            raise CacheError(
                f"--{name}: cache {cache_dir} has no {WHAT[name]} ({missing}; its streams: "
                f"{', '.join(streams)}) and its encoders cannot compute them; re-extract with that stream"
            )
    return out


def _split_ids(manifest: dict[str, Any], cache_dir: Path) -> Iterator[tuple[Path, list[str]]]:
    """(split file, its sequence ids) for every non-empty split of the cache."""
    for entry in (manifest.get("splits") or {}).values():
        if not entry.get("count"):
            continue
        path = cache_dir / entry.get("file", "")
        try:
            with h5py.File(path, "r", locking=False) as f:
                ids = [decode_id(raw) for raw in f["sequence_ids"][:]]
        except (OSError, KeyError, ValueError) as exc:
            raise CacheError(
                f"{path}: cannot read its sequence ids ({exc}); run `pipeline.py cache verify`"
            ) from None
        yield path, ids


def _find_row(video: Video, manifest: dict[str, Any], cache_dir: Path) -> tuple[Path, int] | None:
    """(split file, row) of the video's un-augmented sequence in the cache, or None.

    Matched by ``<class>/<video_id>``, the class being the folder the video lies in; when no id matches
    that, by a video id that only one sequence carries (formats whose class is not the folder)."""
    wanted = f"{video.root.name}/{video.video_id}"
    by_id: list[tuple[Path, int]] = []
    for path, ids in _split_ids(manifest, cache_dir):
        for row, sid in enumerate(ids):
            if sid == wanted:
                return path, row
            if "#a" not in sid and "@" not in sid and sid.rsplit("/", 1)[-1] == video.video_id:
                by_id.append((path, row))
    return by_id[0] if len(by_id) == 1 else None


def _cached_sequence(
    name: str, manifest: dict[str, Any], cache_dir: Path
) -> tuple[Video, tuple[Path, int]] | None:
    """For a VIDEO that is no path but a sequence id of the cache (``G01/1CM1_1_R_#217@5-11``, as
    evaluate's reports name them): the corpus sample it was extracted from and its (split file, row).
    None when ``name`` is a path (or FOLDER/<video_id>); a name that is neither a path nor an id is bad
    input, naming the ids it resembles."""
    if Path(name).exists():
        return None
    split_ids = list(_split_ids(manifest, cache_dir))
    found = next(((path, ids.index(name)) for path, ids in split_ids if name in ids), None)
    if found is None and Path(name).parent != Path(".") and Path(name).parent.is_dir():
        return None  # FOLDER/<video_id>
    if found is None:
        plain = sorted({sid for _, ids in split_ids for sid in ids if "#a" not in sid})
        near = difflib.get_close_matches(name, plain, n=3)
        hint = (
            f"did you mean {', '.join(near)}?" if near else f"its ids read like {plain[0]}" if plain else ""
        )
        raise BadInputError(
            f"{name}: neither a file or folder nor a sequence id of the cache ({hint}); pass a video "
            "file, a frame folder, FOLDER/<video_id>, or <class>/<video_id>[@start-end] as evaluate's "
            "misclassified list names them"
        )
    if "#a" in name:
        raise BadInputError(
            f"{name}: an augmented copy, whose pixels were flipped and warped; show draws over the corpus "
            f"frames, so pass {name.split('#a')[0]}"
        )

    config = source_config(manifest)
    videos = corpus_videos(config, cache_dir.parent)
    if videos is None:
        raise BadInputError(
            f"{name}: the cache holds this sequence, but its dataset {config.get('data')} is not there; "
            "mount it where extract read it, or pass the video itself"
        )
    if name not in videos:
        raise BadInputError(f"{name}: no longer in the dataset {config.get('data')}; pass the video itself")
    return videos[name], found


def _read_row(path: Path, row: int, fields: set[str], video_id: str) -> dict[str, np.ndarray]:
    """``fields`` and ``frame_indices`` of one cached sequence."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return {name: f[name][row] for name in (*fields, "frame_indices")}
    except (OSError, KeyError, ValueError) as exc:  # what h5py raises for a damaged chunk or field
        raise CacheError(f"{path}: cannot read {video_id} ({exc}); run `pipeline.py cache verify`") from None


def cached_arrays(
    video: Video, manifest: dict[str, Any], cache_dir: Path, fields: set[str]
) -> dict[str, np.ndarray] | None:
    """The video's ``fields`` (T, ...) and its frame indices from the cache, or None when the cache does
    not hold it, or holds a copy sampled from another frame count (the video changed since)."""
    found = _find_row(video, manifest, cache_dir)
    if found is None:
        print(
            f"note: {video.video_id} is not in cache {cache_dir}; extracting what show draws", file=sys.stderr
        )
        return None
    out = _read_row(*found, fields, video.video_id)
    indices = out["frame_indices"]
    if not np.array_equal(indices, sample_indices(video.num_frames, len(indices))[0]):
        print(
            f"note: cache {cache_dir} sampled {video.video_id} from another frame count; re-extracting",
            file=sys.stderr,
        )
        return None
    return out


def _landmark_source(manifest: dict[str, Any]) -> str:
    """The cache's ``--landmarks`` (none, mediapipe, npz:DIR, annotations), where extraction reads it from:
    the recorded stream options, else (an older manifest) the extraction config."""
    recorded = manifest.get("stream_options")
    where = recorded if isinstance(recorded, dict) else manifest.get("config") or {}
    return str(where.get("landmarks") or "none")


def _missing_landmark_file(video: Video, manifest: dict[str, Any]) -> Path | None:
    """The ``.npz`` a re-extraction of ``video`` would need and lacks, for a cache that imported its landmarks
    (``npz:DIR``); None when its landmarks can be re-extracted (another source, or the file is there)."""
    kind, _, folder = _landmark_source(manifest).strip().partition(":")
    if kind != "npz" or not folder or find_npz(Path(folder), video) is not None:
        return None
    return Path(folder) / npz_names(video)[-1]  # DIR/<video_id>.npz: the name it takes for any video


def _extractable(
    sources: dict[str, tuple[str, ...]], video: Video, manifest: dict[str, Any], cache_dir: Path, asked: bool
) -> dict[str, tuple[str, ...]]:
    """``sources`` less the landmarks when the video's cannot be re-extracted (an imported cache and no file
    for it), said in a note; an error when ``--landmarks`` asked for them. Checked before any encoder loads:
    the other overlays re-extract, and asking for everything should not stop at the one that cannot."""
    if "landmarks" not in sources:
        return sources
    missing = _missing_landmark_file(video, manifest)
    if missing is None:
        return sources
    if asked:
        raise BadInputError(
            f"--landmarks: cache {cache_dir} imported its landmarks from .npz files and {missing} does not "
            f"exist; export {video.video_id}'s landmarks there, or leave out --landmarks"
        )
    print(
        f"note: {missing} does not exist (cache {cache_dir} imported its landmarks from .npz files); "
        f"drawing {video.video_id} without landmarks",
        file=sys.stderr,
    )
    return {name: found for name, found in sources.items() if name != "landmarks"}


def _extract(video: Video, manifest: dict[str, Any], fields: set[str], device: str) -> dict[str, np.ndarray]:
    """Run only the streams that compute ``fields``, with the cache's encoders, on the video."""
    from extract.single import extract_inputs  # lazy: only a video the cache lacks loads encoders

    [item] = extract_inputs([video], manifest, resolve_device(device).type, fields=fields)
    return item


def _draw(
    frames: np.ndarray, arrays: dict[str, Any], sources: dict[str, tuple[str, ...]], mass: float
) -> Iterator[np.ndarray]:
    """Each original frame with the chosen overlays (``sources``: overlay -> its fields), masks under
    attention under boxes and landmarks."""
    from train.overlays import caption, draw_attention, draw_boxes, draw_landmarks, draw_masks

    indices = np.asarray(arrays["frame_indices"])
    for t, frame in enumerate(frames):
        out = frame
        if "masks" in sources:
            out = draw_masks(out, arrays["hand_masks"][t], arrays["mask_valid"][t])
        if "attention" in sources:
            out = draw_attention(out, np.asarray(arrays["dino_attention"][t]), mass)
        if "boxes" in sources:
            boxes, count = sources["boxes"]
            out = draw_boxes(out, np.asarray(arrays[boxes][t]), int(arrays[count][t]))
        if "landmarks" in sources:
            out = draw_landmarks(out, np.asarray(arrays["landmarks"][t]), arrays["landmark_valid"][t])
        yield caption(out, f"frame {int(indices[t])} ({t + 1}/{len(frames)})")


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: repeat the last row/column where one is odd."""
    hgt, wid = frame.shape[:2]
    return np.pad(frame, ((0, hgt % 2), (0, wid % 2), (0, 0)), mode="edge")


def _write_mp4(frames: Iterator[np.ndarray], out: Path, fps: float) -> None:
    """Encode RGB frames as H.264 (MPEG-4 part 2 where libx264 is missing), published atomically."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = None
        for frame in frames:
            frame = _even(frame)
            if stream is None:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
