#!/usr/bin/env python
"""The steps of bench/device.sh that bench/extract.py does not already measure, and its summary.

    python -m bench.device peak      --device cuda --out FILE      # bf16 matmul peak
    python -m bench.device encoders  --device cuda --preset full --out FILE   # each encoder alone
    python -m bench.device compiled  --device cuda --preset full --out FILE   # each alone, --compile vs eager
    python -m bench.device hands-every --device cuda --preset full --out FILE  # --hands-every 1 vs 4
    python -m bench.device summary   --device cuda --preset full --dir DIR [--readme README.md]

``summary`` joins the step files of one run into ``device-<preset>-<device>.json`` (the issue's GPU
targets: pipeline over encoders alone, MFU against the measured bf16 peak, pipeline over the naive loop)
and rewrites the README's device block from it. A step that cannot run here (the bf16 peak without a
GPU) writes why it was skipped instead of a number.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import LoadMeter, machine_info, matmul_peak_gflops, quiet_threads, write_result

quiet_threads()  # before torch is imported

START, END = "<!-- device-table:start -->", "<!-- device-table:end -->"
# The GPU issue's targets, under the names of this summary (bench/extract.py checks the same on CUDA).
TARGETS = {"pipeline_over_encoders_alone": 0.85, "mfu_bf16": 0.40, "pipeline_over_naive": 10.0}
BATCHES = {"cuda": (1, 8, 32, 64, 128, 256), "cpu": (1, 2)}


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_peak(device: str, n: int = 8192, repeats: int = 20) -> float:
    """Best bf16 GFLOP/s of an n x n matmul: the roofline the GPU MFU is measured against."""
    return matmul_peak_gflops(device, n, repeats, dtype="bfloat16")


def _as_pipeline(device: Any, cudnn_benchmark: bool = True) -> Any:
    """The context the pipeline runs its encoders in: no autograd, then ``encoder_context`` (bf16 autocast
    and cuDNN's algorithm search on CUDA)."""
    import contextlib

    import torch

    from extract.encode import encoder_context

    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    stack.enter_context(encoder_context(device, cudnn_benchmark))
    return stack


def _images(enc: Any, device: Any, batch: int) -> Any:
    import torch

    return enc.prepare(torch.rand(batch, 3, *enc.preprocess.input_size, device=device))


def encoder_rate(enc: Any, device: Any, batch: int, seconds: float, cudnn_benchmark: bool = True) -> float:
    """Images/s of ``enc`` alone at ``batch`` (bf16 autocast on CUDA, as the pipeline runs it)."""
    x = _images(enc, device, batch)
    with _as_pipeline(device, cudnn_benchmark):
        enc(x)  # warm-up
        _sync(device)
        start, calls = time.perf_counter(), 0
        while True:
            enc(x)
            calls += 1
            _sync(device)
            if time.perf_counter() - start >= seconds:
                break
    return batch * calls / (time.perf_counter() - start)


def measure_encoders(preset: str, device_name: str, seconds: float) -> dict[str, Any]:
    """Per role: images/s at each batch size that fits, and the best."""
    import torch

    from extract.streams import preset_models, running_models
    from models.encoders import create_encoder

    device = torch.device(device_name)
    out: dict[str, Any] = {}
    for role, name in running_models(preset_models(preset)).items():
        enc = create_encoder(name, "random").to(device)
        rates: dict[str, float] = {}
        for batch in BATCHES[device.type]:
            try:
                rates[str(batch)] = encoder_rate(enc, device, batch, seconds)
            except torch.OutOfMemoryError:
                break
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        best = max(rates, key=rates.get)
        out[role] = {"model": name, "images_per_s": rates, "best_batch": int(best), "best": rates[best]}
        if device.type == "cuda":  # what cuDNN's algorithm search (the pipeline's setting) buys at that batch
            heuristic = encoder_rate(enc, device, int(best), seconds, cudnn_benchmark=False)
            out[role]["cudnn_heuristics_images_per_s"] = heuristic
            out[role]["cudnn_benchmark_over_heuristics"] = rates[best] / heuristic
        del enc
    return out


def measure_compiled(preset: str, device_name: str, seconds: float) -> dict[str, Any]:
    """Per role, at the pipeline's micro-batch: images/s eager, the seconds ``--compile``'s first call
    takes (the compilation), and images/s compiled, through the product's own ``compile_backbone``."""
    import torch

    from extract.device_path import compile_backbone
    from extract.encode import DEFAULT_MICRO_BATCH, default_micro_batch
    from extract.streams import preset_models, running_models
    from models.encoders import create_encoder

    device = torch.device(device_name)
    sizes = default_micro_batch(device)
    out: dict[str, Any] = {}
    for role, name in running_models(preset_models(preset)).items():
        enc = create_encoder(name, "random").to(device)
        batch = sizes.get(role, DEFAULT_MICRO_BATCH[device.type])
        eager = encoder_rate(enc, device, batch, seconds)
        compiled = compile_backbone(enc)  # the hand detector's network in place: eager is measured first
        x = _images(compiled, device, batch)
        with _as_pipeline(device):
            _sync(device)
            start = time.perf_counter()
            compiled(x)  # compiles
            _sync(device)
            compile_s = time.perf_counter() - start
        rate = encoder_rate(compiled, device, batch, seconds)
        out[role] = {
            "model": name,
            "batch": batch,
            "eager_images_per_s": eager,
            "compile_s": compile_s,
            "compiled_images_per_s": rate,
            "compiled_over_eager": rate / eager,
        }
        print(f"{role}: {out[role]}", file=sys.stderr)
        del enc, compiled
        torch._dynamo.reset()  # each encoder's graphs compiled on their own, not against a cache limit
    return out


def measure_hands_every(preset: str, device: str, frames: int) -> dict[str, Any]:
    """Pipeline frames/s with the hand detector on every frame, on every 4th (interpolated between) and
    left out (hands=none): bench/hands_every.py's speed runs, one round, encoders built outside the clock."""
    from bench.hands_every import speed

    tmp = Path(tempfile.mkdtemp(prefix="bench-hands-every-"))
    try:
        seq_len = min(32, frames)
        out = speed([1, 4], preset, seq_len, max(1, frames // seq_len), tmp, lambda _: None, 1, device)
        ratios = out["speedup_vs_every_1_frames_per_s"]
        return {**out, "speedup_4_over_1": ratios["every_4"], "speedup_none_over_1": ratios["hands_none"]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"skipped": f"{path.name} was not written"}


def summarise(directory: Path, preset: str, device: str) -> dict[str, Any]:
    """The run's figures and the issue's GPU targets, from the step files in ``directory``."""
    peak = _read(directory / f"device-peak-{device}.json")
    encoders = _read(directory / f"encoders-{preset}-{device}.json")
    extract = _read(directory / f"extract-{preset}-{device}.json")
    hands = _read(directory / f"hands-every-{preset}-{device}.json")
    profile = _read(directory / f"profile-{preset}-{device}.json")
    nms = _read(directory / f"nms-{device}.json")
    path = directory / f"compiled-{preset}-{device}.json"
    compiled = _read(path) if path.exists() else {"skipped": "not run (bench/device.sh with COMPILE=1)"}
    decodes = sorted(directory.glob(f"decode-*-{device}.json"))  # bench/decode.py at the run's video size
    decode = _read(decodes[-1]) if decodes else {"skipped": f"no decode-*-{device}.json was written"}
    fps = extract.get("frames_per_s", {})
    gflop = extract.get("gflop_per_frame")
    bf16 = peak.get("bf16_gflop_per_s")
    ratios = {
        "pipeline_over_encoders_alone": extract.get("ratios", {}).get("pipeline_over_compute_bound"),
        "mfu_bf16": fps["pipeline"] * gflop / bf16 if bf16 and gflop and "pipeline" in fps else None,
        "pipeline_over_naive": extract.get("ratios", {}).get("pipeline_over_naive"),
    }
    return {
        "preset": preset,
        "device": device,
        "machine": extract.get("machine") or encoders.get("machine"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bf16_peak_gflop_per_s": bf16,
        "peak_skipped": peak.get("skipped"),
        "encoders_alone_best": {
            role: {
                "images_per_s": r["best"],
                "batch": r["best_batch"],
                "cudnn_benchmark_over_heuristics": r.get("cudnn_benchmark_over_heuristics"),
            }
            for role, r in encoders.get("encoders", {}).items()
        },
        "frames_per_s": fps,
        "gflop_per_frame": gflop,
        "ratios": ratios,
        "targets": {
            k: {"value": v, "target": TARGETS[k], "holds": v is not None and v >= TARGETS[k]}
            for k, v in ratios.items()
        },
        "hands_every": hands,
        "profile": _profile(profile),
        "nms": {k: nms[k] for k in ("skipped", "batch", "same_boxes", "seconds_per_batch") if k in nms},
        "compiled": compiled.get("encoders") or {"skipped": compiled.get("skipped", "not run")},
        "decode": {
            "recording": decode.get("recording"),
            "pyav_auto_threads_s": decode.get("runs_by_thread_type", {})
            .get("AUTO", {})
            .get("product", {})
            .get("seconds"),
            "torchcodec": decode.get("torchcodec") or {"skipped": decode.get("skipped", "not run")},
        },
    }


def _profile(p: dict[str, Any]) -> dict[str, Any]:
    """bench/profile.py's figures per frame: where the encoders' time went on pipeline batches."""
    if "skipped" in p:
        return p
    frames, batches = p["frames"], p["batches"]
    stages = {
        name: {
            "host_ms_per_frame": 1e3 * r["host_s"] / frames,
            **({"device_ms_per_frame": 1e3 * r["device_s"] / frames} if "device_s" in r else {}),
            **({"tflop_per_s": r["achieved_tflop_per_s"]} if "achieved_tflop_per_s" in r else {}),
        }
        for name, r in p["stages"].items()
    }
    out = {"frames": frames, "frames_per_s": frames / p["wall_s"], "stages": stages}
    if "device_busy_share" in p:
        out.update(
            {
                "device_busy_share": p["device_busy_share"],
                "kernel_launches_per_frame": p["kernel_launches_per_frame"],
                "syncs_per_batch": sum(p["syncs"].values()) / batches,
                "top_kernels": p["top_kernels"][:5],
            }
        )
    return out


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(s: dict[str, Any]) -> str:
    """The README rows of one device run."""
    m = s.get("machine") or {}
    card = m.get("gpu") or m.get("cpu") or "?"
    fps, t, h = s["frames_per_s"], s["targets"], s["hands_every"]
    enc = ", ".join(
        f"{r} {_f(v['images_per_s'], 0)} (batch {v['batch']})" for r, v in s["encoders_alone_best"].items()
    )
    search = ", ".join(
        f"{r} {_f(v.get('cudnn_benchmark_over_heuristics'))}×".replace("–×", "–")
        for r, v in s["encoders_alone_best"].items()
    )
    if "skipped" in h:
        speedup = none = f"skipped: {h['skipped']}"
    else:  # a run before hands=none was measured has no such ratio
        speedup, none = _f(h.get("speedup_4_over_1")), _f(h.get("speedup_none_over_1"))
    rows = [
        f"`bench/device.sh` on {card}, preset {s['preset']}, device {s['device']}, {s['created']}:",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| bf16 matmul peak, GFLOP/s | {_f(s['bf16_peak_gflop_per_s'], 0)} | |",
        f"| encoders alone, images/s at the best batch | {enc} | |",
        f"| cuDNN algorithm search over its heuristics, encoders alone at the best batch | {search} | |",
        f"| frames/s: naive / pipeline / encoders alone | {_f(fps.get('naive'))} / {_f(fps.get('pipeline'))}"
        f" / {_f(fps.get('compute_bound'))} | |",
    ]
    for key, label in (
        ("pipeline_over_encoders_alone", "pipeline / encoders alone"),
        ("mfu_bf16", "MFU against the bf16 peak"),
        ("pipeline_over_naive", "pipeline / naive"),
    ):
        rows.append(f"| {label} | {_f(t[key]['value'])} | ≥ {t[key]['target']} |")
    rows.append(f"| `--hands-every 4` over `1`, frames/s | {speedup} | |")
    rows.append(f"| `--encoders hands=none` over `--hands-every 1`, frames/s | {none} | |")
    rows.append(_profile_row(s.get("profile") or {"skipped": "not run"}))
    nms = s.get("nms") or {"skipped": "not run"}
    if "skipped" in nms:
        rows.append(
            f"| hand boxes from YOLO's outputs: NMS per image / batched | skipped: {nms['skipped']} | |"
        )
    else:
        sec = nms["seconds_per_batch"]
        rows.append(
            f"| hand boxes from YOLO's outputs, {nms['batch']} frames with hands: ms per batch, NMS "
            f"per image / batched (same boxes: {'yes' if nms['same_boxes'] else 'NO'}) | "
            f"{_f(1e3 * sec['per_image'], 1)} / {_f(1e3 * sec['batched'], 1)} | |"
        )
    compiled = s.get("compiled") or {"skipped": "not run"}
    if "skipped" in compiled:
        rows.append(f"| `--compile` over eager, encoders alone | skipped: {compiled['skipped']} | |")
    else:
        each = ", ".join(
            f"{r} {_f(v['compiled_over_eager'])}× ({_f(v['compile_s'], 0)} s to compile)"
            for r, v in compiled.items()
        )
        rows.append(f"| `--compile` over eager, encoders alone at the pipeline's batch | {each} | |")
    d = s.get("decode") or {}
    codec, size = d.get("torchcodec") or {}, "x".join(map(str, (d.get("recording") or {}).get("size", [])))
    if "max_abs_diff" in codec:
        rows.append(
            f"| torchcodec ({codec['device']}) against PyAV, {size}: max / mean abs pixel difference; "
            f"seconds for {codec['frames']} frames (PyAV, AUTO threads: {_f(d.get('pyav_auto_threads_s'))}) "
            f"| {codec['max_abs_diff']} / {_f(codec['mean_abs_diff'], 3)}; {_f(codec['seconds'])} "
            "| codec tolerance |"
        )
    else:
        rows.append(f"| torchcodec against PyAV | skipped: {codec.get('skipped', 'not run')} | |")
    return "\n".join(rows)


def _profile_row(p: dict[str, Any]) -> str:
    if "skipped" in p:
        return f"| encoders on pipeline batches, profiled | skipped: {p['skipped']} | |"
    stages = p["stages"]
    if "device_busy_share" not in p:  # CPU: host time only
        each = ", ".join(f"{n} {_f(r['host_ms_per_frame'])}" for n, r in stages.items())
        return (
            f"| encoders on pipeline batches, profiled ({p['frames']} frames): host ms per frame | {each} | |"
        )
    each = ", ".join(
        f"{n} {_f(r['device_ms_per_frame'])}"
        + (f" ({_f(r['tflop_per_s'], 0)})" if "tflop_per_s" in r else "")
        for n, r in stages.items()
    )
    rate = _f(p["frames_per_s"], 0)
    return (
        f"| encoders on pipeline batches, profiled ({p['frames']} frames, {rate} frames/s): "
        "device busy share; device ms per frame (TFLOP/s) by stage; kernel launches per frame; host-device "
        f"syncs per batch | {_f(p['device_busy_share'])}; {each}; {_f(p['kernel_launches_per_frame'], 0)}; "
        f"{_f(p['syncs_per_batch'], 0)} | |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("peak", "encoders", "compiled", "hands-every", "summary"))
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    p.add_argument("--preset", default="full")
    p.add_argument("--frames", type=int, default=256, help="frames per --hands-every run")
    p.add_argument("--seconds", type=float, default=1.0, help="timing window per encoder and batch")
    p.add_argument("--out", type=Path, help="the step's result file")
    p.add_argument("--dir", type=Path, help="summary: the folder holding the step files")
    p.add_argument("--readme", type=Path, help="summary: rewrite this README's device block")
    args = p.parse_args(argv)
    import torch

    # the summary only reads step files: it can be redone anywhere, from the files a GPU run left
    if args.step != "summary" and args.device == "cuda" and not torch.cuda.is_available():
        print(f"bench.device {args.step}: no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    base = {
        "machine": machine_info(args.device),
        "command": " ".join(["python -m bench.device", *sys.argv[1:]]),
    }
    if args.step == "summary":
        summary = summarise(args.dir, args.preset, args.device)
        print(write_result(args.dir / f"device-{args.preset}-{args.device}.json", summary))
        if args.readme is not None:
            from bench.report import rewrite

            args.readme.write_text(rewrite(args.readme.read_text(), render(summary), START, END))
            print(args.readme)
        return 0
    with LoadMeter() as meter:
        if args.step == "peak":
            body: dict[str, Any] = (
                {"bf16_gflop_per_s": bf16_peak(args.device)}
                if args.device == "cuda"
                else {"skipped": "the bf16 peak is measured on CUDA only"}
            )
        elif args.step == "encoders":
            body = {
                "preset": args.preset,
                "encoders": measure_encoders(args.preset, args.device, args.seconds),
            }
        elif args.step == "compiled":
            body = {
                "preset": args.preset,
                "encoders": measure_compiled(args.preset, args.device, args.seconds),
            }
        else:
            body = measure_hands_every(args.preset, args.device, args.frames)
    print(write_result(args.out, {**base, **body, "load": meter.result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
