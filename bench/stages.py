"""Stage clocks around the real extraction run, added from outside for one benchmark run.

``extract.run.run`` stays untouched: for the duration of the ``with`` block this patches the names it
looks up at call time (the plan, the decode workers' DataLoader, the shard writer, split assembly, the encoder
factory) with timed wrappers, and hands it prebuilt encoders, so all modes of one benchmark run the
very same modules and the model build is not billed to the pipeline. Decode and augment run in the
DataLoader workers; their seconds come back inside each item (``item["seconds"]``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest.mock import patch

from torch.utils.data import DataLoader

import extract.run as extract_run
import extract.source as extract_source
from extract.encode import FrameEncoder
from models.encoders import Encoder


def _add(timings: dict[str, float], stage: str, seconds: float) -> None:
    timings[stage] = timings.get(stage, 0.0) + seconds


def _timed(fn: Callable[..., Any], stage: str, timings: dict[str, float]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(timings, stage, time.perf_counter() - start)

    return wrapper


def _timed_loader(timings: dict[str, float]) -> type[DataLoader]:
    class TimedLoader(DataLoader):
        """Clocks how long the main process waits for each batch; the first wait also holds worker
        start-up. Collects the workers' own decode/augment seconds from the items."""

        def __iter__(self) -> Iterator[Any]:
            start = time.perf_counter()
            batches = super().__iter__()  # starts the workers
            stage = "data_wait_first_batch"
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                finally:
                    _add(timings, stage, time.perf_counter() - start)
                stage = "data_wait"
                for item in batch:
                    for name, seconds in item.get("seconds", {}).items():
                        _add(timings, name, seconds)  # "decode", "augment": worker seconds
                yield batch
                start = time.perf_counter()  # after the consumer's work: only waits are billed

    return TimedLoader


@contextmanager
def instrumented_run(
    encoders: dict[str, Encoder], timings: dict[str, float], encoder_clocks: bool = True
) -> Iterator[None]:
    """While active, ``extract.run.run`` uses ``encoders`` and adds stage seconds into ``timings``.

    ``encoder_clocks=False`` leaves the per-encoder clocks out: on CUDA each one synchronises the device,
    which would serialise the copies and kernels the run overlaps (the host-side stages stay timed)."""

    def frame_encoder(*args: Any, **kwargs: Any) -> FrameEncoder:
        built = FrameEncoder(*args, **kwargs)
        if encoder_clocks:
            built.timings = timings
        return built

    with ExitStack() as stack:
        stack.enter_context(patch.object(extract_run, "build_encoders", lambda cfg: encoders))
        stack.enter_context(patch.object(extract_run, "FrameEncoder", frame_encoder))
        stack.enter_context(patch.object(extract_source, "DataLoader", _timed_loader(timings)))
        for name, stage in (
            ("make_plan", "plan"),
            ("_write_shard", "write"),
            ("assemble_splits", "assemble"),
        ):
            stack.enter_context(
                patch.object(extract_run, name, _timed(getattr(extract_run, name), stage, timings))
            )
        yield
