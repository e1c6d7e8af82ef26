"""The stream registry: one module per stream declares what it writes and how it runs.

A stream names the encoder roles it runs (with a model id per preset), the per-frame datasets it writes
(``FieldSpec``: name, shape, dtype, fill), how it turns a batch of prepared frames into those datasets,
which options change its bytes (for the cache key), and which other streams it reads (SwAV reads DINO's
attention). Everything else is derived from these declarations: the presets, ``--encoders`` choices, the
HDF5 schema (``Dims.fields``, recorded in the manifest), the cache key, and the run order. Readers
(``train``, ``cache verify``, ``cache info``) read the recorded fields and never import this package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from cache.schema import FieldSpec
from core.errors import UserError

NONE = "none"  # ``--encoders hands=none``: the role is not run, its stream's datasets are absent


@dataclass(frozen=True)
class StreamOptions:
    """The extraction flags a stream may read while it runs (each stream says which it keys on)."""

    crop_mode: str = "halves"
    attention_mass: float = 0.6
    crop_margin: float = 0.1
    dino_heads: bool = False
    annotations: str = ""  # the dataset format whose annotations are stored ("" when it ships none)
    hands_every: int = 1  # YOLO on every N-th frame of a sequence, boxes interpolated between (hands.py)
    crop_source: str = "attention"  # what SwAV's crop box comes from: DINO attention, or the hand masks
    landmarks: str = "none"  # none, mediapipe, npz:DIR or annotations (streams/landmarks.py)
    landmark_model: str = ""  # hand_landmarker.task for --landmarks mediapipe

    @classmethod
    def from_config(cls, cfg: Any) -> StreamOptions:
        """From an ``ExtractConfig`` or its plain-dict form (a cache manifest's ``config``)."""
        get = cfg.get if isinstance(cfg, Mapping) else lambda k, d: getattr(cfg, k, d)
        return cls(**{k: get(k, v) for k, v in cls().__dict__.items()})


@dataclass
class FrameBatch:
    """One batch of frames on its way through the streams.

    ``frames`` (N, 3, S, S) float in [0, 1] on the device; ``outputs`` holds every field the streams
    before this one wrote, (N, ...) tensors; ``run(role, images)`` calls that role's encoder in
    micro-batches; ``stage(name)`` times a block (bench/extract.py splits the time up by it);
    ``samples`` says where each frame came from, (sample, source frame index) per frame, when known;
    ``sequence_length``: the frames are consecutive runs of this many per sequence (None: one sequence);
    ``mirrored``: per frame, whether augmentation flipped it left-right (None: none was), and ``warps``:
    per frame, the ``data.warp.Warp`` its distortion moved pixels by (None: not distorted), so streams that
    store what the sample carries (annotated boxes, imported landmarks) mirror and move it to match the
    pixels.
    """

    frames: torch.Tensor
    outputs: dict[str, torch.Tensor]
    encoders: Mapping[str, Any]
    options: StreamOptions
    run: Callable[..., Any]  # (role, images, *per-frame extras) -> the encoder's output
    stage: Callable[[str], AbstractContextManager]
    samples: list[tuple[Any, int]] | None = None
    sequence_length: int | None = None
    mirrored: list[bool] | None = None
    warps: list[Any] | None = None

    def flips(self) -> list[bool]:
        """Per frame, whether augmentation flipped it (all False when nobody said)."""
        return self.mirrored or [False] * self.frames.shape[0]

    def distortions(self) -> list[Any]:
        """Per frame, the ``data.warp.Warp`` augmentation distorted it with (all None when nobody said)."""
        return self.warps or [None] * self.frames.shape[0]


class Stream:
    """Base class of a registered stream; subclasses set the class attributes and implement two methods."""

    name: ClassVar[str]
    models: ClassVar[dict[str, dict[str, str]]] = {}  # role -> preset -> model id
    # role -> the encoder role whose registered models it runs, when not its own (the masks stream's
    # ``mask_features`` runs DINO flavours)
    kinds: ClassVar[dict[str, str]] = {}
    # Whether it stores what a corpus sample itself carries (its annotations): predict's new inputs carry
    # nothing of the kind, so for them its fields hold fill values only (train/predict.py says so).
    from_samples: ClassVar[bool] = False
    # The StreamOptions only this stream reads: set to other than their default while it does not run,
    # each is said to have no effect (``ignored``).
    reads: ClassVar[tuple[str, ...]] = ()

    def needs(self, options: StreamOptions) -> tuple[str, ...]:
        """Streams whose outputs this one reads (so they run first)."""
        return ()

    def active(self, options: StreamOptions) -> bool:
        """Whether this stream runs at all (beyond having a model for each role); role-less streams say."""
        return True

    def key(self, options: StreamOptions) -> dict[str, Any]:
        """The options that change this stream's bytes (part of the cache key)."""
        return {}

    def sources(self, video: Any, options: StreamOptions) -> tuple[Path, ...]:
        """Files besides the frames that this stream reads for ``video`` (imported landmarks): they join
        the video's fingerprint, so a changed file re-extracts that video and nothing else."""
        return ()

    def warnings(self, videos: Sequence[Any], options: StreamOptions) -> list[str]:
        """What the user should hear about the dataset before extraction starts: this stream would store
        nothing useful for it (no annotated landmarks anywhere). Lines, without the ``warning:`` prefix."""
        return []

    def meta(self, options: StreamOptions) -> dict[str, Any]:
        """Extra manifest entries (the 12-channel stream names its channels)."""
        return {}

    def ignored(self, options: StreamOptions, runs: bool) -> list[str]:
        """Flags of this stream that were set but have no effect in this run (``runs``: whether the stream
        runs), one line each without the ``note:`` prefix: a user who passed one should hear it went unused.
        They stay out of ``key`` too, so setting one never changes the cache key. By default: the ``reads``
        options set away from their defaults while the stream does not run."""
        if runs:
            return []
        default = StreamOptions()
        return [
            f"--{name.replace('_', '-')} has no effect: the {self.name} stream does not run"
            for name in self.reads
            if getattr(options, name) != getattr(default, name)
        ]

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        """The per-frame datasets written, sized from the built encoders (or stand-ins with their dims)."""
        raise NotImplementedError

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        """Field name -> (N, *shape) tensor for every field of ``fields``."""
        raise NotImplementedError

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.models)


_STREAMS: dict[str, Stream] = {}


def register_stream(cls: type[Stream]) -> type[Stream]:
    """Class decorator: make a stream known to extraction. A role belongs to one stream only."""
    if cls.name in _STREAMS:
        raise ValueError(f"stream {cls.name!r} is registered twice")
    taken = {role: s.name for s in _STREAMS.values() for role in s.roles}
    for role in cls.models:
        if role in taken:
            raise ValueError(f"stream {cls.name!r} claims role {role!r}, already run by {taken[role]!r}")
    _STREAMS[cls.name] = cls()
    return cls


def unregister_stream(name: str) -> None:
    """Remove a registration (a test-only stream registers for one test)."""
    _STREAMS.pop(name, None)


def list_streams() -> list[str]:
    return sorted(_STREAMS)


def get_stream(name: str) -> Stream:
    if name not in _STREAMS:
        raise ValueError(f"unknown stream {name!r}; valid: {', '.join(list_streams())}")
    return _STREAMS[name]


def roles() -> list[str]:
    """Every encoder role some stream runs."""
    return sorted(role for s in _STREAMS.values() for role in s.roles)


def role_kind(role: str) -> str:
    """The encoder role whose registered models ``role`` accepts: its own, unless its stream says."""
    return next((s.kinds[role] for s in _STREAMS.values() if role in s.kinds), role)


def presets() -> list[str]:
    return sorted({p for s in _STREAMS.values() for table in s.models.values() for p in table})


def preset_models(preset: str) -> dict[str, str]:
    """Role -> model id of a named preset, gathered from the stream declarations."""
    table = {role: t[preset] for s in _STREAMS.values() for role, t in s.models.items() if preset in t}
    if not table:
        raise UserError(f"unknown preset {preset!r}; valid: {', '.join(presets())}")
    return table


def parse_assignments(text: str, flag: str) -> dict[str, str]:
    """``"role=value,role=value"`` -> dict; a malformed item is a one-line user error."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        role, sep, value = item.partition("=")
        if not sep or not role.strip() or not value.strip():
            example = "dino=dino_vit_s8,hands=none" if flag == "--encoders" else "dino=<commit>"
            raise UserError(f"{flag}: {item!r} is not ROLE=VALUE (e.g. {flag} {example})")
        if role.strip() in out:  # last-wins would hide which one the cache was made with
            raise UserError(f"{flag}: role {role.strip()!r} is given twice; give it once")
        out[role.strip()] = value.strip()
    return out


def _check_role(role: str, flag: str) -> None:
    if role not in roles():
        raise UserError(f"{flag}: unknown role {role!r}; roles: {', '.join(roles())}")


def resolve_models(preset: str, choices: str = "") -> dict[str, str]:
    """Role -> model id (or ``none``): the preset's defaults, overridden by ``--encoders`` choices."""
    from models.encoders import encoder_spec, list_encoders

    models = preset_models(preset)
    chosen = parse_assignments(choices, "--encoders")
    for role, model in chosen.items():
        _check_role(role, "--encoders")
        if model != NONE:
            try:
                spec = encoder_spec(model)
            except ValueError:
                spec = None
            if spec is None or spec.role != role_kind(role):
                valid = ", ".join([*list_encoders(role_kind(role)), NONE])
                raise UserError(f"--encoders: {model!r} is not a {role} model; valid for {role}: {valid}")
        models[role] = model
    preset_on = preset_models(preset)
    for stream in _STREAMS.values():  # a stream runs all its roles or none: say so, never drop it quietly
        off = [r for r in stream.roles if chosen.get(r) == NONE]
        kept = [r for r in stream.roles if models.get(r, NONE) != NONE]
        wanted = all(preset_on.get(r, NONE) != NONE for r in stream.roles) or any(
            chosen.get(r, NONE) != NONE for r in stream.roles
        )  # on by the preset, or a role of it asked for (masks=none alone just restates the default)
        if off and kept and wanted:
            both = ",".join(f"{r}=none" for r in stream.roles)
            raise UserError(
                f"--encoders {off[0]}=none: the {stream.name} stream needs {' and '.join(stream.roles)}; "
                f"leave it on, or turn the whole stream off with --encoders {both}"
            )
    return models


def resolve_revisions(text: str) -> dict[str, str]:
    """``--weights-revision ROLE=REV,...`` -> role -> revision."""
    pins = parse_assignments(text, "--weights-revision")
    for role in pins:
        _check_role(role, "--weights-revision")
    return pins


def active_streams(models: Mapping[str, str], options: StreamOptions) -> list[Stream]:
    """Streams whose roles all have a model, in an order where every stream runs after what it needs."""
    active = {
        s.name: s
        for s in _STREAMS.values()
        if all(models.get(r, NONE) != NONE for r in s.roles) and s.active(options)
    }
    if not active:
        raise UserError("--encoders: every role is none, so there is nothing to extract")
    for s in active.values():
        for need in s.needs(options):
            if need not in active:
                off = [r for r in get_stream(need).roles if models.get(r, NONE) == NONE]
                raise UserError(
                    f"stream {s.name!r} needs stream {need!r}, which is off "
                    f"({', '.join(f'{r}=none' for r in off)}); turn it on with "
                    f"{', '.join(f'--encoders {r}=MODEL' for r in off)}"
                )
    ordered: list[Stream] = []
    placed: set[str] = set()
    while len(ordered) < len(active):
        ready = [s for n, s in sorted(active.items()) if n not in placed and set(s.needs(options)) <= placed]
        if not ready:
            raise ValueError(f"streams need each other in a cycle: {sorted(set(active) - placed)}")
        ordered.append(ready[0])
        placed.add(ready[0].name)
    return ordered


def running_models(models: Mapping[str, str], options: StreamOptions | None = None) -> dict[str, str]:
    """Role -> model of the streams that run: roles set to none left out, and the roles of streams that do
    not run (a preset names the masks stream's ``mask_features`` model, but SAM2 is opt-in), so their
    weights are never looked up or loaded."""
    chosen = {role: model for role, model in models.items() if model != NONE}
    used = {role for s in active_streams(chosen, options or StreamOptions()) for role in s.roles}
    return {role: model for role, model in chosen.items() if role in used}


def ignored_options(preset: str, choices: str, revisions: str, options: StreamOptions) -> list[str]:
    """One line per option this run will not use: an ``--encoders`` or ``--weights-revision`` entry for a
    role whose stream does not run, and each stream's own unused flags (``Stream.ignored``). None of them
    reaches the cache key, which holds only the running streams' encoders and declared options."""
    models = resolve_models(preset, choices)
    running = running_models(models, options)
    active = {s.name for s in active_streams(running, options)}
    lines: list[str] = []
    for flag, given in (
        ("--encoders", parse_assignments(choices, "--encoders")),
        ("--weights-revision", resolve_revisions(revisions)),
    ):
        for role, value in given.items():
            if role in running or value == NONE:
                continue
            stream = next(s for s in _STREAMS.values() if role in s.roles)
            off = [r for r in stream.roles if models.get(r, NONE) == NONE]
            why = f" (turn it on with --encoders {','.join(f'{r}=MODEL' for r in off)})" if off else ""
            lines.append(f"{flag} {role}={value} has no effect: the {stream.name} stream does not run{why}")
    for stream in _STREAMS.values():
        lines += stream.ignored(options, stream.name in active)
    return lines


def stream_fields(
    streams: list[Stream], encoders: Mapping[str, Any], options: StreamOptions
) -> tuple[FieldSpec, ...]:
    """Every field of ``streams``, each tagged with its stream; two streams writing one name is a bug."""
    out: list[FieldSpec] = []
    for s in streams:
        for f in s.fields(encoders, options):
            out.append(FieldSpec(f.name, tuple(f.shape), f.dtype, f.fill, s.name, f.bounds))
    names = [f.name for f in out]
    if len(set(names)) != len(names):
        raise ValueError(
            f"two streams declare the same dataset: {sorted(n for n in names if names.count(n) > 1)}"
        )
    return tuple(out)
