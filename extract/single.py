"""Extraction of unlabelled inputs for ``predict``, with exactly the encoders a cache was built with."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cache.schema import Dims
from core.device import resolve_device
from core.errors import BadInputError, CacheError
from data.augment import SequenceAugmenter
from data.frames import read_frames
from data.inputs import predict_inputs
from data.sampling import sample_indices
from data.sequence import Video
from data.windows import window_starts
from extract.encode import FrameEncoder
from extract.streams import Stream, StreamOptions, active_streams, get_stream, list_streams
from models.encoders import Encoder, create_encoder


def encoders_from_manifest(manifest: dict[str, Any], roles: set[str] | None = None) -> dict[str, Encoder]:
    """Rebuild the cache's encoders from its manifest: same models at the same revision (or same seed);
    with ``roles``, only those.

    Real weights whose files no longer hash to what the cache recorded are refused: features from other
    weights would be classified by a head trained on the old ones. Two roles on one model, weights and
    revision share one built encoder, as in extraction (``mask_features`` and ``dino`` on DINOv2)."""
    built: dict[tuple[str, str, int, str | None], Encoder] = {}
    encoders = {}
    for role, spec in manifest["encoders"].items():
        if roles is not None and role not in roles:
            continue
        weights, _, seed = spec["weights"].partition(":")
        which = (spec["name"], weights, int(seed or 0), spec.get("revision"))
        if which not in built:
            enc = create_encoder(*which)
            if weights == "pretrained" and enc.identity.get("sha256") != spec.get("sha256"):
                raise CacheError(
                    f"the {role} weights ({spec['name']}) differ from those the cache was extracted with "
                    f"(sha256 {spec.get('sha256')}); restore them or re-extract"
                )
            built[which] = enc
        encoders[role] = built[which]
    return encoders


def _clips(video, frames: int, windows: tuple[int, int] | None):
    """(indices, valid, start, end) of the whole video, or of each W:S window over it (indices into it)."""
    if windows is None:
        yield (*sample_indices(video.num_frames, frames)[:2], 0, video.num_frames - 1)
        return
    for start in window_starts(video.num_frames, *windows):
        end = min(start + windows[0], video.num_frames) - 1
        indices, valid, _ = sample_indices(end - start + 1, frames)
        yield indices + np.int32(start), valid, start, end


def sample_only_fields(manifest: dict[str, Any], fields: set[str]) -> list[str]:
    """Of the stored ``fields``, those a stream fills from what a corpus sample carries (its annotations):
    for a new input they hold fill values only."""
    dims, known = Dims.from_json(manifest["dims"]), set(list_streams())
    specs = [spec for spec in (dims.field(f) for f in fields) if spec is not None and spec.stream in known]
    return sorted(spec.name for spec in specs if get_stream(spec.stream).from_samples)


def streams_for_fields(
    manifest: dict[str, Any], options: StreamOptions, fields: set[str]
) -> dict[str, Stream]:
    """The manifest's streams that compute ``fields``, with the streams they need, by name."""
    models = {role: spec["name"] for role, spec in manifest["encoders"].items()}
    streams = {s.name: s for s in active_streams(models, options)}
    dims = Dims.from_json(manifest["dims"])
    todo = [spec.stream for spec in (dims.field(f) for f in fields) if spec is not None]
    chosen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in streams and name not in chosen:
            chosen.add(name)
            todo.extend(streams[name].needs(options))
    return {name: streams[name] for name in chosen}


def extract_inputs(
    paths: list[Path | Video],
    manifest: dict[str, Any],
    device: str,
    windows: tuple[int, int] | None = None,
    fields: set[str] | None = None,
    landmarks_npz: Path | None = None,
    per_call: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Per video found in ``paths``: the cache fields of one sequence, sampled and resized as the cache was;
    with ``windows`` (W, S), one per sliding window of W frames every S frames. With ``fields``, only the
    streams that compute them run (and what they need): ``show`` draws a few, predict needs them all.

    Every input is found, and the encoders built, before this returns, so a bad input or missing weights
    fail at once; the sequences are then encoded a few at a time as the iterator is read (``per_call``,
    default ``sequences_per_call``: one on CPU, a micro-batch's worth on CUDA), so a test set of thousands
    of clips is never held in memory whole.

    Each dict also has ``"input"``, the readable name of the video it came from, ``"video_id"``, its id (a
    folder's name, a file's stem), and ``"start"``/``"end"``, the frame range (0-based, inclusive) it
    covers. ``paths`` may also hold ``Video`` samples.

    ``landmarks_npz``: the folder of the inputs' own landmark files (``<input name>.npz``), for a cache
    that imported landmarks (``--landmarks npz:DIR``, whose DIR holds the training videos' files).
    """
    try:
        cfg = manifest["config"]
        frames, image_size = int(cfg["frames"]), int(cfg["image_size"])
        recorded = manifest.get("stream_options")
        dims = Dims.from_json(manifest["dims"])
        if isinstance(recorded, dict):
            options = StreamOptions(**recorded)
        else:  # a manifest from before it recorded them: the annotated format is the dataset's format
            stored = cfg.get("format", "") if "annotations" in dims.streams else ""
            options = replace(StreamOptions.from_config(cfg), annotations=stored)
    except (KeyError, TypeError, ValueError) as e:
        raise CacheError(f"the checkpoint's cache manifest lacks the extraction config ({e})") from None
    if landmarks_npz is not None:
        if not options.landmarks.startswith("npz:"):
            raise BadInputError(
                f"--landmarks-npz {landmarks_npz}: the checkpoint's cache imported no landmark files "
                f"(it was extracted with --landmarks {options.landmarks}); drop --landmarks-npz"
            )
        if not Path(landmarks_npz).is_dir():
            raise BadInputError(f"--landmarks-npz {landmarks_npz}: no such folder")
        options = replace(options, landmarks=f"npz:{landmarks_npz}")
    dtype, floats = np.dtype(dims.float_dtype), set(dims.float_fields)
    only = streams_for_fields(manifest, options, fields) if fields is not None else None
    roles = {role for stream in only.values() for role in stream.roles} if only is not None else None
    encoder = FrameEncoder(
        encoders_from_manifest(manifest, roles),
        resolve_device(device),
        options,
        only=None if only is None else set(only),
    )
    # A corpus sample (``show``) carries what the cache read for it (its landmark file in the cache's
    # npz:DIR, its annotations); a bare input only has a landmark file where --landmarks-npz names one.
    videos = [
        (video, isinstance(path, Video) or landmarks_npz is not None)
        for path in paths
        for video in ([path] if isinstance(path, Video) else predict_inputs(Path(path), stills=frames == 1))
    ]
    return _encoded(
        videos, encoder, SequenceAugmenter(image_size, flip=False), frames, windows, dtype, floats, per_call
    )


def sequences_per_call(encoder: FrameEncoder, frames: int) -> int:
    """Sequences encoded together: on CUDA enough to fill the largest micro-batch (8 clips of 32 frames),
    as extraction batches them; on CPU one, whose frames already fill the CPU micro-batches."""
    if encoder.device.type != "cuda":
        return 1
    return max(1, math.ceil(max(encoder.micro_batch.values()) / frames))


def _encoded(
    videos: list[tuple[Video, bool]],
    encoder: FrameEncoder,
    resize: SequenceAugmenter,
    frames: int,
    windows: tuple[int, int] | None,
    dtype: np.dtype,
    floats: set[str],
    per_call: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """``extract_inputs``'s sequences, encoded lazily, ``per_call`` at a time (default:
    ``sequences_per_call``); ``own_files``: pass the frames' origins to the streams that read an input's
    own files (landmarks)."""
    per_call = per_call or sequences_per_call(encoder, frames)
    image_size = resize.image_size
    pending: list[tuple[Video, bool, np.ndarray, np.ndarray, int, int, np.ndarray]] = []
    clips = ((video, own, *clip) for video, own in videos for clip in _clips(video, frames, windows))
    for video, own_files, indices, valid, start, end in clips:
        if pending and (len(pending) == per_call or pending[0][1] != own_files):
            yield from _encode_together(pending, encoder, frames, dtype, floats)
            pending = []
        clip, _ = resize(read_frames(video, indices, image_size), -1, None)  # (T, S, S, 3)
        pending.append((video, own_files, indices, valid, start, end, clip))
    if pending:
        yield from _encode_together(pending, encoder, frames, dtype, floats)


def _encode_together(
    pending: list[tuple[Video, bool, np.ndarray, np.ndarray, int, int, np.ndarray]],
    encoder: FrameEncoder,
    frames: int,
    dtype: np.dtype,
    floats: set[str],
) -> Iterator[dict[str, np.ndarray]]:
    """One encoder call over the pending clips (all with or all without their own files), split back."""
    batch = torch.from_numpy(np.concatenate([p[6] for p in pending]))  # (G*T, S, S, 3)
    own_files = pending[0][1]
    samples = [(video, int(i)) for video, _, indices, *_ in pending for i in indices] if own_files else None
    encoded = encoder(batch, samples, sequence_length=frames)
    for g, (video, _, indices, valid, start, end, _) in enumerate(pending):
        # Round through the storage dtype, so the model sees exactly what a cached sequence gives it.
        part = {k: v[g * frames : (g + 1) * frames] for k, v in encoded.items()}  # this clip's T frames
        out = {k: v.astype(dtype).astype(np.float32) if k in floats else v for k, v in part.items()}
        still = video.video_file is None and len(video.frames) == 1  # an image: name the file
        name = str(video.video_file or (video.frames[0] if still else video.root / video.video_id))
        out.update(valid=valid, frame_indices=indices, input=name, video_id=video.video_id)
        out.update(start=start, end=end)
        yield out
