"""Batched frozen-encoder forward passes that turn frames into every stored per-frame stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from cache.schema import FLOAT, FieldSpec
from extract.streams import FrameBatch, StreamOptions, active_streams, stream_fields
from models.encoders import Encoder


def _micro_batches(x: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    yield from x.split(size) if size > 0 else (x,)


def _concat(outs: list) -> object:
    """Concatenate per-micro-batch outputs: tensors, or NamedTuples of tensors."""
    first = outs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(outs)
    # DinoOutput / HandOutput are NamedTuples of tensors.
    return type(first)(*(torch.cat(parts) for parts in zip(*outs, strict=True)))


def default_micro_batch(device: torch.device) -> dict[str, int]:
    """Frames per encoder call. On CPU, mid-size batches cost the least CPU per frame: one image leaves
    a ViT's matmuls too small (197 tokens) to reach the matmul peak, while a batch of 64 outgrows the
    caches. bench/sweep.py on the 2-core EPYC, CPU ms per frame at the chosen size vs 64 frames per
    call (hands: vs 8): YOLOv8x 1 (3024 vs 3238), ViT 16 (416 vs 465), ResNeXt 8 (125 vs 174),
    DINO 8 (123 vs 157), SwAV 8 (115 vs 151). On CUDA the best batch of each encoder alone
    (bench/device.sh on an H100, bf16, images/s at the chosen size vs a batch of 8): YOLOv8x 128 (740 vs
    473), ViT 256 (7852 vs 969), ResNeXt 256 (10498 vs 918), DINO 256 (16551 vs 1605), SwAV 256 (12653 vs
    1134).
    """
    if device.type == "cpu":
        return {"hands": 1, "vit": 16, "cnn": 8, "dino": 8, "swav": 8}
    return {"hands": 128, "cnn": 256, "vit": 256, "dino": 256, "swav": 256}


DEFAULT_MICRO_BATCH = {"cpu": 8, "cuda": 256}  # roles without a measured size


@contextmanager
def encoder_context(device: torch.device, cudnn_benchmark: bool = True) -> Iterator[None]:
    """How the frozen encoders run on ``device``: on CUDA under bf16 autocast, and with cuDNN timing its
    convolution algorithms once per input shape and keeping the fastest (extraction feeds the same few
    shapes batch after batch, the case that search is for; left off, cuDNN picks by heuristics). The
    flag is process-global, so it is set for the call and restored after. On CPU: nothing changes."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    finally:
        torch.backends.cudnn.benchmark = previous


class FrameEncoder:
    """Runs the registered streams whose encoders are given over a batch of frames from many sequences.

    A stream runs when every role it declares has an encoder here (``--encoders hands=none`` leaves the
    hands stream out), after the streams it needs; ``only`` (stream names, with what they need) narrows
    that further. ``forward_calls`` counts encoder invocations, so tests
    (and logs) can prove a reused cache ran none. ``timings``: set it to a dict and every call adds wall
    seconds per stage into it ("preprocess", "crops", "outputs" and one entry per encoder role), which is
    how bench/extract.py splits the time up. Left at None it costs nothing: no clock is read and, on CUDA,
    nothing is synchronised.
    """

    def __init__(
        self,
        encoders: dict[str, Encoder],
        device: torch.device,
        options: StreamOptions | None = None,
        micro_batch: dict[str, int] | None = None,
        compile: bool = False,
        only: set[str] | None = None,
    ) -> None:
        self.options = options or StreamOptions()
        self.streams = active_streams(
            {role: enc.name or role for role, enc in encoders.items()}, self.options
        )
        if only is not None:  # a few fields asked for (show): a stream with no encoder would run anyway
            self.streams = [s for s in self.streams if s.name in only]
        used = {role for s in self.streams for role in s.roles}
        self.encoders = {role: enc.to(device) for role, enc in encoders.items() if role in used}
        if compile:
            from extract.device_path import compile_backbone

            self._calls = {role: compile_backbone(enc) for role, enc in self.encoders.items()}
        else:
            self._calls = dict(self.encoders)
        self.device = device
        self.micro_batch = {**default_micro_batch(device), **(micro_batch or {})}
        self.fields: tuple[FieldSpec, ...] = stream_fields(self.streams, self.encoders, self.options)
        self.forward_calls = 0
        self.timings: dict[str, float] | None = None

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Name the block for torch.profiler (bench/profile.py splits device time up by it; a range costs
        microseconds when no profiler runs) and add its wall time to ``timings[name]`` when timing is on."""
        with torch.profiler.record_function(name):
            if self.timings is None:
                yield
                return
            start = time.perf_counter()
            try:
                yield
            finally:
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)  # kernels are async: time them, not their launch
                self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def _run(self, role: str, images: torch.Tensor, *extra: torch.Tensor) -> object:
        """(N, 3, H, W) float in [0, 1] -> the encoder's output for all N, in micro-batches.

        ``extra``: (N, ...) per-frame inputs split alongside the images (SAM2's prompts)."""
        enc = self.encoders[role]
        size = self.micro_batch.get(role, DEFAULT_MICRO_BATCH.get(self.device.type, 8))
        outs = []
        parts = (_micro_batches(x, size) for x in (images, *extra))
        for chunk, *rest in zip(*parts, strict=True):
            self.forward_calls += 1
            with self._stage("preprocess"):
                chunk = enc.prepare(chunk)
            with self._stage(role), encoder_context(self.device):
                outs.append(self._calls[role](chunk, *rest))
        return _concat(outs)

    @torch.inference_mode()
    def __call__(
        self,
        frames: torch.Tensor,
        samples: list | None = None,
        sequence_length: int | None = None,
        mirrored: list[bool] | None = None,
        warps: list[Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """(N, S, S, 3) uint8 frames -> per-frame arrays keyed by cache field name.

        ``samples``: (sample, source frame index) of each frame, for streams that store what the sample
        itself carries (annotations); None when the frames come from nowhere in particular.
        ``sequence_length``: the frames are runs of this many per sequence (None: all one sequence).
        ``mirrored``: per frame, whether augmentation flipped it (None: none was); ``warps``: per frame,
        the ``data.warp.Warp`` augmentation distorted it with, or None."""
        with self._stage("preprocess"):
            x = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
            x = x.float().div_(255)  # (N, 3, S, S) in [0, 1]
        return self.encode(x, samples, sequence_length, mirrored, warps)

    @torch.inference_mode()
    def encode(
        self,
        x: torch.Tensor,
        samples: list | None = None,
        sequence_length: int | None = None,
        mirrored: list[bool] | None = None,
        warps: list[Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """(N, 3, S, S) float frames in [0, 1], already on the device (the device data path) -> arrays."""
        batch = FrameBatch(
            x,
            {},
            self.encoders,
            self.options,
            self._run,
            self._stage,
            samples,
            sequence_length,
            mirrored,
            warps,
        )
        for stream in self.streams:
            batch.outputs.update(stream.run(batch))
        with self._stage("outputs"):
            return {f.name: _to_numpy(batch.outputs[f.name], f) for f in self.fields}


def _to_numpy(value: torch.Tensor, spec: FieldSpec) -> np.ndarray:
    """Float fields leave as float32 (the record rounds them to the storage dtype); others in their dtype."""
    if spec.dtype == FLOAT:
        return value.float().cpu().numpy()
    return value.cpu().numpy().astype(spec.dtype)
