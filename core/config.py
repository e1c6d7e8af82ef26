"""Configs as plain data: the one conversion behind manifests, config.yaml files and checkpoints.

A stage's config is a dataclass (nested dataclasses group options, e.g. ``ExtractConfig.dataset``).
What is written down must be plain (str/int/float/bool/None, lists, str-keyed dicts) so that YAML,
JSON and ``torch.load(weights_only=True)`` all read it back, and flat so that the written
``config.yaml`` is a valid ``--config`` file for the same command.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from core.atomic import write_text_atomic


def to_plain(obj: Any) -> Any:
    """Deep copy as plain types: dicts (str keys), lists, str/int/float/bool/None; Paths → str."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    return str(obj)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Flat, plain dict of a config dataclass: nested dataclasses' fields are lifted to the top."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(config_to_dict(value))
        else:
            out[f.name] = to_plain(value)
    return out


def save_config(cfg: Any, path: Path) -> None:
    """Write the resolved config beside an output (atomically), so ``--config`` can repeat the run."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
