"""Batched frozen-encoder forward passes that turn frames into every stored per-frame stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import numpy as np
import torch

from extract.channels import assemble_channels
from extract.crops import attention_box, crop_resize, hand_views, split_halves
from models.encoders import DinoOutput, Encoder, HandOutput

ROLES = ("cnn", "vit", "dino", "swav", "hands")


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
    DINO 8 (123 vs 157), SwAV 8 (115 vs 151). On CUDA, large batches fill the device (not measured).
    """
    if device.type == "cpu":
        return {"hands": 1, "vit": 16, "cnn": 8, "dino": 8, "swav": 8}
    return {"hands": 8, "cnn": 96, "vit": 96, "dino": 96, "swav": 96}


class FrameEncoder:
    """Runs the five encoders over a batch of frames from many sequences at once.

    ``forward_calls`` counts encoder invocations, so tests (and logs) can prove a reused cache ran none.
    ``timings``: set it to a dict and every call adds wall seconds per stage into it ("preprocess",
    "crops", "outputs" and one entry per encoder role), which is how bench/extract.py splits the time
    up. Left at None it costs nothing: no clock is read and, on CUDA, nothing is synchronised.
    """

    def __init__(
        self,
        encoders: dict[str, Encoder],
        device: torch.device,
        crop_mode: str = "halves",
        attention_mass: float = 0.6,
        crop_margin: float = 0.1,
        micro_batch: dict[str, int] | None = None,
    ) -> None:
        missing = set(ROLES) - set(encoders)
        if missing:
            raise ValueError(f"missing encoder roles: {sorted(missing)}")
        self.encoders = {role: enc.to(device) for role, enc in encoders.items()}
        self.device = device
        self.crop_mode = crop_mode
        self.attention_mass = attention_mass
        self.crop_margin = crop_margin
        self.micro_batch = {**default_micro_batch(device), **(micro_batch or {})}
        self.forward_calls = 0
        self.timings: dict[str, float] | None = None

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to ``timings[name]`` when timing is on."""
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

    def _autocast(self) -> AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _run(self, role: str, images: torch.Tensor) -> object:
        """(N, 3, H, W) float in [0, 1] -> the encoder's output for all N, in micro-batches."""
        enc = self.encoders[role]
        outs = []
        for chunk in _micro_batches(images, self.micro_batch[role]):
            self.forward_calls += 1
            with self._stage("preprocess"):
                chunk = enc.prepare(chunk)
            with self._stage(role), self._autocast():
                outs.append(enc(chunk))
        return _concat(outs)

    def _views(self, x: torch.Tensor, hands) -> dict[str, torch.Tensor]:
        if self.crop_mode == "halves":
            left, right = split_halves(x)
        else:
            left_box, right_box, _ = hand_views(hands.boxes, hands.count)
            size = tuple(self.encoders["vit"].preprocess.input_size)
            left, right = crop_resize(x, left_box, size), crop_resize(x, right_box, size)
        return {"left": left, "right": right, "whole": x}

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor) -> dict[str, np.ndarray]:
        """(N, S, S, 3) uint8 frames -> per-frame arrays keyed by cache field name."""
        with self._stage("preprocess"):
            x = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
            x = x.float().div_(255)  # (N, 3, S, S) in [0, 1]
        hands = self._run("hands", x)
        with self._stage("crops"):
            views = self._views(x, hands)
        vit = {name: self._run("vit", v).float() for name, v in views.items()}  # (N, D) each
        cnn = {name: self._run("cnn", v).float() for name, v in views.items()}  # (N, C) each
        dino = self._run("dino", x)
        with self._stage("crops"):
            boxes = attention_box(dino.attention, self.attention_mass, self.crop_margin)  # (N, 4)
            crops = crop_resize(x, boxes, tuple(self.encoders["swav"].preprocess.input_size))
        swav = self._run("swav", crops)
        with self._stage("outputs"):
            return self._outputs(vit, cnn, dino, boxes, swav, hands)

    @staticmethod
    def _outputs(
        vit: dict[str, torch.Tensor],
        cnn: dict[str, torch.Tensor],
        dino: DinoOutput,
        boxes: torch.Tensor,
        swav: torch.Tensor,
        hands: HandOutput,
    ) -> dict[str, np.ndarray]:
        """Per-frame NumPy arrays keyed by cache field name (the 12-channel block assembled here)."""
        embeddings = assemble_channels(vit, cnn)  # (N, 12, D)
        return {
            "embeddings": embeddings.cpu().numpy(),
            "dino_cls": dino.cls.float().cpu().numpy(),
            "dino_attention": dino.attention.float().cpu().numpy(),
            "swav": swav.float().cpu().numpy(),
            "swav_boxes": boxes.float().cpu().numpy(),
            "hand_boxes": hands.boxes.float().cpu().numpy(),
            "hand_count": hands.count.cpu().numpy().astype(np.uint8),
        }
