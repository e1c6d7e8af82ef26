"""The fuzz harness: one registration per input kind, one property for all of them.

A kind names a file the product reads, how to write a good one (``make``), and how the product
consumes it in-process (``consume``: the same functions the CLI calls, returning a comparable
summary of what it read). Every damaged case must end in one of the allowed outcomes:

- ``same``: it worked and read what the undamaged file gives;
- ``changed``: it worked and read something else, allowed only for kinds that carry no integrity
  check of their own (an image decodes to other pixels, a YAML to other values);
- ``refused``: a one-line ``UserError`` (the CLI's exit 2) naming the file, or faults from
  ``cache verify`` naming it.

Anything else is a violation: a traceback (any other exception), an error that spans lines or
does not name the file, or damaged data read as good (``changed`` where the kind forbids it, e.g. a
cache that ``verify`` calls clean while it holds other bytes). A hang is caught by the runner.
Adding a kind (an annotation format, say) is one ``@fuzz_kind`` function in its own module.
"""

from __future__ import annotations

import re
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError

ALLOWED = ("same", "changed", "refused")
VIOLATIONS = ("traceback", "bad error line", "damaged data accepted")


class Refused(Exception):
    """Raised by a ``consume`` that got fault lines instead of an exception (``cache verify``)."""


@dataclass
class Sample:
    """A good input written by ``make``: the file to damage, and the folder it lives in."""

    path: Path
    folder: Path
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class FuzzKind:
    name: str
    make: Callable[[Path], Sample]
    consume: Callable[[Sample], Any]
    changed_ok: bool  # may a damaged file legitimately read as something else?
    text: Callable[[bytes], Any] | None = None  # good bytes -> Hypothesis strategy of damaged documents


KINDS: dict[str, FuzzKind] = {}


def fuzz_kind(name: str, *, changed_ok: bool, make: Callable[[Path], Sample], text=None):
    """Register ``consume`` as the product's reader of kind ``name``."""

    def register(consume: Callable[[Sample], Any]) -> Callable[[Sample], Any]:
        KINDS[name] = FuzzKind(name, make, consume, changed_ok, text)
        return consume

    return register


@dataclass
class Prepared:
    """A kind with its good sample, a pristine copy of its folder, and the undamaged result."""

    kind: FuzzKind
    sample: Sample
    pristine: bytes
    baseline: Any


def prepare(kind: FuzzKind, workdir: Path) -> Prepared:
    sample = kind.make(workdir / kind.name.replace("/", "_").replace(" ", "_"))
    pristine = sample.path.read_bytes()
    return Prepared(kind, sample, pristine, _consume(kind, sample))


def _consume(kind: FuzzKind, sample: Sample) -> Any:
    import cache.watchdog

    cache.watchdog._walked.clear()  # a rewrite can keep size and mtime_ns: walk every case afresh
    return kind.consume(sample)


@dataclass
class Case:
    outcome: str
    detail: str = ""


def run_case(prep: Prepared, damaged: bytes) -> Case:
    """Write ``damaged`` over the sample, let the product read it, classify, restore the sample."""
    path = prep.sample.path
    path.write_bytes(damaged)
    try:
        try:
            result = _consume(prep.kind, prep.sample)
        except (UserError, Refused) as exc:
            return _refused(str(exc), path)
        except Exception:  # noqa: BLE001  anything else is what the suite hunts
            return Case("traceback", traceback.format_exc(limit=-3))
        if result == prep.baseline:
            return Case("same")
        if prep.kind.changed_ok:
            return Case("changed")
        return Case("damaged data accepted", _difference(result, prep.baseline))
    finally:
        _restore(prep)


_FAULT_LINE = re.compile(r"^(\S+/)?[\w.-]+\.(h5|json)(/\S+\.h5)?: ")


def _difference(got: Any, want: Any) -> str:
    if isinstance(got, dict) and isinstance(want, dict):
        keys = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        return f"read other values for {keys}"
    return f"read {str(got)[:120]} instead of {str(want)[:120]}"


def _refused(message: str, path: Path) -> Case:
    lines = [ln for ln in message.splitlines() if ln.strip()]
    if message.startswith("FAULTS\n"):  # `cache verify`: one line per fault, each naming its file
        unnamed = [ln for ln in lines[1:] if not _FAULT_LINE.match(ln)]
        return Case("bad error line", f"fault names no file: {unnamed[0]}") if unnamed else Case("refused")
    if len(lines) != 1:
        return Case("bad error line", f"{len(lines)} lines: {message[:300]}")
    if path.name not in message:
        return Case("bad error line", f"does not name {path.name}: {message[:300]}")
    return Case("refused")


def _restore(prep: Prepared) -> None:
    prep.sample.path.write_bytes(prep.pristine)
    for extra in prep.sample.context.get("scratch", ()):  # what a consume may leave behind
        p = Path(extra)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
