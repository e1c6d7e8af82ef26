#!/usr/bin/env python
"""Planning HaGRID again: its JSON annotations parsed cold, then the kept parse of an unchanged corpus.

    python -m bench.plan_hagrid [--classes 18] [--per-class 5000] [--out bench/results/plan_hagrid-cpu.json]

HaGRID ships one JSON per class and split, ~1.6 GB in all for its 1M images (HaGRIDv2: boxes, labels,
21 landmarks per hand, united boxes). ``extract`` plans the corpus on every run (a resume too), and so do
``show`` and the attention plots of ``train``/``evaluate``. This writes a HaGRIDv2-layout corpus of
``--classes`` x ``--per-class`` annotated images (empty image files: planning lists them, never opens
them) in a temporary folder, then times ``data.sequences.read_samples`` with one listing memo, in one
process:

- cold: every JSON parsed, every class folder listed, the parse kept in the memo;
- warm: the JSONs and image folders unchanged, so the kept parse is loaded instead (one ``stat`` per
  JSON and per image folder).

Also written: the JSON bytes, the memo's bytes on disk, and the peak memory (ru_maxrss) after each run;
then, side by side in the same process, the annotations a plan keeps per image, as the parsed dicts it
kept before (``{field: entry[field]}``) and packed as it keeps them now (``HagridNotes``): the bytes they
hold on the heap (tracemalloc: allocated and still referenced once the JSON document is dropped) and
their pickled bytes (what the listing memo stores), each with its old/packed ratio.
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.machine import RESULTS, LoadMeter, machine_info, quiet_threads, write_result  # noqa: E402

quiet_threads()

from data.config import DataConfig  # noqa: E402
from data.formats.hagrid import FIELDS  # noqa: E402
from data.formats.hagrid_hands import NotesPacker  # noqa: E402
from data.sequences import read_samples  # noqa: E402


def write_corpus(root: Path, classes: int, per_class: int) -> int:
    """A HaGRIDv2 layout with ``classes`` x ``per_class`` images split 8:1:1; returns the JSON bytes."""
    rng = random.Random(0)
    size = 0
    for c in range(classes):
        label = f"gesture{c:02d}"
        folder = root / "hagrid_dataset" / label
        folder.mkdir(parents=True)
        parts: dict[str, dict] = {"train": {}, "val": {}, "test": {}}
        for i in range(per_class):
            image_id = f"{c:02d}{i:06d}-{rng.getrandbits(64):016x}"
            (folder / f"{image_id}.jpg").touch()
            hands = rng.choice((1, 1, 2))
            split = "train" if i % 10 < 8 else ("val" if i % 10 == 8 else "test")
            parts[split][image_id] = {
                "bboxes": [[round(rng.random(), 8) for _ in range(4)] for _ in range(hands)],
                "labels": [label] + ["no_gesture"] * (hands - 1),
                "united_bbox": [[round(rng.random(), 8) for _ in range(4)]],
                "united_label": [label],
                "user_id": f"{rng.getrandbits(128):032x}",
                "hand_landmarks": [
                    [[round(rng.random(), 8), round(rng.random(), 8)] for _ in range(21)]
                    for _ in range(hands)
                ],
                "meta": {"age": [rng.randint(18, 65)], "gender": ["female"], "race": ["White"]},
            }
        for split, data in parts.items():
            path = root / "annotations" / split / f"{label}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(data)
            path.write_text(text)
            size += len(text)
    return size


def timed_read(root: Path, memo: Path) -> dict[str, float]:
    start = time.perf_counter()
    dataset = read_samples(DataConfig(data=root), memo_path=memo)
    seconds = time.perf_counter() - start
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"seconds": seconds, "samples": len(dataset.videos), "peak_rss_gb_so_far": rss_gb}


def _kept_bytes(paths: list[Path], keep: Callable[[dict], Any]) -> tuple[list[Any], int]:
    """``keep`` of every image entry in the class JSONs at ``paths``, and the heap bytes those still hold
    (tracemalloc), each document dropped once read, as a parse drops it."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = []
        for path in paths:
            kept.extend(keep(entry) for entry in json.loads(path.read_text()).values())
        gc.collect()
        return kept, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def annotation_bytes(root: Path) -> dict[str, Any]:
    """Bytes per image of the annotations a plan keeps: the parsed dicts (before) against the packed
    ``HagridNotes`` (now), measured in this one process, on the heap and pickled."""
    paths = sorted((root / "annotations").glob("*/*.json"))
    old, old_heap = _kept_bytes(paths, lambda entry: {k: entry[k] for k in FIELDS if k in entry})
    old_pickled = len(pickle.dumps(old, protocol=pickle.HIGHEST_PROTOCOL))  # as the memo seals it
    images = len(old)
    del old
    packer = NotesPacker()  # one per parse, as HaGRID.read uses it
    new, new_heap = _kept_bytes(paths, lambda entry: packer.pack(entry, FIELDS))
    new_pickled = len(pickle.dumps(new, protocol=pickle.HIGHEST_PROTOCOL))
    return {
        "images": images,
        "heap": {
            "measured_by": "tracemalloc: bytes still allocated after every JSON is read and dropped",
            "dict_bytes_per_image": old_heap / images,
            "packed_bytes_per_image": new_heap / images,
            "dict_over_packed": old_heap / new_heap,
        },
        "pickled": {
            "measured_by": "len(pickle.dumps(list of every image's annotations, HIGHEST_PROTOCOL))",
            "dict_bytes_per_image": old_pickled / images,
            "packed_bytes_per_image": new_pickled / images,
            "dict_over_packed": old_pickled / new_pickled,
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=18)
    p.add_argument("--per-class", type=int, default=5000)
    p.add_argument("--out", type=Path, default=RESULTS / "plan_hagrid-cpu.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="plan-hagrid-") as tmp:
        root, memo = Path(tmp) / "hagrid", Path(tmp) / "cache" / "listing.pkl"
        json_bytes = write_corpus(root, args.classes, args.per_class)
        memo.parent.mkdir()
        with LoadMeter() as cold_load:
            cold = timed_read(root, memo)
        with LoadMeter() as warm_load:
            warm = timed_read(root, memo)
        memo_bytes = sum(f.stat().st_size for f in memo.parent.iterdir())
        kept = annotation_bytes(root)  # after both runs: their peak memory is as a plan's
    result = {
        "machine": machine_info("cpu"),
        "command": " ".join(["python -m bench.plan_hagrid", *sys.argv[1:]]),
        "images": args.classes * args.per_class,
        "json_bytes": json_bytes,
        "memo_bytes": memo_bytes,
        "cold": {**cold, "load": cold_load.result},
        "warm": {**warm, "load": warm_load.result},
        "warm_over_cold": warm["seconds"] / cold["seconds"],
        "kept_annotations": kept,
    }
    print(write_result(args.out, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
