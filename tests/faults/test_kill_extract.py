"""kill -9 at random moments of `pipeline.py extract`: nothing finished is lost, nothing is served twice.

Each seed draws kill delays uniformly over the length of an uninterrupted run, so kills land during
start-up (before the first shard), between shards, during split assembly and after the manifest.
A killed run's re-run may itself be killed (a chain of up to three kills); every chain ends with a run
that completes, and then the cache must equal the uninterrupted reference byte for byte.

Most runs are forks of a warm interpreter calling ``pipeline.main`` (the code path of
``python pipeline.py extract``, minus ~6 s of imports); the first kill of every seed is a real
``python pipeline.py extract`` process killed while it starts, before it has written anything.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from cache.verify import verify_cache
from faults.harness import (
    TOTAL_DEMO_SEQUENCES,
    Outcome,
    assert_same_arrays,
    extract_argv,
    manifest_of,
    pipeline_cmd,
    planned_work,
    shard_contents,
    split_arrays,
)

SEEDS_AND_KILLS = ((0, 8), (1, 7), (2, 7))  # 22 kills
MAX_KILLS_PER_CHAIN = 3
SHARDS = TOTAL_DEMO_SEQUENCES // 2  # --shard-size 2


def _exec_and_kill(argv: list[str], log: Path, delay: float) -> Outcome:
    """A real interpreter start: ``python pipeline.py ...``, SIGKILLed ``delay`` seconds in."""
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(pipeline_cmd(*argv), stdout=fh, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    status = proc.returncode
    return Outcome(proc.pid, status, status == -signal.SIGKILL, time.monotonic() - t0, log.read_text())


def _state_at_kill(key_dir: Path, reference_ids: set[str]) -> tuple[set[str], str]:
    """Check what a kill left behind; return the stored content ids and the phase the kill hit."""
    if not key_dir.is_dir():
        return set(), "before the cache existed"
    shards = shard_contents(key_dir)  # opens every finished shard: none may be half-written
    ids = [cid for cids in shards.values() for cid in cids]
    assert len(ids) == len(set(ids)), "a sequence is stored twice"
    assert set(ids) <= reference_ids
    manifest = manifest_of(key_dir)
    if manifest is not None and manifest.get("complete") is True:
        # The manifest may only say complete when every split file is whole and holds everything.
        assert verify_cache(key_dir) == []
        held = {cid for arrays in split_arrays(key_dir).values() for cid in arrays["content_ids"]}
        assert {c.decode() for c in held} == reference_ids
        return set(ids), "after the manifest was published"
    if not shards:
        return set(ids), "before the first shard"
    if len(shards) < SHARDS:
        return set(ids), "between shards"
    return set(ids), "after the last shard (split assembly)"


@pytest.mark.slow
def test_kill_9_at_random_moments_then_rerun_matches_an_uninterrupted_run(
    zygote, reference, tmp_path, reliability
):
    reference_ids = set(reference.content_ids)
    phases: Counter[str] = Counter()
    kills = chains = reuse_checks = exec_kills = 0
    for seed, wanted in SEEDS_AND_KILLS:
        rng = random.Random(seed)
        seed_kills = 0
        while seed_kills < wanted:
            chains += 1
            cache = tmp_path / f"s{seed}-c{chains}"
            key_dir = cache / reference.key
            stored: set[str] | None = None  # content ids in finished shards at the last kill
            chain_kills = run_no = 0
            while True:
                run_no += 1
                log = tmp_path / f"s{seed}-c{chains}-r{run_no}.log"
                argv = extract_argv(reference.data, cache)
                may_kill = seed_kills < wanted and chain_kills < MAX_KILLS_PER_CHAIN
                delay = rng.uniform(0, reference.seconds) if may_kill else None
                if may_kill and seed_kills == 0 and run_no == 1:
                    # A real process, killed while it starts: before it has written anything.
                    out = _exec_and_kill(argv, log, rng.uniform(0.2, zygote.import_seconds))
                    exec_kills += out.killed
                else:
                    out = zygote.run(argv, log=log, kill_after=delay)
                planned = planned_work(out.log)
                if stored is not None and planned is not None:
                    # Every shard that existed at the kill is reused: only unstored work is redone.
                    assert planned == TOTAL_DEMO_SEQUENCES - len(stored), out.log[-2000:]
                    reuse_checks += 1
                if out.killed:
                    kills += 1
                    seed_kills += 1
                    chain_kills += 1
                    stored, phase = _state_at_kill(key_dir, reference_ids)
                    phases[phase] += 1
                    continue
                assert out.status == 0, out.log[-3000:]
                assert planned is not None and out.last_stderr_line == str(key_dir)
                break
            # The chain finished: the cache equals the uninterrupted run's, byte for byte.
            assert verify_cache(key_dir) == []
            assert_same_arrays(reference.arrays, split_arrays(key_dir), f"seed {seed} chain {chains}")
            stored_rows = [cid for cids in shard_contents(key_dir).values() for cid in cids]
            assert sorted(stored_rows) == sorted(reference_ids), "a sequence is missing or stored twice"
    assert kills >= 20 and exec_kills >= 1
    reliability.record(
        "kill -9",
        "SIGKILL of `pipeline.py extract` at a uniformly random moment (3 seeds)",
        kills,
        [
            f"{chains} chains of kill + re-run all completed",
            "final split files byte-identical to an uninterrupted run",
            "`cache verify` clean; no sequence missing or stored twice",
            f"every finished shard reused by the next run ({reuse_checks} runs checked): "
            "at most the unfinished shard is recomputed",
            "no half-written shard ever visible; manifest never complete with partial splits",
        ],
        phases=dict(phases),
        real_process_kills=exec_kills,
    )
