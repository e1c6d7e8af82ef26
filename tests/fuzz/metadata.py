"""Every metadata byte of an HDF5 input zeroed, one at a time: the damage random mutation rarely lands on.

    PYTHONPATH=tests python -m fuzz.metadata [--kinds shard "split file (train.h5)"]

Random byte mutation spends almost every case on chunk data, which checksums already guard; the bytes
that decide what a read means (dataspaces, datatypes, chunk index records) are a few thousand of a
file's ~10^5. This walks them all. A first pass zeroes each non-zero byte outside the chunk data and
reads the file with plain h5py in a forked child: most damage fails there or changes nothing. Only the
cases where plain h5py reads other values, or crashes, go through the product (the kind's ``consume``,
in a forked child too, so a libhdf5 crash is counted rather than ending the sweep). The property is
``fuzz.registry``'s; a crash (a signal) is a violation of its own.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py

import fuzz.kinds  # noqa: F401  registers the kinds
from fuzz.registry import ALLOWED, KINDS, Prepared, prepare, run_case

HDF5_KINDS = ("shard", "split file (train.h5)")


def in_child(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``fn()`` in a forked child: ("ok", its result), ("error", text) or ("crash", signal number)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            answer = ("ok", fn())
        except Exception as exc:  # noqa: BLE001 - any failure is an answer
            answer = ("error", f"{type(exc).__name__}: {exc}"[:200])
        os.write(write, pickle.dumps(answer))
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return (
        pickle.loads(data) if data else ("crash", os.WTERMSIG(status) if os.WIFSIGNALED(status) else status)
    )


def _plain_read(path: Path) -> dict[str, tuple]:
    with h5py.File(path, "r", locking=False) as h5:
        return {k: (str(h5[k].dtype), h5[k].shape, h5[k][()].tobytes()) for k in h5}


def metadata_offsets(path: Path, data: bytes) -> list[int]:
    """Offsets of the non-zero bytes outside every chunk's stored bytes: the file's metadata."""
    spans: list[tuple[int, int]] = []
    with h5py.File(path, "r", locking=False) as h5:
        for ds in h5.values():
            if ds.chunks is not None:
                ds.id.chunk_iter(lambda info: spans.append((info.byte_offset, info.byte_offset + info.size)))
    covered = bytearray(len(data))
    for start, end in spans:
        covered[start:end] = b"\1" * (end - start)
    return [i for i, byte in enumerate(data) if byte and not covered[i]]


def sweep(prep: Prepared) -> tuple[Counter, list[str], int]:
    """(outcome counts over the cases the product saw, the first violations, bytes tried in all)."""
    path, pristine = prep.sample.path, prep.pristine
    baseline = _plain_read(path)
    offsets = metadata_offsets(path, pristine)
    suspects = []
    for at in offsets:
        path.write_bytes(pristine[:at] + b"\0" + pristine[at + 1 :])
        kind, value = in_child(lambda: _plain_read(path))
        if kind == "crash" or (kind == "ok" and value != baseline):
            suspects.append(at)
    path.write_bytes(pristine)
    outcomes: Counter = Counter()
    violations: list[str] = []
    for at in suspects:
        damaged = pristine[:at] + b"\0" + pristine[at + 1 :]
        kind, case = in_child(lambda damaged=damaged: run_case(prep, damaged))
        path.write_bytes(pristine)  # a crashed child could not restore it
        outcome = (
            f"crash (signal {case})" if kind == "crash" else case.outcome if kind == "ok" else "traceback"
        )
        outcomes[outcome] += 1
        if outcome not in ALLOWED and len(violations) < 5:
            detail = "" if kind == "crash" else case.detail[:160] if kind == "ok" else case
            violations.append(f"byte {at} (was {pristine[at]}): {outcome} {detail}".strip())
    return outcomes, violations, len(offsets)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="*", default=list(HDF5_KINDS))
    args = ap.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="fuzz-metadata-") as tmp:
        for name in args.kinds:
            prep = prepare(KINDS[name], Path(tmp))
            outcomes, violations, tried = sweep(prep)
            print(f"{name}: {tried} metadata bytes zeroed; through the product: {dict(outcomes)}")
            for line in violations:
                print(f"  {line}")
            failed |= bool(violations)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
