"""The one ``--device`` resolver, shared by extract, train, evaluate and predict.

Choices: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` and ``cuda:N``. Under torchrun
each rank drives its own GPU, so ``auto``/``cuda`` become ``cuda:LOCAL_RANK`` there; an explicit
index is kept as given in a single process.
"""

from __future__ import annotations

import re

import torch

from core.errors import DeviceUnavailableError
from core.ranks import Ranks

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(choice: str, ranks: Ranks | None = None) -> torch.device:
    """``choice`` as a torch device; a device that is not there is a one-line user error."""
    choice = choice.strip().lower()
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(choice)
    if match is None:
        raise DeviceUnavailableError(f"unknown --device {choice!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"--device {choice} was asked for, but no CUDA GPU is visible; use --device cpu"
        )
    distributed = ranks is not None and ranks.distributed
    if match.group(1) is None:
        return torch.device("cuda", ranks.local_rank) if distributed else torch.device("cuda")
    if distributed:
        raise DeviceUnavailableError(
            f"--device {choice} under torchrun: each rank uses cuda:LOCAL_RANK; pass --device cuda "
            "(pick GPUs with CUDA_VISIBLE_DEVICES)"
        )
    index, count = int(match.group(1)), torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailableError(
            f"--device {choice}: only {count} CUDA device(s) are visible (cuda:0..cuda:{count - 1})"
        )
    return torch.device("cuda", index)
