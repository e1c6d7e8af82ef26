"""Decoding video files on the GPU (NVDEC) through torchcodec, an optional install: ``--decode gpu|auto``.

Published torchcodec figures show NVDEC paying off only at high resolution (below that, threaded CPU
decoding is as fast and leaves the GPU to the encoders), so ``auto`` picks the GPU only for videos whose
shorter side is 1080 pixels or more, and only when the extraction runs on CUDA with torchcodec
installed. Frame folders are always decoded on the CPU.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np

from core.errors import DeviceUnavailableError

Decode = Literal["auto", "cpu", "gpu"]
INSTALL = 'pip install ".[gpu-decode]"'
# The shorter side from which ``auto`` decodes on the GPU: 1080p (landscape or portrait) and above.
GPU_MIN_SIDE = 1080


def torchcodec_installed() -> bool:
    return importlib.util.find_spec("torchcodec") is not None


def check_decode(choice: str, device_type: str, cuda: bool, torchcodec: bool) -> None:
    """Refuse ``--decode gpu`` where it cannot run, in one line that says what to install or change."""
    if choice != "gpu":
        return
    if device_type != "cuda" or not cuda:
        raise DeviceUnavailableError(
            "--decode gpu needs a CUDA GPU and --device cuda; use --decode cpu (or auto) on this machine"
        )
    if not torchcodec:
        raise DeviceUnavailableError(f"--decode gpu needs torchcodec: install it with {INSTALL}")


def use_gpu(choice: str, width: int, height: int, cuda: bool, torchcodec: bool) -> bool:
    """Whether a video of ``width`` x ``height`` is decoded on the GPU under ``--decode choice``.

    ``cuda`` means the extraction itself runs on CUDA (``check_decode`` vetted ``gpu`` before)."""
    if choice == "gpu":
        return True
    return choice == "auto" and cuda and torchcodec and min(width, height) >= GPU_MIN_SIDE


def read_video_gpu(path: Path, wanted: list[int], device: str = "cuda") -> dict[int, np.ndarray]:
    """Frames ``wanted`` (sorted unique source indices) of ``path``, each (H, W, 3) uint8 RGB upright, decoded
    by NVDEC (``device="cpu"``: torchcodec's CPU decoder) and handed back through host memory (the decode
    workers run in other processes).

    torchcodec (>= 0.17, requirements-gpu-decode.txt) applies a phone video's display matrix itself, on its
    CPU decoder and on its default ``nvdec`` CUDA backend, as data/video.py does for PyAV's frames; turning
    them again here would put them on their side (tests/test_gpu_decode.py checks against PyAV)."""
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), device=device, dimension_order="NHWC")
    host = decoder.get_frames_at(indices=list(wanted)).data.cpu().numpy()  # (N, H, W, 3) uint8
    return {int(i): np.ascontiguousarray(host[k]) for k, i in enumerate(wanted)}


def resolve_decode(choice: str, device_type: str) -> str:
    """``--decode`` as the decode workers apply it: ``cpu``, ``gpu``, or ``auto`` (per video, by size)
    when the GPU decoder is usable here, else ``cpu``. Refuses ``gpu`` where it cannot run."""
    import torch

    cuda = device_type == "cuda" and torch.cuda.is_available()
    torchcodec = torchcodec_installed()
    check_decode(choice, device_type, cuda, torchcodec)
    if choice == "auto" and not (cuda and torchcodec):
        return "cpu"
    return choice
