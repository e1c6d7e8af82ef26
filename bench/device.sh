#!/usr/bin/env bash
# The device benchmark, ready before any GPU: run it first thing on a GPU machine (< 8 minutes on one GPU).
#
#   bench/device.sh             # full preset, random weights, --device cuda: writes bench/results/*-cuda.json
#                               # and the README's device block (the perf table above it stays CPU-only)
#   bench/device.sh --dry-run   # tiny preset on CPU into $BENCH_OUT (a temp folder by default); the
#                               # CUDA-only steps write why they were skipped. The test suite runs this.
#
# Steps: the bf16 matmul peak; each encoder alone in images/s at its best batch; the pipeline end to end
# with the encoders alone and the naive per-image loop beside it, and MFU (bench/extract.py); a profile of
# the encoders on pipeline batches (bench/profile.py: device busy share, device time and TFLOP/s per role,
# kernel launches, host-device syncs, the top kernels); YOLO's box selection on frames holding hands
# (bench/nms.py: ultralytics' per-image NMS against the batched one; random weights find no hands);
# --hands-every 1 against 4; torchcodec's decoder (NVDEC on the GPU) against PyAV's pixels at 1080p (skipped
# without torchcodec: pip install ".[gpu-decode]"); the summary with the targets. Each step has its own
# time limit; a step that fails or runs over is named at the end (exit 1) and the others still run.
# With COMPILE=1 it also times each encoder alone compiled (--compile) against eager, and the seconds the
# compilation takes (up to 5 more minutes).
# A machine whose Python lacks the product's packages: run bench/device_wheels.sh first, where the package
# registries answer, and carry the .whl/ it writes; they are installed here before the steps.
# Environment: PYTHON (default: python, else python3), BENCH_OUT (result folder), BENCH_README (README to
# rewrite), COMPILE (1: the --compile step).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python || command -v python3)}
if [[ "${1:-}" == "--dry-run" ]]; then
    PRESET=tiny DEVICE=cpu FRAMES=4 NAIVE=4 HANDS=4 SECONDS_PER=0.05 SEQ=4 VIDEO=128x96 NMS_BATCH=8
    PROFILE=(--sequences 1 --image-size 128 --batches 1)
    LOADER=(--workers 0 --batch-size 1)
    OUT=${BENCH_OUT:-$(mktemp -d)}
    README=${BENCH_README:-}
else
    PRESET=full DEVICE=cuda FRAMES=4096 NAIVE=64 HANDS=512 SECONDS_PER=0.5 SEQ=32 VIDEO=1920x1080 NMS_BATCH=128
    PROFILE=(--sequences 8 --image-size 640 --batches 3)  # the batch an extraction on CUDA runs
    LOADER=()  # the batch size and workers an extraction on this machine picks (extract/run.py)
    OUT=${BENCH_OUT:-bench/results}
    README=${BENCH_README:-README.md}
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
        || { echo "bench/device.sh: no CUDA device here; use --dry-run to check the script on CPU" >&2; exit 2; }
    if compgen -G ".whl/*.whl" >/dev/null; then  # carried wheels (bench/device_wheels.sh) for what is missing
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
fi
mkdir -p "$OUT"
FAILED=()
# One step: its own time limit (a GPU lease is short: a hung step must not eat the others' time), and a
# failure is reported and the run goes on, so one broken step loses its own figures only.
step() {
    local name=$1 limit=$2 start=$SECONDS rc=0
    shift 2
    echo "== $name ($(date +%T), limit ${limit}s)" >&2
    timeout --kill-after=10 "$limit" "$@" || rc=$?
    if ((rc == 124 || rc == 137)); then
        FAILED+=("$name")
        echo "== FAILED: $name ran over its ${limit}s limit" >&2
    elif ((rc != 0)); then
        FAILED+=("$name")
        echo "== FAILED: $name (exit status $rc)" >&2
    fi
    echo "== $name: $((SECONDS - start)) s" >&2
}

step "bf16 matmul peak" 60 \
    "$PY" -m bench.device peak --device "$DEVICE" --out "$OUT/device-peak-$DEVICE.json"
step "each encoder alone, images/s by batch" 150 \
    "$PY" -m bench.device encoders --device "$DEVICE" --preset "$PRESET" --seconds "$SECONDS_PER" \
    --out "$OUT/encoders-$PRESET-$DEVICE.json"
step "pipeline end to end, encoders alone, naive loop, MFU" 240 \
    "$PY" -m bench.extract --preset "$PRESET" --weights random --device "$DEVICE" --frames "$FRAMES" \
    --naive-frames "$NAIVE" --seq-len "$SEQ" ${LOADER[@]+"${LOADER[@]}"} --rounds 1 \
    --out "$OUT/extract-$PRESET-$DEVICE.json"
step "where the encoders' time goes: torch.profiler over pipeline batches" 120 \
    "$PY" -m bench.profile --device "$DEVICE" --preset "$PRESET" --seq-len "$SEQ" "${PROFILE[@]}" \
    --out "$OUT/profile-$PRESET-$DEVICE.json"
step "hand boxes: per-image NMS against batched" 60 \
    "$PY" -m bench.nms --device "$DEVICE" --batch "$NMS_BATCH" --out "$OUT/nms-$DEVICE.json"
if [[ "${COMPILE:-0}" == 1 ]]; then  # opt-in: compiling the five networks may take minutes of its own
    step "--compile against eager, each encoder alone" 300 \
        "$PY" -m bench.device compiled --device "$DEVICE" --preset "$PRESET" --seconds "$SECONDS_PER" \
        --out "$OUT/compiled-$PRESET-$DEVICE.json"
fi
step "--hands-every 1 against 4" 150 \
    "$PY" -m bench.device hands-every --device "$DEVICE" --preset "$PRESET" --frames "$HANDS" \
    --out "$OUT/hands-every-$PRESET-$DEVICE.json"
step "decoded frames: torchcodec against PyAV" 90 \
    "$PY" -m bench.decode --frames 240 --segments 4 --size "$VIDEO" --rounds 1 --torchcodec \
    --out "$OUT/decode-$VIDEO-$DEVICE.json"
step "summary" 60 \
    "$PY" -m bench.device summary --device "$DEVICE" --preset "$PRESET" --dir "$OUT" ${README:+--readme "$README"}
if ((${#FAILED[@]})); then
    echo "== done with ${#FAILED[@]} failed step(s): ${FAILED[*]}; the others' results are in $OUT" >&2
    exit 1
fi
echo "== done: $OUT" >&2
