"""What an extraction must produce: sequences, their content ids, splits, and the extraction key."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cache.digests import MEMO_NAME, DigestMemo
from cache.fingerprint import content_id, video_fingerprint
from cache.key import extraction_key
from cache.schema import SCHEMA_VERSION
from data.augment import SequenceAugmenter
from data.discovery import Dataset
from data.sequence import Sequence
from data.sequences import prepare_sequences
from extract.config import ExtractConfig
from models.encoders import PRESETS

# Bump when sampling or augmentation code changes the bytes a sequence becomes.
PIPELINE_REVISION = "uniform-sampling-v1/augment-v1"


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

    def members(self, done: set[str]) -> dict[str, list[str]]:
        """Split -> content ids of the finished sequences, in plan order."""
        out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for item in self.items:
            if item.content_id in done:
                out[item.sequence.split].append(item.content_id)
        return out


def encoder_identities(cfg: ExtractConfig) -> dict[str, dict[str, str]]:
    """Role -> name and weight identity. Known without building a model, so a reuse run loads none."""
    weights = "pretrained" if cfg.weights == "pretrained" else f"random:{cfg.weights_seed}"
    return {role: {"name": name, "weights": weights} for role, name in PRESETS[cfg.preset].items()}


def key_spec(cfg: ExtractConfig, augmenter: SequenceAugmenter) -> dict[str, Any]:
    """Everything that changes how a sequence becomes bytes. Not the dataset, not the split."""
    return {
        "schema_version": SCHEMA_VERSION,
        "revision": PIPELINE_REVISION,
        "frames": cfg.dataset.frames,
        "augment": {**augmenter.describe(), "seed": cfg.dataset.augment_seed},
        "encoders": encoder_identities(cfg),
        "crop_mode": cfg.crop_mode,
        "attention_mass": cfg.attention_mass,
        "crop_margin": cfg.crop_margin,
        "dtype": cfg.dtype,
    }


def make_augmenter(cfg: ExtractConfig, class_names: list[str]) -> SequenceAugmenter:
    d = cfg.dataset
    return SequenceAugmenter(d.image_size, d.flip, d.flip_swap, class_names)


def make_plan(cfg: ExtractConfig) -> Plan:
    """Discover the dataset, fix the split, check leakage, and address every sequence by content."""
    prepared = prepare_sequences(cfg.dataset)
    for line in prepared.leakage.warnings():
        print(f"warning: {line}", file=sys.stderr)
    memo = DigestMemo(Path(cfg.cache_dir) / MEMO_NAME) if cfg.fingerprint == "content" else None
    fingerprints = {v.key: video_fingerprint(v, memo) for v in prepared.dataset.videos}
    if memo is not None:
        memo.save()
    items = [PlanItem(s, content_id(fingerprints[s.video.key], s.aug_index)) for s in prepared.sequences]
    spec = key_spec(cfg, make_augmenter(cfg, prepared.dataset.classes))
    return Plan(prepared.dataset, prepared.assignment, items, extraction_key(spec), spec)
