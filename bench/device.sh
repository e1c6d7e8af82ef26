#!/usr/bin/env bash
# The device benchmark, ready before any GPU: run it first thing on a GPU machine (< 8 minutes on one GPU).
#
#   bench/device.sh             # full preset, random weights, --device cuda: writes bench/results/*-cuda.json
#                               # and the README's device block (and the perf table, via bench.report)
#   bench/device.sh --dry-run   # tiny preset on CPU into $BENCH_OUT (a temp folder by default); the
#                               # CUDA-only steps write why they were skipped. The test suite runs this.
#
# Steps: the bf16 matmul peak; each encoder alone in images/s at its best batch; the pipeline end to end
# with the encoders alone and the naive per-image loop beside it, and MFU (bench/extract.py);
# --hands-every 1 against 4; torchcodec's decoder (NVDEC on the GPU) against PyAV's pixels at 1080p (skipped
# without torchcodec: pip install ".[gpu-decode]"); the summary with the targets.
# Environment: PYTHON (default: python), BENCH_OUT (result folder), BENCH_README (README to rewrite).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [[ "${1:-}" == "--dry-run" ]]; then
    PRESET=tiny DEVICE=cpu FRAMES=4 NAIVE=4 HANDS=4 SECONDS_PER=0.05 SEQ=4 WORKERS=0 BATCH=1 VIDEO=128x96
    OUT=${BENCH_OUT:-$(mktemp -d)}
    README=${BENCH_README:-}
else
    PRESET=full DEVICE=cuda FRAMES=1024 NAIVE=64 HANDS=512 SECONDS_PER=1.0 SEQ=32 WORKERS=8 BATCH=8 VIDEO=1920x1080
    OUT=${BENCH_OUT:-bench/results}
    README=${BENCH_README:-README.md}
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
        || { echo "bench/device.sh: no CUDA device here; use --dry-run to check the script on CPU" >&2; exit 2; }
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
fi
mkdir -p "$OUT"
step() { echo "== $* ($(date +%T))" >&2; }

step "bf16 matmul peak"
"$PY" -m bench.device peak --device "$DEVICE" --out "$OUT/device-peak-$DEVICE.json"
step "each encoder alone, images/s by batch"
"$PY" -m bench.device encoders --device "$DEVICE" --preset "$PRESET" --seconds "$SECONDS_PER" \
    --out "$OUT/encoders-$PRESET-$DEVICE.json"
step "pipeline end to end, encoders alone, naive loop, MFU"
"$PY" -m bench.extract --preset "$PRESET" --weights random --device "$DEVICE" --frames "$FRAMES" \
    --naive-frames "$NAIVE" --seq-len "$SEQ" --workers "$WORKERS" --batch-size "$BATCH" --rounds 1 \
    --out "$OUT/extract-$PRESET-$DEVICE.json"
step "--hands-every 1 against 4"
"$PY" -m bench.device hands-every --device "$DEVICE" --preset "$PRESET" --frames "$HANDS" \
    --out "$OUT/hands-every-$PRESET-$DEVICE.json"
step "decoded frames: torchcodec against PyAV"
"$PY" -m bench.decode --frames 240 --segments 4 --size "$VIDEO" --rounds 1 --torchcodec \
    --out "$OUT/decode-$VIDEO-$DEVICE.json"
step "summary"
"$PY" -m bench.device summary --device "$DEVICE" --preset "$PRESET" --dir "$OUT" ${README:+--readme "$README"}
if [[ "$DEVICE" == cuda && "$OUT" == bench/results ]]; then
    "$PY" -m bench.report --readme "$README"  # the perf table picks up extract-full-cuda.json
fi
step "done: $OUT"
