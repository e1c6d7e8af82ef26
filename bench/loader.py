#!/usr/bin/env python
"""The decode loader's delivery order, replayed from a recorded extraction run, in ONE process.

    python -m bench.loader [--run bench/results/extract-full-cuda.json] [--workers 8,12] [--rounds 2]

What it answers: given the per-sequence worker costs and the encoders' rate of a real run, how long does
the main process wait for data with the loader handing sequences over in order (each index dealt to
worker i mod N, each item waited for in turn) and out of order (each sequence handed over when ready,
the next one to a free worker)? Nothing here needs a GPU: the workers and the encoders are replaced by
sleeps of the recorded lengths, so the loader's own scheduling is all that differs between the modes.

The replay, from the run file:
- the sequence order of the plan: a train video's clean copy, then its augmented copy (bench/frames.py);
- decoding: the run's summed worker decode seconds spread evenly over its sequences;
- augmenting: each augmented copy draws from a log-normal with the run's median seconds per copy
  (``augment_s_per_sequence``), scaled so the copies sum to the run's augment seconds (seeded);
- ``--repeat K``: the same sequences K times over, a longer corpus whose last batches (waiting for
  the slowest copies still in flight) weigh less;
- the encoders: each batch of ``batch_size`` sequences takes its frames over the run's encoders-alone
  frames/s (``frames_per_s.compute_bound``), so a loader that always has the next batch ready gives
  the encoders-alone rate.

It measures the product's own ``extract.source.decode_loader`` (forkserver workers, one sequence each,
grouped into batches here). The workers sleep, so they do not contend for cores as real decoding does:
this isolates the delivery order, it is not a GPU figure. Writes bench/results/loader-replay.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from bench.machine import RESULTS, machine_info, quiet_threads, write_result

quiet_threads()  # before torch is imported
# The workers sleep: more of them than cores is the point here, not a mistake to warn about.
warnings.filterwarnings("ignore", message="This DataLoader will create")


class ReplayItems:
    """Item i sleeps ``costs[i]`` seconds in its worker (its decode and augment), then is handed over."""

    def __init__(self, costs: list[float]) -> None:
        self.costs = costs

    def __len__(self) -> int:
        return len(self.costs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        time.sleep(self.costs[i])
        return {"index": i}


def replay_costs(run: dict[str, Any], seed: int = 0) -> tuple[list[float], float]:
    """Per-sequence worker seconds in plan order, and the encoders' seconds per frame, from a run file."""
    import numpy as np

    n, stages = int(run["sequences"]), run["stages_s"]
    augmented = [i % 2 == 1 for i in range(n)]  # clean copy, then its augmented copy, per train video
    decode = stages["decode"] / n
    median = run["augment_s_per_sequence"]["median"]
    mean = stages["augment"] / max(1, sum(augmented))
    sigma = math.sqrt(2 * math.log(max(mean / median, 1.0)))  # log-normal: mean = median * e^(sigma^2/2)
    draws = np.random.default_rng(seed).lognormal(math.log(median), sigma, sum(augmented))
    draws *= mean / draws.mean()
    it = iter(draws.tolist())
    costs = [decode + (next(it) if aug else 0.0) for aug in augmented]
    return costs, 1.0 / run["frames_per_s"]["compute_bound"]


def replay(
    costs: list[float],
    frame_s: float,
    seq_len: int,
    batch_size: int,
    workers: int,
    in_order: bool,
    prefetch: int = 2,
) -> dict[str, float]:
    """One pass over the replayed sequences; the encoders are a sleep per batch."""
    from extract.source import decode_loader

    batches = decode_loader(ReplayItems(costs), batch_size, workers, in_order=in_order, prefetch=prefetch)
    start = time.perf_counter()
    waited, first, encoders, seen = 0.0, None, 0.0, 0
    ready = time.perf_counter()
    for batch in batches:
        got = time.perf_counter()
        if first is None:
            first = got - start  # worker start-up and the first sequences: kept apart, as bench.extract does
        else:
            waited += got - ready
        seen += len(batch)
        busy = len(batch) * seq_len * frame_s
        time.sleep(busy)
        encoders += busy
        ready = time.perf_counter()
    assert seen == len(costs), (seen, len(costs))
    total = time.perf_counter() - start
    return {
        "seconds": round(total, 3),
        "first_batch_s": round(first or 0.0, 3),
        "data_wait_s": round(waited, 3),
        "encoders_s": round(encoders, 3),
        "steady_over_encoders_alone": round(encoders / (total - (first or 0.0)), 3),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=RESULTS / "extract-full-cuda.json", help="recorded run")
    p.add_argument("--workers", default="", help="comma-separated worker counts (default: the run's)")
    p.add_argument("--prefetch", default="2", help="comma-separated sequences in flight per worker")
    p.add_argument("--rounds", type=int, default=2, help="passes per mode, alternating the modes")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="replay the run's sequences this many times over (a longer corpus)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the augment-seconds draw")
    p.add_argument("--out", type=Path, default=RESULTS / "loader-replay.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run = json.loads(args.run.read_text(encoding="utf-8"))
        costs, frame_s = replay_costs(run, args.seed)
        costs *= max(1, args.repeat)  # the plan's pattern again: a longer corpus, the same end tail
        settings = run["settings"]
        seq_len, batch_size = int(run["sequence_length"]), int(settings["batch_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"{args.run}: not a bench.extract result ({type(e).__name__}: {e})", file=sys.stderr)
        return 2
    counts = [int(w) for w in args.workers.split(",") if w] or [int(settings["workers"])]
    depths = [int(p) for p in args.prefetch.split(",") if p]
    replay(costs[:2], frame_s, seq_len, 1, 1, True)  # starts the worker server outside every clock
    modes: dict[str, list[dict[str, float]]] = {}
    for r in range(args.rounds):
        for workers in counts:
            for prefetch in depths:
                for in_order in (True, False) if r % 2 == 0 else (False, True):
                    name = f"{'in' if in_order else 'out_of'}_order_{workers}_workers_prefetch_{prefetch}"
                    out = replay(costs, frame_s, seq_len, batch_size, workers, in_order, prefetch)
                    modes.setdefault(name, []).append(out)
                    print(f"{name}: {out}", file=sys.stderr)
    # Per mode, the median round's data wait: how the last batches fall varies from round to round.
    waits = {name: statistics.median(o["data_wait_s"] for o in rounds) for name, rounds in modes.items()}
    steady = {
        name: statistics.median(o["steady_over_encoders_alone"] for o in rounds)
        for name, rounds in modes.items()
    }
    # the replayed run's own loader: in order, its workers, the DataLoader's default prefetch of 2
    base = f"in_order_{int(settings['workers'])}_workers_prefetch_2"
    ratios = {
        f"median_data_wait_over_{base}": {
            name: round(wait / max(waits[base], 1e-9), 3) for name, wait in waits.items() if name != base
        }
        if base in waits
        else {}
    }
    result = {
        "command": " ".join(["python", "-m", "bench.loader", *(argv if argv is not None else sys.argv[1:])]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "replayed_run": str(args.run),
        "replayed_machine": run.get("machine", {}),
        "machine": machine_info("cpu"),
        "note": (
            "Workers and encoders are sleeps of the replayed run's recorded lengths: this measures the "
            "loader's delivery order only, not a GPU."
        ),
        "replayed_data_wait_s": run["stages_s"].get("data_wait"),
        "sequences": len(costs),
        "repeat": args.repeat,
        "sequence_length": seq_len,
        "batch_size": batch_size,
        "worker_seconds_total": round(sum(costs), 3),
        "encoders_seconds_per_batch": round(batch_size * seq_len * frame_s, 3),
        "modes": modes,
        "median_data_wait_s": waits,
        "median_steady_over_encoders_alone": steady,
        "ratios": ratios,
    }
    path = write_result(args.out, result)
    print(json.dumps({"median_data_wait_s": waits, "ratios": ratios}, indent=1))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
