"""The corpus annotation files the formats read, one fuzz kind each (``data/formats/<name>.py``).

Each ``make`` writes the tiny corpus replica the format tests use; each ``consume`` reads it as
``extract`` does (``read_samples`` with the format named) and returns the samples found. An annotation
file carries no integrity check, so a damaged one may read as other samples; what it may not do is
raise anything but a one-line error naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from corpus_replicas import egogesture, hagrid, ipn, jester, manifest, nvgesture, wlasl

from fuzz.mutate import damaged_documents, damaged_lines, json_documents
from fuzz.registry import Sample, fuzz_kind


def _samples(folder: Path, fmt: str, manifest_path: Path | None = None) -> Any:
    """What extract's plan starts from: every sample's key, bounds, subject and split, and the classes."""
    from data.config import DataConfig
    from data.sequences import read_samples

    dataset = read_samples(DataConfig(data=folder, format=fmt, manifest=manifest_path))
    videos = sorted((v.key, v.label, v.start, v.num_frames, v.subject, v.split) for v in dataset.videos)
    return {"classes": dataset.classes, "videos": videos}


def _table(sep: str):
    return lambda good: damaged_lines(good, sep)


def _replica(write, name: str):
    """``make``: the replica written by ``write``, damaged at ``name`` (relative to its root)."""

    def make(folder: Path) -> Sample:
        write(folder)
        return Sample(folder / name, folder)

    return make


@fuzz_kind("Jester CSV", changed_ok=True, make=_replica(jester, "jester-v1-train.csv"), text=_table(";"))
def consume_jester(sample: Sample) -> Any:
    return _samples(sample.folder, "jester")


@fuzz_kind("IPN Hand Annot_List.txt", changed_ok=True, make=_replica(ipn, "Annot_List.txt"), text=_table(","))
def consume_ipn(sample: Sample) -> Any:
    return _samples(sample.folder, "ipn")


EGO_LABELS = "labels-final-revised1/Subject03/Scene1/Group1.csv"


@fuzz_kind("EgoGesture labels CSV", changed_ok=True, make=_replica(egogesture, EGO_LABELS), text=_table(","))
def consume_egogesture(sample: Sample) -> Any:
    return _samples(sample.folder, "egogesture")


NV_LIST = "nvgesture_train_correct_cvpr2016_v2.lst"


@fuzz_kind("NVGesture .lst", changed_ok=True, make=_replica(nvgesture, NV_LIST), text=_table(" "))
def consume_nvgesture(sample: Sample) -> Any:
    return _samples(sample.folder, "nvgesture")


HAGRID_JSON = "annotations/train/call.json"


@fuzz_kind("HaGRID annotation JSON", changed_ok=True, make=_replica(hagrid, HAGRID_JSON), text=json_documents)
def consume_hagrid(sample: Sample) -> Any:
    return _samples(sample.folder, "hagrid")


@fuzz_kind("WLASL_v0.3.json", changed_ok=True, make=_replica(wlasl, "WLASL_v0.3.json"), text=json_documents)
def consume_wlasl(sample: Sample) -> Any:
    return _samples(sample.folder, "wlasl")


def _manifest(folder: Path) -> Sample:
    path, _ = manifest(folder)
    return Sample(path, folder)


@fuzz_kind("manifest CSV (--manifest)", changed_ok=True, make=_manifest, text=_table(","))
def consume_manifest_csv(sample: Sample) -> Any:
    return _samples(sample.folder, "manifest", sample.path)


@fuzz_kind(
    "Jester labels CSV", changed_ok=True, make=_replica(jester, "jester-v1-labels.csv"), text=_table(";")
)
def consume_jester_labels(sample: Sample) -> Any:
    return _samples(sample.folder, "jester")


def _manifest_jsonl(folder: Path) -> Sample:
    """The replica's manifest as JSONL: one object per line, the CSV's empty cells left out."""
    path, _ = manifest(folder)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    rows = [{k: v for k, v in zip(header, line.split(","), strict=True) if v} for line in lines[1:]]
    jsonl = path.with_suffix(".jsonl")
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    path.unlink()
    return Sample(jsonl, folder)


def _jsonl(good: bytes):
    def dump(doc: Any) -> str:
        return (
            "".join(json.dumps(row, default=str) + "\n" for row in doc) if isinstance(doc, list) else str(doc)
        )

    return damaged_documents([json.loads(line) for line in good.decode().splitlines()], dump)


@fuzz_kind("manifest JSONL (--manifest)", changed_ok=True, make=_manifest_jsonl, text=_jsonl)
def consume_manifest_jsonl(sample: Sample) -> Any:
    return _samples(sample.folder, "manifest", sample.path)
