"""Derived fields: per-sequence features a head reads that are computed from stored cache fields.

Some inputs are cheap functions of what the cache already holds (the hand-motion track of the stored hand
boxes), so they are computed when the cache is read, once per sequence, instead of being extracted again.
A derivation declares the fields it makes, their per-frame shapes and the stored fields it reads; a head
then lists the derived names in ``reads`` like any cache field. The readers (train/derived.py) compute
them for training, evaluation, the decoded arrays of sweeps, and predict alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Derivation:
    """Fields computed from stored ones.

    ``sources``: alternative tuples of stored fields, the first one the cache holds all of is used.
    ``compute(stored, valid)`` gets that tuple's arrays of one sequence ((T, ...) each) and its valid mask
    (T,), and returns every output as (T, *shape). ``raw``: outputs already on a fixed scale (masks), which
    the model must not standardise.
    """

    outputs: Mapping[str, tuple[int, ...]]
    sources: tuple[tuple[str, ...], ...]
    compute: Callable[[Mapping[str, np.ndarray], np.ndarray], dict[str, np.ndarray]]
    raw: frozenset[str] = frozenset()

    def source(self, stored: Mapping[str, object] | set[str]) -> tuple[str, ...] | None:
        """The first source tuple whose fields are all stored, or None."""
        return next((s for s in self.sources if all(f in stored for f in s)), None)


_DERIVED: list[Derivation] = []


def register_derived(derivation: Derivation) -> Derivation:
    taken = {name for d in _DERIVED for name in d.outputs}
    if taken & set(derivation.outputs):
        raise ValueError(f"derived fields {sorted(taken & set(derivation.outputs))} are registered twice")
    _DERIVED.append(derivation)
    return derivation


def derivation_of(name: str) -> Derivation | None:
    return next((d for d in _DERIVED if name in d.outputs), None)


def derived_shapes(stored: Mapping[str, object]) -> dict[str, tuple[int, ...]]:
    """Per-frame shape of every derived field this cache's stored fields can feed."""
    return {
        name: tuple(shape)
        for d in _DERIVED
        if d.source(stored) is not None
        for name, shape in d.outputs.items()
    }


def raw_fields() -> frozenset[str]:
    """Derived fields the model passes through unstandardised (masks)."""
    return frozenset(name for d in _DERIVED for name in d.raw)
