"""Derived fields (models/heads/derived.py) where training, evaluation, sweeps and predict read sequences.

Every reader asks for the fields a model reads; a derived one is replaced by the stored fields it is
computed from (``stored_fields``), and computed from them once per sequence: memoised per item by
``DerivedDataset`` (train, evaluate), written once into the decoded arrays (sweeps, folds, tune:
``derive_arrays``), or computed for each predicted input (``add_derived``). One function makes them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from models.heads.derived import Derivation, derivation_of


def _derivations(fields: tuple[str, ...]) -> list[Derivation]:
    found: list[Derivation] = []
    for name in fields:
        d = derivation_of(name)
        if d is not None and d not in found:
            found.append(d)
    return found


def stored_fields(fields: tuple[str, ...], stored: Mapping[str, Any] | set[str]) -> tuple[str, ...]:
    """``fields`` with each derived one replaced by the stored fields this cache computes it from."""
    out: list[str] = []
    for name in fields:
        d = derivation_of(name)
        if d is None:
            out.append(name)
            continue
        source = d.source(stored)
        if source is None:
            wanted = " or ".join("+".join(s) for s in d.sources)
            raise ValueError(f"derived field {name!r} needs stored {wanted}, which this cache lacks")
        out.extend(source)
    return tuple(dict.fromkeys(out))


def add_derived(item: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One sequence's arrays (stored fields and "valid") -> the derived ``fields`` it feeds, (T, ...) each."""
    out: dict[str, np.ndarray] = {}
    for d in _derivations(fields):
        source = d.source(item)
        if source is None:
            raise ValueError(f"derived fields {sorted(d.outputs)} need one of {d.sources}")
        stored = {f: np.asarray(item[f]) for f in source}
        made = d.compute(stored, np.asarray(item["valid"]).astype(bool))
        out.update({k: v for k, v in made.items() if k in fields})
    return out


def derive_arrays(arrays: Mapping[str, np.ndarray], fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Whole split arrays ((N, T, ...) stored fields and "valid" (N, T)) -> derived ``fields`` (N, T, ...)."""
    wanted = tuple(f for f in fields if derivation_of(f) is not None)
    if not wanted:
        return {}
    n = len(arrays["valid"])
    per = [add_derived({k: v[i] for k, v in arrays.items()}, wanted) for i in range(n)]
    return {name: np.stack([p[name] for p in per]) if per else np.zeros(0, np.float32) for name in wanted}


class DerivedDataset(Dataset):
    """A reader dataset of the stored fields, with the derived ``fields`` added to every item.

    Each sequence's derived fields are computed on its first read and kept (they are small: a hand track
    is T x 2 x 9 floats), so later epochs pay nothing; the stored fields they came from are dropped.
    """

    def __init__(self, base: Dataset, fields: tuple[str, ...]) -> None:
        self.base, self.fields = base, tuple(fields)
        self._wanted = tuple(f for f in self.fields if derivation_of(f) is not None)
        self._memo: dict[int, dict[str, torch.Tensor]] = {}
        sources = {f for d in _derivations(self._wanted) for s in d.sources for f in s}
        self._drop = sources - set(self.fields)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:  # sequence_ids, labels, class_names, ... of the base
        if name == "base" or name.startswith("__"):  # never the base's __getitems__: it skips the derivation
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self._derive(i, self.base[i])

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """A batch read the way the base reads batches (the reader's inflate pool), then derived."""
        many = getattr(self.base, "__getitems__", None)
        items = many(indices) if many is not None else [self.base[i] for i in indices]
        return [self._derive(i, item) for i, item in zip(indices, items, strict=True)]

    def _derive(self, i: int, item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if i not in self._memo:
            arrays = {k: v.numpy() for k, v in item.items() if isinstance(v, torch.Tensor)}
            made = add_derived(arrays, self._wanted)
            self._memo[i] = {k: torch.from_numpy(v).float() for k, v in made.items()}
        out = {k: v for k, v in item.items() if k not in self._drop}
        out.update(self._memo[i])
        return out


def with_derived(base: Dataset, fields: tuple[str, ...]) -> Dataset:
    """``base`` itself when ``fields`` holds no derived field, else a ``DerivedDataset`` over it."""
    return DerivedDataset(base, fields) if any(derivation_of(f) for f in fields) else base
