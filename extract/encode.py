"""Batched frozen-encoder forward passes that turn frames into every stored per-frame stream."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch

from extract.channels import assemble_channels
from extract.crops import attention_box, crop_resize, hand_views, split_halves
from models.encoders import Encoder

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


class FrameEncoder:
    """Runs the five encoders over a batch of frames from many sequences at once.

    ``forward_calls`` counts encoder invocations, so tests (and logs) can prove a reused cache ran none.
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
        # YOLO at 640 is fastest in small batches on CPU; the rest like large ones.
        self.micro_batch = {"hands": 8, "cnn": 96, "vit": 96, "dino": 96, "swav": 96, **(micro_batch or {})}
        self.forward_calls = 0

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
            with self._autocast():
                outs.append(enc(enc.prepare(chunk)))
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
        x = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)  # (N, 3, S, S)
        hands = self._run("hands", x)
        views = self._views(x, hands)
        vit = {name: self._run("vit", v).float() for name, v in views.items()}  # (N, D) each
        cnn = {name: self._run("cnn", v).float() for name, v in views.items()}  # (N, C) each
        embeddings = assemble_channels(vit, cnn)  # (N, 12, D)
        dino = self._run("dino", x)
        boxes = attention_box(dino.attention, self.attention_mass, self.crop_margin)  # (N, 4)
        crops = crop_resize(x, boxes, tuple(self.encoders["swav"].preprocess.input_size))
        swav = self._run("swav", crops)
        return {
            "embeddings": embeddings.cpu().numpy(),
            "dino_cls": dino.cls.float().cpu().numpy(),
            "dino_attention": dino.attention.float().cpu().numpy(),
            "swav": swav.float().cpu().numpy(),
            "swav_boxes": boxes.float().cpu().numpy(),
            "hand_boxes": hands.boxes.float().cpu().numpy(),
            "hand_count": hands.count.cpu().numpy().astype(np.uint8),
        }
