"""The fixed-seed fuzz subset that runs with the suite: every kind, damaged bytes and documents.

``make fuzz`` runs the same campaign at >= 5,000 cases per kind (tests/fuzz/run.py).
"""

from __future__ import annotations

import pytest

import fuzz.annotations  # noqa: F401  (registers the annotation kinds)
import fuzz.kinds  # noqa: F401  (registers the kinds)
from fuzz.campaign import Tally, run_bytes, run_documents
from fuzz.registry import KINDS, Prepared, prepare

SEED = 18
BYTE_CASES = 12  # random mutations per kind, after every power-of-two truncation
DOCUMENT_CASES = 20  # Hypothesis documents per textual kind


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """Kind name -> its good sample and undamaged result, made on first use."""
    made: dict[str, Prepared] = {}
    root = tmp_path_factory.mktemp("fuzz")

    def get(name: str) -> Prepared:
        if name not in made:
            made[name] = prepare(KINDS[name], root)
        return made[name]

    return get


def _donor(name: str, prepared) -> bytes:
    """Bytes of another kind's file, for splicing (a PNG for everyone, a JPEG for the PNG)."""
    return prepared("JPEG frame" if name == "PNG frame" else "PNG frame").pristine


@pytest.mark.parametrize("name", sorted(KINDS))
def test_damaged_input_works_or_is_refused_in_one_line(name, prepared):
    prep = prepared(name)
    tally = Tally(name)
    run_bytes(prep, _donor(name, prepared), SEED, BYTE_CASES, tally)
    run_documents(prep, SEED, DOCUMENT_CASES, tally)
    assert not tally.violations, "\n".join(tally.violations)
    assert tally.outcomes["refused"] > 0  # the damage reached the product's checks
