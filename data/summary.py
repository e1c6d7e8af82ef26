"""A readable overview of a dataset and its split, so a user can sanity-check before extracting."""

from __future__ import annotations

from collections import Counter

from data.discovery import Dataset
from data.splits import SPLITS


def _per_split(dataset: Dataset, assignment: dict[str, str]) -> dict[str, Counter]:
    """split -> class name -> samples of that class the split holds."""
    per_split: dict[str, Counter] = {split: Counter() for split in SPLITS}
    for video in dataset.videos:
        split = assignment.get(video.key)
        if split in per_split:
            per_split[split][video.class_name] += 1
    return per_split


def summarize(dataset: Dataset, assignment: dict[str, str]) -> str:
    """Classes with video/frame counts and split sizes per class, then totals and skipped inputs."""
    videos = Counter(video.class_name for video in dataset.videos)
    frames = Counter()
    for video in dataset.videos:
        frames[video.class_name] += video.num_frames
    per_split = _per_split(dataset, assignment)

    width = max([len("class"), len("total")] + [len(name) for name in dataset.classes])
    header = f"{'class':<{width}}  {'videos':>6}  {'frames':>7}  " + "  ".join(f"{s:>5}" for s in SPLITS)
    lines = [
        f"dataset: {dataset.root}"
        + ("  (pre-split: train/ val/ test/ as given)" if dataset.presplit else ""),
        header,
        "-" * len(header),
    ]
    for name in dataset.classes:
        counts = "  ".join(f"{per_split[s][name]:>5}" for s in SPLITS)
        lines.append(f"{name:<{width}}  {videos[name]:>6}  {frames[name]:>7}  {counts}")
    lines.append("-" * len(header))
    totals = "  ".join(f"{sum(per_split[s].values()):>5}" for s in SPLITS)
    lines.append(f"{'total':<{width}}  {len(dataset.videos):>6}  {dataset.num_frames:>7}  {totals}")
    lines.append(f"{len(dataset.classes)} classes, {len(dataset.videos)} videos, {dataset.num_frames} frames")
    if dataset.skipped:
        lines.append(f"skipped {len(dataset.skipped)} bad input(s), e.g. {dataset.skipped[0]}")
    unassigned = sum(1 for video in dataset.videos if video.key not in assignment)
    if unassigned:
        lines.append(f"{unassigned} video(s) have no split")
    return "\n".join(lines)


def split_lines(dataset: Dataset, assignment: dict[str, str]) -> list[str]:
    """What ``extract`` says of the split before it spends encoder time: one line of sizes, and a warning
    naming the classes that have no training sample (an official split can leave a class out of train, and
    a model never learns a class it never sees)."""
    per_split = _per_split(dataset, assignment)
    sizes = ", ".join(f"{split} {sum(per_split[split].values())}" for split in SPLITS)
    lines = [f"split: {sizes} samples, {len(dataset.classes)} classes"]
    untrained = [name for name in dataset.classes if not per_split["train"][name]]
    if untrained:
        shown = ", ".join(
            f"{name} (val {per_split['val'][name]}, test {per_split['test'][name]})" for name in untrained[:5]
        )
        more = f" and {len(untrained) - 5} more" if len(untrained) > 5 else ""
        lines.append(
            f"warning: {len(untrained)} class(es) have no training sample: {shown}{more}; a model cannot "
            "learn them, so give them training samples or leave them out"
        )
    return lines
