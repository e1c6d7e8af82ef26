#!/usr/bin/env python
"""Rewrite the README's performance block from bench/results/*.json.

    python -m bench.report [--readme README.md] [--check]

Only the text between ``<!-- perf-table:start -->`` and ``<!-- perf-table:end -->`` changes, so the
table can never drift from the measured numbers by hand-editing. ``--check`` exits 1 when the README
block differs from what the results give (for CI), without writing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.machine import mfu

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"
SWEEP_COST = ("<!-- sweep-cost:start -->", "<!-- sweep-cost:end -->")  # its own block: bench/sweep_cost.py
STAGES = (
    ("decode", "decode*"),
    ("augment", "augment*"),
    ("data_wait_first_batch", "first batch"),
    ("data_wait", "data wait"),
    ("preprocess", "resize"),
    ("hands", "YOLO"),
    ("vit", "ViT"),
    ("cnn", "CNN"),
    ("dino", "DINO"),
    ("swav", "SwAV"),
    ("crops", "crops"),
    ("write", "write"),
    ("assemble", "assemble"),
)
COMMANDS = (
    ".venv/bin/python -m bench.extract --preset full --weights random --frames 64 --rounds 2  # ~15 min",
    ".venv/bin/python -m bench.extract --preset tiny --frames 64 --rounds 2",
    ".venv/bin/python -m bench.train",
    ".venv/bin/python -m bench.sweep --preset full    # per-encoder micro-batch sweep (optional)",
    ".venv/bin/python -m bench.sweep_cost             # sweep vs separate trains (~20 min)",
    ".venv/bin/python -m bench.report                 # rewrites this block",
)


def _embed_dim(dims: dict[str, Any]) -> int:
    """D of the 12-channel block; results written before schema v2 recorded it directly."""
    return dims["fields"]["embeddings"]["shape"][-1] if "fields" in dims else dims["embed_dim"]


def _load(pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(pattern))]


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def _machine(results: list[dict[str, Any]]) -> str:
    m = results[0]["machine"]
    gpu = m.get("gpu") or "none (no GPU was available to these runs; no GPU numbers are given)"
    return f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}; GPU: {gpu}"


def _others(load: dict[str, dict[str, float]], mode: str) -> str:
    return _f(load.get(mode, {}).get("other_processes_cores"), 2)


def extract_tables(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "**Extraction** (frames/s; `naive` = per-image stock-preprocessing loop, `pipeline` = "
        "`extract.run` end to end, `compute` = the encoders alone on pre-decoded frames; cores = other "
        "processes' CPU use "
        "during pipeline / compute / naive)",
        "",
        "| preset | frames | naive | pipeline | compute | pipeline / naive | pipeline / compute "
        "| GFLOP/frame | matmul peak GFLOP/s | MFU | other cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        fps, ratios, load = r["frames_per_s"], r["ratios"], r["load"]
        others = "/".join(_others(load, m) for m in ("pipeline", "compute_bound", "naive"))
        lines.append(
            f"| {r['preset']} ({r['weights']}) | {r['frames']} ({r['frames_naive']} naive) "
            f"| {_f(fps['naive'], 3)} | {_f(fps['pipeline'], 3)} | {_f(fps['compute_bound'], 3)} "
            f"| {_f(ratios['pipeline_over_naive'])}× | {_f(ratios['pipeline_over_compute_bound'])}× "
            f"| {_f(r['gflop_per_frame'], 1)} | {_f(r['peak_gflop_per_s'], 0)} | {_f(100 * r['mfu'], 0)}% "
            f"| {others} |"
        )
    lines += [
        "",
        "**Pipeline stages** (seconds over the run; * = summed over the DataLoader workers, overlapped "
        "with the encoders; `first batch` includes worker start-up)",
        "",
        "| preset | total | " + " | ".join(name for _, name in STAGES) + " |",
        "|---|---|" + "---|" * len(STAGES),
    ]
    for r in results:
        st = r["stages_s"]
        cells = " | ".join(_f(st.get(key), 1) for key, _ in STAGES)
        lines.append(f"| {r['preset']} | {_f(r['seconds']['pipeline'], 1)} | {cells} |")
    return lines


def _reader(workers: int) -> str:
    return "a background thread (`--workers 0`)" if workers == 0 else f"{workers} worker processes"


def train_table(r: dict[str, Any]) -> list[str]:
    e, ratios = r["epoch_s"], r["ratios"]
    lines = [
        f"**Training from the cache** ({r['sequences']} synthetic sequences of T = {r['dims']['frames']}, "
        f"D = {_embed_dim(r['dims'])}; batch {r['batch_size']}; "
        f"cache streamed by {_reader(r['workers_cache'])})",
        "",
        "| epoch from cache | epoch in memory | cache / memory | bytes per sequence | raw float32 "
        "| disk / raw | shard write MB/s | other cores |",
        "|---|---|---|---|---|---|---|---|",
        f"| {_f(e['cache'])} s | {_f(e['memory'])} s | {_f(ratios['cache_over_memory_epoch'])}× "
        f"| {r['bytes_per_sequence'] / 1e6:.3f} MB | {r['raw_float32_bytes_per_sequence'] / 1e6:.3f} MB "
        f"| {_f(ratios['bytes_over_raw_float32'], 3)} | {_f(r['write_mb_per_s'], 0)} "
        f"| {_f(r['runs']['cache'][0]['load']['other_processes_cores'])} |",
    ]
    if (procs := e.get("cache_process_workers")) is not None:
        lines += [
            "",
            f"Streamed by {_reader(r['process_workers'])} instead: "
            f"{_f(procs)} s per epoch ({_f(procs / e['memory'])}× memory).",
        ]
    return lines


def targets_table(extract: list[dict[str, Any]], train: list[dict[str, Any]]) -> list[str]:
    lines = [
        "**Targets** (CPU, full preset, random weights)",
        "",
        "| target | measured | holds |",
        "|---|---|---|",
    ]
    for r in extract:
        if r["preset"] == "full":
            lines += [_target_row(name, "≥", t) for name, t in r["targets"].items()]
    for r in train:
        lines += [_target_row(name, "≤", t) for name, t in r["targets"].items()]
    return lines


def _target_row(name: str, op: str, t: dict[str, Any]) -> str:
    holds = "yes" if t["holds"] else "no"
    return f"| {name.replace('_', ' ')} {op} {t['target']} | {_f(t['value'], 3)} | {holds} |"


def extract_notes(r: dict[str, Any]) -> list[str]:
    """What the full-preset numbers say, in sentences computed from them."""
    fps, st, gflop, peak = r["frames_per_s"], r["stages_s"], r["gflop_per_frame"], r["peak_gflop_per_s"]
    naive_mfu = mfu(fps["naive"], gflop, peak)
    hands_flops = r["gflop_per_frame_by_role"]["hands"] / gflop
    encoders = sum(st.get(k, 0.0) for k in ("hands", "vit", "cnn", "dino", "swav"))
    workers = st.get("decode", 0.0) + st.get("augment", 0.0)
    waited, first = st.get("data_wait", 0.0), st.get("data_wait_first_batch", 0.0)
    return (
        [
            f"- The naive loop already runs at {100 * naive_mfu:.0f}% of the matmul peak: on this CPU the "
            f"encoders are large dense kernels either way, so no pipeline can beat it by more than "
            f"{1 / naive_mfu:.2f}× (that is, at 100% MFU). Against that ceiling the pipeline reaches "
            f"{r['ratios']['pipeline_over_naive']:.2f}×, with channels_last CNNs and YOLO and "
            f"micro-batches picked by `bench/sweep.py`; YOLOv8x, the largest share, is fastest at one "
            f"frame per call on this CPU, so batching buys it nothing.",
            f"- YOLOv8x is {100 * hands_flops:.0f}% of the {gflop:.0f} GFLOP per frame and "
            f"{100 * st.get('hands', 0.0) / encoders:.0f}% of the encoders' time; it runs at "
            f"{r['gflop_per_frame_by_role']['hands'] * r['frames'] / st['hands']:.0f} GFLOP/s.",
            f"- Decode and augmentation took {workers:.1f} s of worker time, hidden behind the encoders: "
            f"after the first batch the encoders waited {waited:.2f} s for data. The first batch "
            f"({first:.1f} s) is {_first_batch(r)}. "
            f"Shard writes took {st.get('write', 0.0):.2f} s in all, on a background thread "
            "(`extract/shard_writer.py`).",
        ]
        + _augment_note(r)
        + _peak_note(r)
    )


def _first_batch(r: dict[str, Any]) -> str:
    """What the first batch's wait holds: with the worker server started before the clock, the workers'
    fork and first decode only."""
    if r.get("settings", {}).get("worker_server") == "warm":
        return (
            "the workers' fork and first decode: each run's worker server was started before the clock, "
            "as the CLI starts it while it builds the encoders"
        )
    return "worker start-up, which the CLI overlaps with building the encoders"


def tiny_note(r: dict[str, Any]) -> list[str]:
    """Why the tiny preset's ratios say nothing about speed."""
    st = r["stages_s"]
    encoders = sum(st.get(k, 0.0) for k in ("hands", "vit", "cnn", "dino", "swav"))
    first = st.get("data_wait_first_batch", 0.0)
    return [
        f"- tiny: the encoders are {encoders:.1f} s of the {r['seconds']['pipeline']:.1f} s pipeline run; "
        f"worker start-up ({first:.1f} s) and resizing frames dominate. The tiny preset checks the "
        "harness end to end; its frames/s are not a speed claim."
    ]


def _peak_note(r: dict[str, Any]) -> list[str]:
    samples = [x["gflop_per_s"] for x in r.get("peak_gflop_per_s_samples", []) if isinstance(x, dict)]
    if len(samples) < 2:
        return []
    cpu = r.get("mfu_per_cpu_second", {}).get("pipeline")
    per_cpu = (
        f" Per CPU-second it got, the pipeline ran at {100 * cpu:.0f}% of one core's peak." if cpu else ""
    )
    return [
        f"- The matmul peak, sampled {len(samples)} times in the run, ranged {min(samples):.0f}–"
        f"{max(samples):.0f} GFLOP/s even when no other process was visible: the host itself varies. "
        f"MFU is taken against the best sample, so it is a lower bound.{per_cpu}"
    ]


def _augment_note(r: dict[str, Any]) -> list[str]:
    aug, per_seq = r.get("augment_s_per_sequence"), r.get("compute_s_per_sequence")
    if not aug or not per_seq:
        return []
    return [
        f"- Augmenting one {r['sequence_length']}-frame sequence at {r['image_size']}×{r['image_size']} "
        f"takes {aug['min']:.2f}–{aug['max']:.2f} s of one worker (median {aug['median']:.2f} s over "
        f"{aug['seeds']} recipes) against {per_seq:.0f} s of encoders per sequence: even with every "
        f"sequence augmented it is at most {100 * aug['max'] / per_seq:.1f}% of the CPU."
    ]


def train_notes(r: dict[str, Any]) -> list[str]:
    def cpu_per_epoch(mode: str) -> float:
        runs = r["runs"][mode]
        return min(x["load"]["own_cpu_s"] / len(x["epoch_s"]) for x in runs)

    memory_cores = cpu_per_epoch("memory") / r["epoch_s"]["memory"]
    extra = cpu_per_epoch("cache") - cpu_per_epoch("memory")
    return [
        f"- In memory, training keeps {memory_cores:.1f} of {r['cpu_count']} cores busy; reading the gzip "
        f"cache adds {extra:.1f} CPU-s per epoch ({1000 * extra / r['sequences']:.1f} ms per sequence: "
        "ISA-L inflate and byte unshuffle of every chunk). The prefetch thread hides what fits in the "
        "cores training leaves idle; preloading (the `train` default when the cache fits in memory) "
        "avoids the rest.",
    ]


def _sizes(rows: dict[str, Any], label: str) -> str:
    sizes = sorted(rows.get(label, {}).items(), key=lambda kv: int(kv[0]))
    return ", ".join(f"{k}: {v['cpu_ms_per_frame']:.0f}" for k, v in sizes) or "–"


def sweep_table(r: dict[str, Any], chosen: dict[str, int]) -> list[str]:
    lines = [
        "**Micro-batch sweep** (CPU ms per frame by frames per call, lower is better; one encoder at a "
        "time on prepared inputs, `bench/sweep.py`; CPU time because it is steadier than wall time on a "
        "shared machine)",
        "",
        "| encoder | channels_last: ms/frame by micro-batch | stock NCHW | pipeline uses |",
        "|---|---|---|---|",
    ]
    for role, rows in r["roles"].items():
        layout = "" if rows.get("channels_last") else " (no layout choice: not a CNN)"
        lines.append(
            f"| {role} | {_sizes(rows, 'as_configured')}{layout} | {_sizes(rows, 'contiguous')} "
            f"| {chosen.get(role, '–')} |"
        )
    return lines


def render() -> str:
    # CPU runs only: a GPU run's figures have their own block (bench/device.py, the device table).
    extract, train = _load("extract-*-cpu.json"), _load("train-*.json")
    if not extract and not train:
        return "_Run the benchmarks (`bench/`) to fill this table._"
    lines = [
        f"Measured on {_machine(extract or train)}. The machine is shared: timings are noisy, and the "
        "`other cores` column says how busy it was.",
        "",
    ]
    if extract:
        lines += extract_tables(sorted(extract, key=lambda r: r["preset"])) + [""]
        lines += [n for r in extract if r["preset"] == "full" for n in extract_notes(r)]
        lines += [n for r in extract if r["preset"] == "tiny" for n in tiny_note(r)] + [""]
    sweeps = _load("sweep-*.json")
    if sweeps:
        full = [r for r in extract if r["preset"] == "full"]
        chosen = full[0]["settings"]["micro_batch"] if full else {}
        lines += sweep_table(sweeps[0], chosen) + [""]
    if train:
        lines += train_table(train[0]) + [""] + train_notes(train[0]) + [""]
    lines += targets_table(extract, train) + [
        "",
        "Regenerate (one command per benchmark, then the table):",
        "",
        "```bash",
    ]
    lines += [*COMMANDS, "```"]
    return "\n".join(lines)


def sweep_cost_block(results: list[dict[str, Any]]) -> str:
    """bench/sweep_cost.py: 12 separate train processes vs one sweep, and --parallel 2 memory."""
    if not results:
        return "_Run `bench/sweep_cost.py` to fill this table._"
    r = results[0]
    s, b, mem, ratios = r["seconds"], r["cache_bytes_read"], r["peak_memory_bytes"], r["ratios"]
    rc = r["rchar_bytes"]
    holds = "holds" if r["targets"]["sweep_over_separate_seconds"]["holds"] else "does not hold"
    others = "/".join(_f(w[0]["load"].get("other_processes_cores")) for w in r["ways"].values())
    return "\n".join(
        [
            f"{r['runs']} runs (`{r['grid']}`, {r['epochs']} epoch each) on {r['sequences']} synthetic "
            f"sequences of T = {r['dims']['frames']}, D = {_embed_dim(r['dims'])} "
            f"({r['cache_bytes'] / 1e6:.0f} MB cache), "
            f"{_machine([r])}; other processes used {others} cores during separate/sweep.",
            "",
            "| way | wall | cache bytes read | all read() bytes | peak memory |",
            "|---|---|---|---|---|",
            f"| 12 × `train` | {s['separate']:.0f} s | {b['separate'] / 1e9:.2f} GB "
            f"| {rc['separate'] / 1e9:.1f} GB "
            "| one run: "
            f"{mem['one_train'] / 1e9:.2f} GB |",
            f"| one `sweep` | {s['sweep']:.0f} s ({ratios['sweep_over_separate_seconds']:.2f}×; target ≤ "
            f"{r['targets']['sweep_over_separate_seconds']['target']} {holds}) | {b['sweep'] / 1e9:.2f} GB "
            f"| {rc['sweep'] / 1e9:.1f} GB "
            f"| `--parallel 2`: {mem['sweep_parallel_2'] / 1e9:.2f} GB "
            f"({ratios['parallel_2_over_one_train_memory']:.2f}× one run) |",
            "",
            f"Same metrics.csv either way: {'yes' if r['same_metrics_csv'] else 'no'}. Cache bytes: the "
            "stored (compressed) chunks the reader fetched; all read() bytes: `rchar` of the processes, "
            "Python's imports included. Peak memory: summed PSS of the process tree, the decoded arrays "
            "in /dev/shm counted once at their whole size.",
        ]
    )


def rewrite(readme: str, block: str, start: str = START, end: str = END) -> str:
    if start not in readme or end not in readme:
        raise SystemExit(f"README has no {start} ... {end} block")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--check", action="store_true", help="exit 1 if the README block is stale")
    args = p.parse_args(argv)
    text = args.readme.read_text()
    new = rewrite(text, render())
    if SWEEP_COST[0] in new:
        new = rewrite(new, sweep_cost_block(_load("sweep_cost-*.json")), *SWEEP_COST)
    if args.check:
        return 0 if new == text else 1
    if new != text:
        args.readme.write_text(new)
    print(args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
