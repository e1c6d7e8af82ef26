"""How to store hand masks: bit-packed rows against uint8 0/1, in the cache's own chunked, gzipped layout.

Writes N sequences x T frames x 2 hands of 64x64 masks twice through ``cache.schema.create_datasets``
(one-sequence chunks, shuffle + gzip-4, as every cache field), once as (2, 64, 64) uint8 and once
bit-packed to (2, 64, 8) uint8, and reports the stored bytes per sequence and the time to read every
sequence back (and unpack). Two kinds of masks: moving ellipses (hand-like blobs) and smoothed random
noise (ragged blobs, closer to what random-weight SAM2 gives).

    python -m bench.mask_storage [--sequences 20] [--frames 32]
"""

from __future__ import annotations

from bench.machine import quiet_threads

quiet_threads()

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.machine import RESULTS, cpu_name, write_result  # noqa: E402
from cache.masks import pack_masks, unpack_masks  # noqa: E402
from cache.schema import Dims, FieldSpec, create_datasets  # noqa: E402

SIZE = 64


def ellipses(n: int, t: int, rng: np.random.Generator) -> np.ndarray:
    """(n, t, 2, S, S) bool: one ellipse per hand drifting across the frame."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    out = np.zeros((n, t, 2, SIZE, SIZE), bool)
    for i in range(n):
        for h in range(2):
            (cx, cy), (vx, vy), (a, b) = rng.uniform(10, 54, 2), rng.normal(0, 0.7, 2), rng.uniform(5, 14, 2)
            for f in range(t):
                out[i, f, h] = ((xx - cx - vx * f) / a) ** 2 + ((yy - cy - vy * f) / b) ** 2 <= 1
    return out


def blobs(n: int, t: int, rng: np.random.Generator) -> np.ndarray:
    """(n, t, 2, S, S) bool: random noise smoothed over 5x5 pixels, thresholded a little above 0."""
    noise = torch.from_numpy(rng.normal(size=(n * t * 2, 1, SIZE, SIZE)).astype(np.float32))
    smooth = F.avg_pool2d(noise, 5, stride=1, padding=2)
    return (smooth > 0.05).numpy().reshape(n, t, 2, SIZE, SIZE)


def measure(masks: np.ndarray, packed: bool, folder: Path) -> dict[str, float]:
    """Stored bytes per sequence and read-back milliseconds per sequence of one layout."""
    n, t = masks.shape[:2]
    data = pack_masks(torch.from_numpy(masks)).numpy() if packed else masks.astype(np.uint8)
    dims = Dims(frames=t, fields=(FieldSpec("hand_masks", data.shape[2:], "uint8"),))
    path = folder / f"masks-{'packed' if packed else 'uint8'}.h5"
    with h5py.File(path, "w") as h5:
        ds = create_datasets(h5, n, dims)["hand_masks"]
        ds[...] = data
        stored = ds.id.get_storage_size()
    start = time.perf_counter()
    with h5py.File(path, "r") as h5:
        for i in range(n):
            back = h5["hand_masks"][i]
            back = unpack_masks(back) if packed else back.astype(bool)
            assert np.array_equal(back, masks[i])
    return {
        "bytes_per_sequence": round(stored / n, 1),
        "read_ms_per_sequence": round((time.perf_counter() - start) / n * 1e3, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=20)
    ap.add_argument("--frames", type=int, default=32)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    result = {
        "benchmark": "mask_storage",
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "sequences": args.sequences,
        "frames": args.frames,
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory(prefix="bench-masks-") as tmp:
        for name, make in (("ellipses", ellipses), ("blobs", blobs)):
            masks = make(args.sequences, args.frames, rng)
            result[name] = {
                "foreground_share": round(float(masks.mean()), 4),
                "uint8_gzip": measure(masks, False, Path(tmp)),
                "packed_gzip": measure(masks, True, Path(tmp)),
            }
    print(write_result(RESULTS / "mask_storage-cpu.json", result))
    for name in ("ellipses", "blobs"):
        print(name, result[name])


if __name__ == "__main__":
    main()
