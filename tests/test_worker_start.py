"""Decode workers start without the encoder stack.

A DataLoader worker begins by unpickling its dataset, init and collate functions, importing every module
they reference before its first frame, one worker after the other while the parent waits. The worker
server preloads torch and ``extract.source``; a reference into a module that imports the encoders (timm,
transformers, ultralytics) cost ~3.5 s per worker on every extraction.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

from conftest import tiny_extract_config

from extract.plan import make_augmenter, make_plan
from extract.source import WORKER_PRELOAD, SequenceFrames, decode_loader

ROOT = Path(__file__).resolve().parents[1]
ENCODER_STACK = ("timm", "transformers", "ultralytics", "models", "extract.run", "extract.encode")

# A fresh interpreter with what the worker server preloads, then what a worker receives.
UNPICKLE = """
import json, pickle, sys
for name in {preload!r}:
    __import__(name)
before = set(sys.modules)
pickle.load(sys.stdin.buffer)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_what_a_decode_worker_receives_imports_no_encoder_library(small_demo, tmp_path):
    cfg = tiny_extract_config(small_demo, tmp_path / "cache")
    plan = make_plan(cfg)
    source = SequenceFrames(
        [it.sequence for it in plan.items[:2]], make_augmenter(cfg, plan.dataset.classes), 0
    )
    loader = decode_loader(source, batch_size=2, workers=2).loader
    sent = pickle.dumps((loader.dataset, loader.worker_init_fn, loader.collate_fn))

    preload = [m for m in WORKER_PRELOAD if m != "extract.forkserver_lifeline"]  # it only guards the server
    done = subprocess.run(
        [sys.executable, "-c", UNPICKLE.format(preload=preload)],
        input=sent,
        capture_output=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    imported = json.loads(done.stdout.decode().strip().splitlines()[-1])
    heavy = [m for m in imported if any(m == h or m.startswith(h + ".") for h in ENCODER_STACK)]
    assert not heavy, f"a decode worker would import {heavy[:5]} before its first frame"


def test_sequences_loaded_one_per_worker_are_grouped_into_the_same_batches_in_order():
    from extract.source import SequenceBatches

    items = [[{"index": i}] for i in range(7)]  # the loader's batches of one sequence, in dataset order
    batches = list(SequenceBatches(items, batch_size=3))
    assert [[it["index"] for it in b] for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
