"""The annotations stream: what a corpus itself annotates per frame (HaGRID's hand boxes and landmarks).

Runs no encoder. It is active when the dataset's format ships annotations (``Format.annotation_fields``)
and stores them under their own names beside YOLO's detections, so a head or an analysis can compare the
two. Annotations describe the original image: a flipped augmented copy carries them mirrored
(``Format.mirror_annotations``) and a distorted one moved as its pixels were (``Format.warp_annotations``,
data/warp.py), so they stay on the hands its pixels show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cache.schema import FieldSpec

from .base import FrameBatch, Stream, StreamOptions, register_stream


def _format(options: StreamOptions) -> Any:
    from data.formats import format_class

    return format_class(options.annotations)


@register_stream
class Annotations(Stream):
    name = "annotations"
    models = {}
    from_samples = True

    def active(self, options: StreamOptions) -> bool:
        return bool(options.annotations) and bool(_format(options).annotation_fields())

    def key(self, options: StreamOptions) -> dict[str, Any]:
        return {"format": options.annotations, "augmented_copies": "mirrored and warped"}

    def fields(self, encoders: Mapping[str, Any], options: StreamOptions) -> tuple[FieldSpec, ...]:
        return tuple(
            FieldSpec(name, tuple(shape), dtype, bounds=bounds)
            for name, shape, dtype, bounds in _format(options).annotation_fields()
        )

    def run(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        fmt = _format(batch.options)
        n = batch.frames.shape[0]
        samples = batch.samples or [(None, 0)] * n  # predict's inputs carry no annotations: fill values
        mirrored, warps = batch.flips(), batch.distortions()
        out: dict[str, list[np.ndarray]] = {}
        for name, shape, dtype, _ in fmt.annotation_fields():
            out[name] = [np.zeros(shape, dtype)] * n
        for i, (sample, frame) in enumerate(samples):
            if sample is not None and getattr(sample, "annotations", None) is not None:
                arrays = fmt.annotation_arrays(sample, frame)
                if mirrored[i]:
                    arrays = fmt.mirror_annotations(arrays)
                if warps[i] is not None:  # the distortion comes after the flip (data/augment.py)
                    arrays = fmt.warp_annotations(arrays, warps[i])
                for name, value in arrays.items():
                    out[name][i] = value
        return {name: torch.from_numpy(np.stack(values)) for name, values in out.items()}  # (N, *shape)
