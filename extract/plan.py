"""What an extraction must produce: sequences, their content ids, splits, and the extraction key."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cache.fingerprint import content_id, video_fingerprint, with_imports
from cache.key import extraction_key
from cache.schema import SCHEMA_VERSION
from core.digests import MEMO_NAME, DigestMemo
from core.errors import UserError
from data.augment import SequenceAugmenter
from data.discovery import Dataset
from data.framelist import memo_path
from data.sequence import Sequence
from data.sequences import prepare_sequences
from data.summary import split_lines
from extract.config import ExtractConfig
from extract.streams import (
    StreamOptions,
    active_streams,
    ignored_options,
    resolve_models,
    resolve_revisions,
    running_models,
)
from models.encoders import encoder_identity

# Bump when sampling or augmentation code changes the bytes a sequence becomes.
PIPELINE_REVISION = "uniform-sampling-v1/augment-v1/streams-v1"


@dataclass(frozen=True)
class PlanItem:
    sequence: Sequence
    content_id: str


@dataclass
class Plan:
    dataset: Dataset
    assignment: dict[str, str]  # video key -> split
    items: list[PlanItem]
    key: str
    key_spec: dict[str, Any]
    options: StreamOptions = field(default_factory=StreamOptions)

    def members(self, done: set[str]) -> dict[str, list[str]]:
        """Split -> content ids of the finished sequences, in plan order."""
        out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for item in self.items:
            if item.content_id in done:
                out[item.sequence.split].append(item.content_id)
        return out


def encoder_models(cfg: ExtractConfig) -> dict[str, str]:
    """Role -> model id that this extraction runs (roles set to ``none``, and those of streams that do not
    run, left out)."""
    return running_models(resolve_models(cfg.preset, cfg.encoders), StreamOptions.from_config(cfg))


def encoder_identities(cfg: ExtractConfig) -> dict[str, dict[str, Any]]:
    """Role -> model id and weight identity: ``random:<seed>``, or the hub repo, resolved revision and
    sha256 of every weight file. Known without building a model, so a reuse run loads none."""
    pins = resolve_revisions(cfg.weights_revision)
    if pins and cfg.weights != "pretrained":
        raise UserError("--weights-revision pins real weights; it has no meaning with --weights random")
    return {
        role: encoder_identity(model, cfg.weights, cfg.weights_seed, pins.get(role))
        for role, model in sorted(encoder_models(cfg).items())
    }


def stream_options(cfg: ExtractConfig, dataset_format: str = "") -> StreamOptions:
    """The stream flags of ``cfg``, and the format whose annotations the annotations stream stores."""
    return replace(StreamOptions.from_config(cfg), annotations=dataset_format)


def key_spec(cfg: ExtractConfig, augmenter: SequenceAugmenter, options: StreamOptions) -> dict[str, Any]:
    """Everything that changes how a sequence becomes bytes. Not the dataset, not the split.

    Per active stream: the identities of its encoders and the options it declares it keys on.
    """
    identities = encoder_identities(cfg)
    streams = {
        s.name: {"encoders": {role: identities[role] for role in s.roles}, **s.key(options)}
        for s in active_streams(encoder_models(cfg), options)
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "revision": PIPELINE_REVISION,
        "frames": cfg.dataset.frames,
        "augment": {**augmenter.describe(), "seed": cfg.dataset.augment_seed},
        "streams": streams,
        "dtype": cfg.dtype,
    }


def make_augmenter(cfg: ExtractConfig, class_names: list[str]) -> SequenceAugmenter:
    d = cfg.dataset
    return SequenceAugmenter(d.image_size, d.flip, d.flip_swap, class_names)


def make_plan(cfg: ExtractConfig) -> Plan:
    """Discover the dataset, fix the split, check leakage, and address every sequence by content."""
    prepared = prepare_sequences(cfg.dataset, memo_path=memo_path(Path(cfg.cache_dir), cfg.dataset.data))
    for line in prepared.dataset.notes:
        print(line, file=sys.stderr)
    for line in prepared.leakage.warnings():
        print(f"warning: {line}", file=sys.stderr)
    for line in split_lines(prepared.dataset, prepared.assignment):
        print(line, file=sys.stderr)
    sources: dict[tuple[str, str], bytes] = {}  # each source's files are statted once, however many segments
    memo = DigestMemo(Path(cfg.cache_dir) / MEMO_NAME) if cfg.fingerprint == "content" else None
    options = stream_options(cfg, prepared.dataset.format)
    streams = active_streams(encoder_models(cfg), options)
    for line in ignored_options(cfg.preset, cfg.encoders, cfg.weights_revision, options):
        print(f"note: {line}", file=sys.stderr)
    for stream in streams:
        for line in stream.warnings(prepared.dataset.videos, options):
            print(f"warning: {line}", file=sys.stderr)
    fingerprints = {
        v.key: with_imports(
            video_fingerprint(v, sources, memo),
            tuple(p for s in streams for p in s.sources(v, options)),
            memo,
        )
        for v in prepared.dataset.videos
    }
    if memo is not None:
        memo.save()
    items = [PlanItem(s, content_id(fingerprints[s.video.key], s.aug_index)) for s in prepared.sequences]
    spec = key_spec(cfg, make_augmenter(cfg, prepared.dataset.classes), options)
    return Plan(prepared.dataset, prepared.assignment, items, extraction_key(spec), spec, options)
