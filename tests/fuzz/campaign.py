"""Run a number of damaged cases of one kind and count what held: shared by the test and `make fuzz`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings

from fuzz.mutate import byte_cases
from fuzz.registry import ALLOWED, Prepared, run_case


@dataclass
class Tally:
    """Outcome counts of one kind, and the first few violations with the damage that caused them."""

    kind: str
    outcomes: Counter = field(default_factory=Counter)
    by_mutation: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.outcomes.values())

    def add(self, mutation: str, outcome: str, detail: str) -> None:
        self.outcomes[outcome] += 1
        self.by_mutation[mutation] += 1
        if outcome not in ALLOWED and sum(f": {outcome}: " in v for v in self.violations) < 3:
            self.violations.append(f"{self.kind} / {mutation}: {outcome}: {detail}")  # 3 of each


def run_bytes(prep: Prepared, donor: bytes, seed: int, count: int, tally: Tally) -> None:
    """Every power-of-two truncation, then ``count`` seeded random byte mutations."""
    for mutation, data in byte_cases(prep.pristine, donor, seed, count):
        case = run_case(prep, data)
        tally.add(mutation, case.outcome, case.detail)


def run_documents(prep: Prepared, seed: int, count: int, tally: Tally) -> None:
    """``count`` Hypothesis-drawn damaged documents (wrong types, missing keys, garbage...)."""
    if prep.kind.text is None or count <= 0:
        return

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=("generate",),
    )
    @given(doc=prep.kind.text(prep.pristine))
    def one(doc: bytes) -> None:
        case = run_case(prep, doc)
        tally.add("document", case.outcome, case.detail)

    one()
