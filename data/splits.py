"""Video-level train/val/test splits: stratified by class, optionally grouped by subject, saved as JSON.

A whole group (e.g. every video of one subject) always lands in one split, so a model is never validated
on a person it trained on. Pre-split datasets (train/ val/ test/ folders) are used exactly as given.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import write_json_atomic
from core.errors import BadInputError, UserError
from data.config import DataConfig
from data.discovery import Dataset, compile_group_regex, group_of
from data.sequence import Video

SPLITS = ("train", "val", "test")
SPLIT_FORMAT = "gesture-splits/1"


def _check_ratios(val: float, test: float) -> None:
    if not (0.0 <= val < 1.0 and 0.0 <= test < 1.0 and val + test < 1.0):
        raise UserError(f"--val {val} and --test {test} must be in [0, 1) and sum to less than 1")


def _split_group(video: Video, pattern: re.Pattern[str] | None) -> str:
    # A --group-regex match names the group; else the subject the format knows; else the recording for
    # segments (two segments of one recording share its background and person); else the video itself.
    # Its key, not its bare id: ids like "001" are often reused by every class and must not tie unrelated
    # videos together.
    if pattern is not None and pattern.search(video.video_id):
        return "g:" + group_of(video.video_id, pattern)
    if pattern is None and video.subject:
        return "s:" + video.subject
    if video.is_segment:
        return "r:" + video.video_id
    return "v:" + video.key


def subject_of(video: Video, pattern: re.Pattern[str] | None = None) -> str | None:
    """The subject a split keeps together: the --group-regex match, else the format's subject."""
    if pattern is not None and pattern.search(video.video_id):
        return group_of(video.video_id, pattern)
    return video.subject if pattern is None else None


def _majority_label(videos: list[Video]) -> int:
    counts = Counter(video.label for video in videos)
    return min(counts, key=lambda label: (-counts[label], label))  # ties: the smaller label


def _split_stratum(groups: list[str], sizes: list[int], val: float, test: float) -> dict[str, str]:
    """Split one class's shuffled groups by video count: a group goes where its midpoint falls
    (test first, then val, then train), then small classes are repaired so that train keeps a group,
    val gets one when there are >= 2 groups, and test gets one when there are >= 3."""
    total = sum(sizes)
    # Rounded so 0.1 + 0.2 does not turn a tie at 1.5 into 1.5000000000000002.
    test_end, val_end = round(test * total, 9), round((test + val) * total, 9)
    members: dict[str, list[str]] = {split: [] for split in SPLITS}
    start = 0
    for group, size in zip(groups, sizes, strict=True):
        middle = start + size / 2
        start += size
        split = "test" if middle < test_end else "val" if middle < val_end else "train"
        members[split].append(group)

    def move(source: str, target: str) -> None:
        members[target].append(members[source].pop())

    if not members["train"]:
        move("test" if members["test"] else "val", "train")
    if val > 0 and not members["val"] and len(groups) >= 2:
        move("train" if len(members["train"]) >= 2 else "test", "val")
    if test > 0 and not members["test"] and len(groups) >= 3 and len(members["train"]) >= 2:
        move("train", "test")
    return {group: split for split, names in members.items() for group in names}


def _ensure_val_per_class(
    members: dict[str, list[Video]], split_of: dict[str, str], val: float, rng: np.random.Generator
) -> None:
    """Grouped splits stratify by a group's majority class, so a class can miss val. Move the smallest
    train group holding it to val, if that leaves every class of that group a train video."""
    if val <= 0:
        return
    labels = sorted({video.label for videos in members.values() for video in videos})
    tiebreak = {group: rank for rank, group in enumerate(rng.permutation(sorted(members)))}
    for label in labels:
        per_split = Counter(split_of[g] for g, vs in members.items() for v in vs if v.label == label)
        if per_split["val"] or sum(per_split.values()) < 2:
            continue
        train_counts = Counter(v.label for g, vs in members.items() if split_of[g] == "train" for v in vs)
        candidates = [
            group
            for group, videos in members.items()
            if split_of[group] == "train"
            and any(v.label == label for v in videos)
            and all(train_counts[lab] > n for lab, n in Counter(v.label for v in videos).items())
        ]
        if candidates:
            chosen = min(candidates, key=lambda g: (len(members[g]), tiebreak[g]))
            split_of[chosen] = "val"


def assign_splits(
    videos: Iterable[Video], val: float, test: float, seed: int, group_regex: str | None = None
) -> dict[str, str]:
    """video.key -> "train" | "val" | "test".

    Pre-split videos keep their ``split``. Otherwise classes are stratified at the video level with
    ``np.random.default_rng(seed)``; with ``group_regex``, videos whose ids match share a group that never
    straddles splits, and groups are stratified by their majority class. Every class with >= 2 videos
    (or groups) gets a val video when ``val > 0``, where the grouping allows it.
    """
    videos = sorted(videos, key=lambda video: (video.key, video.split or ""))
    given = [video for video in videos if video.split is not None]
    if given:
        if len(given) != len(videos):
            raise ValueError("either every video or none carries a pre-split 'split'")
        return {video.key: video.split for video in videos if video.split is not None}
    _check_ratios(val, test)
    pattern = compile_group_regex(group_regex)
    members: dict[str, list[Video]] = defaultdict(list)
    for video in videos:
        members[_split_group(video, pattern)].append(video)
    strata: dict[int, list[str]] = defaultdict(list)
    for group in sorted(members):
        strata[_majority_label(members[group])].append(group)

    rng = np.random.default_rng(seed)
    split_of: dict[str, str] = {}
    for label in sorted(strata):
        groups = [strata[label][i] for i in rng.permutation(len(strata[label]))]
        split_of.update(_split_stratum(groups, [len(members[g]) for g in groups], val, test))
    _ensure_val_per_class(members, split_of, val, rng)
    return {video.key: split_of[group] for group, vs in sorted(members.items()) for video in vs}


def save_splits(
    path: Path, assignment: dict[str, str], params: dict[str, Any], subjects: dict[str, str] | None = None
) -> None:
    """Write the split with the parameters that made it, atomically (``core.atomic``). ``subjects``
    (video key -> subject, where known) lets ``cache info`` count subjects per split."""
    path = Path(path)
    payload = {
        "format": SPLIT_FORMAT,
        "params": params,
        "counts": {split: sum(1 for s in assignment.values() if s == split) for split in SPLITS},
        "assignment": dict(sorted(assignment.items())),
    }
    if subjects:
        payload["subjects"] = dict(sorted(subjects.items()))
    write_json_atomic(path, payload, indent=1, default=str)


def load_splits(path: Path) -> dict[str, str]:
    """Read a split file written by ``save_splits``; a damaged file is the user's to delete or fix."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path}: split file does not exist; check --split-file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"{path}: split file is unreadable ({error}); delete it to re-split") from None
    assignment = payload.get("assignment") if isinstance(payload, dict) else None
    if not isinstance(assignment, dict) or payload.get("format") != SPLIT_FORMAT:
        raise BadInputError(f"{path}: is not a {SPLIT_FORMAT} split file; delete it to re-split")
    bad = next((k for k, s in assignment.items() if not isinstance(k, str) or s not in SPLITS), None)
    if bad is not None:
        raise BadInputError(
            f"{path}: video {bad!r} has split {assignment[bad]!r}, not one of {SPLITS}; fix it"
        )
    return dict(assignment)


def split_params(dataset: Dataset, cfg: DataConfig) -> dict[str, Any]:
    """What made a split; saved next to it so a reused split can be traced back. A split read from an
    existing ``--split-file`` was made by the parameters recorded there, not by today's flags."""
    recorded = _split_file_params(dataset, cfg)
    if recorded is not None:
        return recorded
    return {
        "root": str(dataset.root),
        "presplit": dataset.presplit,
        "val": cfg.val,
        "test": cfg.test,
        "seed": cfg.seed,
        "group_regex": cfg.group_regex,
    }


def _split_file_params(dataset: Dataset, cfg: DataConfig) -> dict[str, Any] | None:
    """The parameters recorded in the ``--split-file`` the split is read from, or None (no such file, or
    an official split, which the file does not decide)."""
    path = Path(cfg.split_file) if cfg.split_file is not None else None
    official = dataset.presplit and getattr(cfg, "split", "auto") != "random"
    if official or path is None or not path.is_file():
        return None
    try:
        params = json.loads(path.read_text(encoding="utf-8")).get("params")
    except (OSError, ValueError, AttributeError):
        return None
    return params if isinstance(params, dict) else None


def reused_split_note(dataset: Dataset, cfg: DataConfig) -> str | None:
    """One line when an existing ``--split-file`` fixes the split while --val, --test, --seed or
    --group-regex ask for another: those flags are not applied, and the user should hear it."""
    recorded = _split_file_params(dataset, cfg)
    if recorded is None:
        return None
    asked = {"val": cfg.val, "test": cfg.test, "seed": cfg.seed, "group_regex": cfg.group_regex}
    differ = [k for k, v in asked.items() if k in recorded and recorded[k] != v]
    if not differ:
        return None
    flags = ", ".join(f"--{k.replace('_', '-')} {asked[k]} (it has {recorded[k]})" for k in differ)
    return f"split: {cfg.split_file} fixes the split, so {flags} not applied; delete it to re-split"


def empty_split_note(dataset: Dataset, cfg: DataConfig, assignment: dict[str, str]) -> str | None:
    """One line when a new random split left --val or --test empty although asked for: a class gives
    val a video only from 2 videos (or groups) on, and test only from 3, so small classes give none."""
    if dataset.presplit and getattr(cfg, "split", "auto") != "random":
        return None  # the corpus' own split: its parts are what it ships
    given = set(assignment.values())
    empty = [
        (name, least)
        for name, least in (("val", 2), ("test", 3))
        if getattr(cfg, name) > 0 and name not in given
    ]
    if not empty:
        return None
    said = " and ".join(f"--{name} {getattr(cfg, name)} gave no {name} video" for name, _ in empty)
    least = " / ".join(f"{n} for {name}" for name, n in empty)
    return (
        f"split: {said}: a class needs at least {least} videos (or --group-regex groups) to give one; "
        "add videos, or set the flag to 0 to say so"
    )


def dataset_subjects(dataset: Dataset, group_regex: str | None) -> dict[str, str]:
    """Video key -> subject, for the videos whose subject is known."""
    pattern = compile_group_regex(group_regex)
    return {v.key: s for v in dataset.videos if (s := subject_of(v, pattern))}


def _official(dataset: Dataset, cfg: DataConfig) -> dict[str, str]:
    """The format's split as given; without a validation part, validation comes from its training part
    (stratified, subject-disjoint where subjects are known) and the test part stays untouched."""
    lacking = next((v for v in dataset.videos if v.split is None), None)
    if lacking is not None:
        raise BadInputError(
            f"{lacking.video_file or lacking.root}: sample '{lacking.key}' has no official split while "
            "others have one; give every sample a split, or use --split random"
        )
    assignment = assign_splits(dataset.videos, cfg.val, cfg.test, cfg.seed)
    if cfg.val > 0 and "val" not in assignment.values():
        train = [replace(v, split=None) for v in dataset.videos if v.split == "train"]
        assignment.update(assign_splits(train, cfg.val, 0.0, cfg.seed, cfg.group_regex))
    return assignment


def resolve_splits(dataset: Dataset, cfg: DataConfig) -> dict[str, str]:
    """The split to use: the official split (``--split official``, or ``auto`` where the dataset ships one),
    else ``cfg.split_file`` when it exists, else a new ``assign_splits`` (written to ``cfg.split_file``
    when one is named, for reuse)."""
    mode = getattr(cfg, "split", "auto")
    if mode == "official" and not dataset.presplit:
        raise UserError(
            f"{dataset.root}: this {dataset.format} dataset ships no official split; use --split random"
        )
    if dataset.presplit and mode != "random":
        return _official(dataset, cfg)
    if dataset.presplit:  # --split random over a dataset that ships a split: ignore the given one
        dataset = replace(dataset, videos=[replace(v, split=None) for v in dataset.videos], presplit=False)
    split_file = Path(cfg.split_file) if cfg.split_file is not None else None
    if not dataset.presplit and split_file is not None and split_file.exists():
        stored = load_splits(split_file)
        missing = [video.key for video in dataset.videos if video.key not in stored]
        if missing:
            raise BadInputError(
                f"{split_file}: has no split for {len(missing)} video(s), e.g. '{missing[0]}'; "
                "delete the file to re-split, or add them to it"
            )
        return {video.key: stored[video.key] for video in dataset.videos}
    assignment = assign_splits(dataset.videos, cfg.val, cfg.test, cfg.seed, cfg.group_regex)
    if split_file is not None and not split_file.exists():
        save_splits(
            split_file, assignment, split_params(dataset, cfg), dataset_subjects(dataset, cfg.group_regex)
        )
    return assignment
