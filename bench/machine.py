"""What a benchmark ran on and how busy the machine was: CPU, cores, matmul peak, other processes' load.

The benchmark machines are shared, so every timing is stored next to how many cores *other* processes
were using meanwhile; a number taken while others held a core is not comparable with a quiet one.
Import this module before torch where possible: ``quiet_threads()`` must run before OpenMP starts.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"
_HZ = os.sysconf("SC_CLK_TCK")


def quiet_threads() -> None:
    """Passive OpenMP waits, as pipeline.py sets: busy-waiting threads made compute ~20x slower
    when decode workers shared the cores. Must run before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never wait on a network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict[str, Any]:
    """The keys every result carries under "machine"."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "gpu": gpu,
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
    }


def mfu(frames_per_s: float, gflop_per_frame: float, peak_gflop_per_s: float) -> float:
    """Model FLOP utilisation: the GFLOP/s the encoders' own FLOPs were done at, over the matmul peak."""
    return frames_per_s * gflop_per_frame / peak_gflop_per_s


def matmul_peak_gflops(
    device: str = "cpu", n: int = 2048, repeats: int = 8, threads: int = 0, dtype: str = "float32"
) -> float:
    """Best GFLOP/s of an n x n matmul in ``dtype`` with all threads (or ``threads``): the roofline the
    MFU is measured against. fp32 on CPU, where the encoders run in fp32; bf16 on CUDA, where they run
    under bf16 autocast (``peak_dtype``).

    The best of several repeats, because a shared machine only ever makes a matmul slower.
    """
    import torch

    if threads:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return matmul_peak_gflops(device, n, repeats, dtype=dtype)
        finally:
            torch.set_num_threads(previous)
    dev, kind = torch.device(device), getattr(torch, dtype)
    a = torch.randn(n, n, device=dev, dtype=kind)
    b = torch.randn(n, n, device=dev, dtype=kind)
    out = torch.empty(n, n, device=dev, dtype=kind)
    torch.mm(a, b, out=out)  # warm-up: thread pool, kernel selection
    best = 0.0
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def peak_dtype(device: str) -> str:
    """The dtype the encoders' matmuls run in on ``device``: the one their MFU must be measured against."""
    return "bfloat16" if device.startswith("cuda") else "float32"


def _busy_ticks() -> int:
    """Machine-wide CPU ticks spent on anything but idle and iowait, from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(v) for v in fields]
    return sum(ticks) - ticks[3] - ticks[4]  # minus idle, iowait


def _own_ticks() -> int:
    """CPU ticks of this process and every descendant (DataLoader workers live under a forkserver),
    including reaped children, so a worker that exited still counts."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = raw.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
        pid = int(entry.name)
        parent[pid] = int(rest[1])
        ticks[pid] = sum(int(v) for v in rest[11:15])  # utime stime cutime cstime
    me = os.getpid()
    total = 0
    for pid in ticks:
        p = pid
        while p > 1 and p != me:
            p = parent.get(p, 0)
        if p == me:
            total += ticks[pid]
    return total


@dataclass
class LoadMeter:
    """Cores used by *other* processes over a measured interval: machine busy ticks minus our own."""

    start: float = 0.0
    busy: int = 0
    own: int = 0
    result: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> LoadMeter:
        self.start, self.busy, self.own = time.monotonic(), _busy_ticks(), _own_ticks()
        self.result = {"loadavg_1min_start": os.getloadavg()[0]}
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.start
        own = _own_ticks() - self.own
        others = (_busy_ticks() - self.busy) - own
        self.result.update(
            seconds=round(elapsed, 3),
            own_cpu_s=round(own / _HZ, 2),
            other_processes_cores=round(max(0.0, others / _HZ / max(elapsed, 1e-9)), 3),
            loadavg_1min_end=os.getloadavg()[0],
        )


def write_result(path: Path, result: dict[str, Any]) -> Path:
    """Write one result as JSON (sorted keys, so reruns diff cleanly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result, sort_keys=True)
    return path
