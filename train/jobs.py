"""Many trainings over one decoded cache: in this process, or ``parallel`` at once in worker processes.

Sweeps, folds and tune trials are lists of ``Job``s. A job whose run folder already holds ``run.json``
is finished and skipped, so re-running a killed command resumes it; a half-written run folder (killed
mid-training) is removed and run again. Worker processes map the same decoded arrays
(train/arrays.py): ``--parallel 2`` holds one copy of the data, not two.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import yaml

from cache.manifest import splits_digest
from core.atomic import write_json_atomic
from core.config import config_to_dict
from core.errors import BadInputError
from core.ranks import is_main_process
from core.signals import held_from_children
from train.arrays import DecodedCache, SplitSource
from train.config import TrainConfig
from train.runtime import open_manifest

# Options that do not change what a run learns: a finished run made with other values still counts.
NOT_COMPARED = ("name", "out", "device", "workers", "preload")


def options_digest(cfg: TrainConfig, *extra: Any, ignore: tuple[str, ...] = ("out", "name")) -> str:
    """8 hex digits naming a command's folder by what it trains (options less ``ignore``, and ``extra`` such
    as a sweep's grid), so the same command again finds its folder and resumes it."""
    shared = {k: v for k, v in config_to_dict(cfg).items() if k not in ignore}
    return hashlib.sha1(json.dumps([*extra, shared], sort_keys=True, default=str).encode()).hexdigest()[:8]


def refuse_run_folder(folder: Path, what: str) -> None:
    """A sweep's, folds' or study's folder must not be one run's: a run's config.yaml given as --config
    names that run by its out and name, and the runs would nest inside it (``runs`` counting them twice)."""
    if (folder / "config.yaml").is_file():
        raise BadInputError(
            f"{folder}: is one training run's folder, not a {what} folder (a run's config.yaml given as "
            "--config names it); pass another --name"
        )


@dataclass
class Job:
    """One training: its config (out/name fix the run folder) and the sequences it trains on."""

    cfg: TrainConfig
    members: dict[str, list[tuple[str, list[int]]]] | None = None  # None: the cache's own splits
    extra: dict[str, Any] = field(default_factory=dict)  # file name -> JSON written into the run folder

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.out) / str(self.cfg.name)


def is_finished(job: Job) -> bool:
    """True when the run folder is complete; refuses one made with other options (a changed command)."""
    run_dir = job.run_dir
    if not all((run_dir / name).is_file() for name in ("run.json", *job.extra)):
        return False
    try:
        done = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    want = config_to_dict(job.cfg)
    differ = sorted(k for k in want if k not in NOT_COMPARED and done.get(k) != want[k])
    if differ:
        raise BadInputError(
            f"{run_dir}: finished run made with other options ({', '.join(differ)}); "
            "re-run the original command, or choose another --name"
        )
    _refuse_another_split(run_dir, Path(job.cfg.cache))
    return True


def _refuse_another_split(run_dir: Path, cache: Path) -> None:
    """A finished run of the same options but another split of the cache (re-extracted with another seed
    since) would be averaged with runs of today's split: its folds would overlap, its test set differ."""
    try:
        recorded = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("splits_sha256")
    except (OSError, ValueError, AttributeError):
        return  # an unreadable run.json: runs reads what it can; this check needs the digest
    if recorded is None:  # written before runs recorded it: nothing to compare
        return
    current = _current_splits(cache)
    if current is not None and recorded != current:
        raise BadInputError(
            f"{run_dir}: finished run trained on another split of {cache} (it was re-extracted or re-split "
            f"since); to start over on today's split, remove {run_dir.parent} or choose another --out/--name"
        )


def _current_splits(cache: Path) -> str | None:
    """The cache's splits digest, read once per manifest version (a sweep asks for every job); None
    without a manifest (opening the cache says why)."""
    try:
        stat = (Path(cache) / "manifest.json").stat()
    except OSError:
        return None
    return _splits_of(str(cache), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _splits_of(cache: str, mtime_ns: int, size: int) -> str:
    return splits_digest(open_manifest(Path(cache)))


def pending_jobs(jobs: list[Job]) -> list[int]:
    """The indices of the jobs still to run, their half-written folders (a run killed mid-training) removed
    so they start over; says how many finished runs are kept."""
    pending = [i for i, job in enumerate(jobs) if not is_finished(job)]
    for i in pending:
        if jobs[i].run_dir.exists():
            shutil.rmtree(jobs[i].run_dir)
    if len(pending) < len(jobs):
        print(f"resuming: {len(jobs) - len(pending)} of {len(jobs)} runs already finished", flush=True)
    return pending


def run_jobs(jobs: list[Job], decoded: DecodedCache, parallel: int = 1) -> list[Path]:
    """Run the unfinished jobs (``parallel`` at once); return every job's run folder."""
    pending = [jobs[i] for i in pending_jobs(jobs)]
    if parallel <= 1 or len(pending) <= 1:
        for job in pending:
            run_job(decoded, job)
    else:
        _run_parallel(pending, decoded, parallel)
    return [job.run_dir for job in jobs]


def _run_parallel(pending: list[Job], decoded: DecodedCache, parallel: int) -> None:
    """The jobs in ``parallel`` worker processes, stopped by this process alone on Ctrl-C or SIGTERM.

    A terminal's Ctrl-C reaches every process of its group: workers caught importing torch or waiting for
    their next job printed a traceback each, and the pool's shutdown then waited for the trainings still
    running and started the queued ones. Here the workers never receive SIGINT. On Ctrl-C or SIGTERM this
    process drops the queued jobs and sends the workers SIGTERM, which ends their trainings (the same
    cleanup) and then the workers themselves; one stuck in a C call is killed after ``STOP_GRACE_S``. The
    half-written run folders are removed when the same sweep resumes.
    """
    threads = max(1, (os.cpu_count() or 1) // parallel)
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no forked torch/HDF5 state
    others = set(multiprocessing.active_children())
    pool = None
    try:
        with held_from_children(signal.SIGINT):  # the workers start (at submit) with SIGINT blocked
            pool = ProcessPoolExecutor(
                parallel, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
            )
            futures = [pool.submit(_run_in_worker, str(decoded.dir), job) for job in pending]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:  # the other running trainings finish (shutdown waits); the queued ones never start
            raise failed[0].exception()
    except KeyboardInterrupt:
        _stop_workers(pool, set(multiprocessing.active_children()) - others)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# How long a stopped worker may take to end its training before it is killed.
STOP_GRACE_S = 10.0


def _stop_workers(
    pool: ProcessPoolExecutor | None, workers: set[multiprocessing.process.BaseProcess]
) -> None:
    """SIGTERM to each worker, the queued jobs cancelled; a worker still alive after the grace is killed
    (its exit handlers do not run: the resource tracker may then warn about its semaphores)."""
    for worker in workers:
        worker.terminate()
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)  # the workers exit once their trainings unwound
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()


_running = False  # a parallel worker: whether it is inside a training now
_stopping = False  # a parallel worker: whether the sweep told it to stop (SIGTERM)


def _on_stop(signum: int, frame: FrameType | None) -> None:
    """A parallel worker's SIGTERM: end the running training as Ctrl-C would, through Python's own exit (a
    kill would leave its semaphores, tqdm's lock, to the resource tracker, which warns about each); an
    idle worker waits for the pool's call to exit."""
    global _stopping
    _stopping = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if _running:
        raise KeyboardInterrupt


class _NamedLines(io.TextIOBase):
    """A text stream that writes whole lines to ``out``, each prefixed with ``[name]``: the output of
    trainings side by side stays readable. Not a TTY, so tqdm draws no progress bars into it."""

    def __init__(self, out: TextIO, name: str) -> None:
        self._out, self._prefix, self._pending = out, f"[{name}] ", ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        if lines:
            self._out.write("".join(f"{self._prefix}{line}\n" for line in lines))
            self._out.flush()
        return len(text)

    def flush(self) -> None:  # a partial line waits for its end: a flush must not split it
        self._out.flush()

    def close(self) -> None:
        if self._pending and not self.closed:
            self.write("\n")
        super().close()


def _run_in_worker(decoded_dir: str, job: Job) -> Path:
    """``run_job`` in a parallel worker, its printed lines named after its run; never started once the
    sweep stopped (a job queued to this worker before the stop would otherwise train to its end)."""
    global _running
    _running = True
    try:
        if _stopping:
            raise KeyboardInterrupt
        with (
            _NamedLines(sys.stdout, str(job.cfg.name)) as out,
            _NamedLines(sys.stderr, str(job.cfg.name)) as err,
            redirect_stdout(out),
            redirect_stderr(err),
        ):
            return run_job(decoded_dir, job)
    finally:
        _running = False


_DECODED: dict[str, DecodedCache] = {}  # decoded folder -> its maps, opened once per process


def _init_worker(threads: int) -> None:
    """A parallel training process: its threads' share of the cores, the allocator left as it is, and
    SIGTERM (the sweep stopping it) ending its training as Ctrl-C would (``_on_stop``).

    ``retain_freed_memory`` (what a lone ``train`` does) keeps the heap at its high-water mark plus
    fragmentation, ~0.4 GB a process at full dims; with N trainings side by side that is N times the
    memory the shared arrays were meant to save, so parallel workers return freed memory instead.
    """
    import torch

    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, _on_stop)


def run_job(
    decoded: DecodedCache | str, job: Job, on_epoch: Callable[[int, dict[str, Any]], None] | None = None
) -> Path:
    """One training over the decoded arrays (an open DecodedCache, or its folder in a worker process)."""
    from train.fit import run_train

    if isinstance(decoded, str):
        decoded = _DECODED.get(decoded) or _DECODED.setdefault(decoded, DecodedCache.open(Path(decoded)))
    source = (
        SplitSource.as_stored(decoded)
        if job.members is None
        else SplitSource(decoded, {s: list(parts) for s, parts in job.members.items()})
    )
    run_dir = run_train(job.cfg, source, on_epoch)
    if is_main_process():  # every torchrun rank trains the job; two writers of one file could tear it
        for name, data in job.extra.items():
            write_json_atomic(run_dir / name, data)
    return run_dir
