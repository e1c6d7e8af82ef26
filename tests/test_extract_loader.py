"""How extraction feeds its encoders: sequences handed over as they are decoded, and loader sizes that
fit the device when the user sets none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_extract_config

from extract.run import with_loader_defaults
from extract.source import decode_loader, worker_context

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


class SlowFirst:
    """Sequence 0 is a long augmented copy at the head of the plan: it finishes only once ``release`` is
    set (or, with no event, at once). The others take no time."""

    def __init__(self, release=None) -> None:
        self.release = release

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> dict[str, int]:
        if i == 0 and self.release is not None:
            self.release.wait(timeout=60)  # an in-order loader never releases it: it times out instead
        return {"index": i}


def test_a_slow_sequence_does_not_hold_back_the_ones_decoded_after_it():
    """Sequence 0 is held until a batch has reached the encoders: only a loader that hands sequences
    over as they finish can deliver one (no clock: workers that start late change nothing)."""
    release = worker_context().Event()
    batches = decode_loader(SlowFirst(release), batch_size=2, workers=2)
    order, sizes = [], []
    for batch in batches:
        order += [item["index"] for item in batch]
        sizes.append(len(batch))
        release.set()
    assert sorted(order) == list(range(6))  # every sequence once, whatever the order
    assert order[0] != 0, f"the batches waited for sequence 0: {order}"
    assert sizes == [2, 2, 2]


def test_without_workers_sequences_come_in_plan_order():
    batches = list(decode_loader(SlowFirst(), batch_size=4, workers=0))
    assert [[it["index"] for it in b] for b in batches] == [[0, 1, 2, 3], [4, 5]]


def _cores(monkeypatch, cores: int, ranks_on_node: int) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(cores)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(ranks_on_node))


def test_unset_loader_sizes_fill_a_gpu_and_stay_small_on_cpu(small_demo, tmp_path, monkeypatch):
    _cores(monkeypatch, 16, 1)
    cfg = tiny_extract_config(small_demo, tmp_path / "cache", batch_size=None, workers=None)
    cpu = with_loader_defaults(cfg, torch.device("cpu"))
    assert (cpu.batch_size, cpu.workers) == (2, 2)
    gpu = with_loader_defaults(cfg, torch.device("cuda"))
    # a batch of sequences fills the 256-frame micro-batch the H100 measurement chose
    assert gpu.batch_size * cfg.dataset.frames >= 256 > (gpu.batch_size - 1) * cfg.dataset.frames
    assert gpu.workers == 12  # the main process, its pinning thread and the shard writer keep 4 cores
    _cores(monkeypatch, 64, 1)
    assert with_loader_defaults(cfg, torch.device("cuda")).workers == 12
    _cores(monkeypatch, 16, 2)  # two ranks on a 16-core node: 8 cores each
    assert with_loader_defaults(cfg, torch.device("cuda")).workers == 4


def test_sizes_the_user_sets_are_kept_on_every_device(small_demo, tmp_path):
    cfg = tiny_extract_config(small_demo, tmp_path / "cache", batch_size=3, workers=0)
    for device in ("cpu", "cuda"):
        out = with_loader_defaults(cfg, torch.device(device))
        assert (out.batch_size, out.workers) == (3, 0)


@pytest.mark.parametrize("name", ["extract-full-cuda.json"])
def test_the_loader_replay_spends_the_recorded_run_s_worker_seconds(name):
    from bench.loader import replay_costs

    run = json.loads((RESULTS / name).read_text())
    costs, frame_s = replay_costs(run)
    stages = run["stages_s"]
    assert len(costs) == run["sequences"]
    assert sum(costs) == pytest.approx(stages["decode"] + stages["augment"], rel=1e-6)
    clean, augmented = costs[0::2], costs[1::2]  # the plan's order: each train video, then its copy
    assert max(clean) < min(augmented)
    assert frame_s * run["frames_per_s"]["compute_bound"] == pytest.approx(1.0)


# Three workers on purpose (they finish out of order); torch warns that a 2-core box suggests 2.
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_sequences_decoded_out_of_order_land_as_inline_decoding_writes_them(small_demo, tmp_path):
    import h5py
    import numpy as np

    from extract.run import run

    inline = run(tiny_extract_config(small_demo, tmp_path / "inline", augment_copies=1, batch_size=2))
    workers = run(
        tiny_extract_config(small_demo, tmp_path / "workers", augment_copies=1, batch_size=2, workers=3)
    )
    assert workers.key_dir.name == inline.key_dir.name
    for split in ("train", "val", "test"):
        with h5py.File(inline.key_dir / f"{split}.h5") as a, h5py.File(workers.key_dir / f"{split}.h5") as b:
            assert set(a) == set(b)
            for name in a:
                np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=f"{split}/{name}")


def test_decode_workers_are_sent_the_sequences_without_their_annotations(tmp_path):
    """The dataset is pickled to every decode worker, and a worker only decodes and augments: HaGRID's
    boxes and landmarks (GBs over the corpus, in every worker) stay in the main process, where the
    annotation streams read them from the plan's own sequences."""
    import pickle

    from corpus_replicas import hagrid

    from data.augment import SequenceAugmenter
    from data.config import DataConfig
    from data.sequences import prepare_sequences
    from extract.source import SequenceFrames

    hagrid(tmp_path)
    prepared = prepare_sequences(
        DataConfig(data=tmp_path, frames=1, augment_copies=1), check_duplicates=False
    )
    augmenter = SequenceAugmenter(32, True, (), prepared.dataset.classes)
    source = SequenceFrames(prepared.sequences, augmenter, base_seed=0)
    sent = pickle.loads(pickle.dumps(source))
    assert [s.sequence_id for s in sent.sequences] == [s.sequence_id for s in source.sequences]
    assert all(s.video.annotations is None for s in sent.sequences)
    assert all(s.video.annotations is not None for s in source.sequences)  # the plan keeps them
    copies = [s for s in sent.sequences if s.video.key == "call/a1"]
    assert len(copies) == 2 and copies[0].video is copies[1].video  # one sample, one Video, still
    first = sent[0]  # and a worker still decodes and augments what it was sent
    assert first["frames"].shape == (1, 32, 32, 3) and first["label"] == source.sequences[0].label
