"""`make fuzz`: the full fuzz campaign, >= 5,000 cases per input kind, as a table.

    PYTHONPATH=tests python -m fuzz.run [--cases 5000] [--seed 18] [--kinds NAME ...]
                                        [--kind-budget-s S] [--hang-s 120]

Byte mutations and (for text kinds) Hypothesis documents share the budget half and half.
``--kind-budget-s`` caps the seconds per kind (each half gets half of it); the table then shows the
cases that ran. Prints the
table, writes ``artifacts/reliability/fuzz.json`` and replaces the fuzz section of RELIABILITY.md.
A case that runs past ``--hang-s`` is a hang: the runner names it and exits 3 rather than stall.
Exit status 1 when any case broke the property.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import re
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from fuzz import annotations as _annotations  # noqa: E402,F401  (registers the annotation kinds)
from fuzz import kinds as _kinds  # noqa: E402,F401  (registers the kinds)
from fuzz.campaign import Tally, run_bytes, run_documents  # noqa: E402
from fuzz.mutate import MUTATIONS  # noqa: E402
from fuzz.registry import ALLOWED, KINDS, VIOLATIONS, prepare  # noqa: E402

RESULTS = ROOT / "artifacts" / "reliability" / "fuzz.json"
REPORT = ROOT / "RELIABILITY.md"
BEGIN, END = "<!-- fuzz:begin -->", "<!-- fuzz:end -->"


class Watchdog:
    """Exit 3, naming the kind, when one case runs longer than ``limit`` seconds."""

    def __init__(self, limit: float) -> None:
        self.limit, self.kind, self.tally, self.since = limit, "", None, time.monotonic()
        threading.Thread(target=self._watch, daemon=True).start()

    def tick(self, kind: str, tally: Tally) -> None:
        self.kind, self.tally, self.since = kind, tally, time.monotonic()

    def _watch(self) -> None:
        while True:
            time.sleep(1)
            cases = self.tally.cases if self.tally else 0
            if time.monotonic() - self.since > self.limit:
                print(f"HANG: {self.kind}, case {cases + 1}, ran past {self.limit:g} s", file=sys.stderr)
                faulthandler.dump_traceback(all_threads=True)
                os._exit(3)


def render(rows: list[dict], meta: dict) -> str:
    """The RELIABILITY.md section: one row per kind, outcomes and violations counted."""
    lines = [
        BEGIN,
        "## Fuzzing",
        "",
        f"Generated {meta['date']} by `{meta['command']}` (up to {meta['cases_per_kind']} random cases "
        f"per kind plus every power-of-two truncation{meta['budget']}, seed {meta['seed']}; "
        f"Python {meta['python']}, {meta['cpus']} CPUs; {meta['seconds']:.0f} s). "
        f"Damage: {', '.join(MUTATIONS)}; for text kinds also Hypothesis "
        "documents (wrong types, missing, added and duplicated keys, huge numbers, unicode, empty values, "
        "garbage). Property: the product reads the same as from the undamaged file, reads something else "
        "only where the format has no integrity check of its own, or refuses with one line (or `cache "
        "verify` faults) naming the file; never a traceback, never a hang, never damaged data read as good.",
        "",
        "| input kind | cases | same | changed | refused | traceback | bad error line | damaged data "
        "accepted |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        o = r["outcomes"]
        cells = [str(o.get(k, 0)) for k in (*ALLOWED, *VIOLATIONS)]
        lines.append(f"| {r['kind']} | {r['cases']} | " + " | ".join(cells) + " |")
    bad = [v for r in rows for v in r["violations"]]
    lines += ["", "Hangs: 0 (a case past the limit stops the run with exit 3)."]
    if meta.get("rerun"):
        lines += ["", f"Rows re-run after a fix: {meta['rerun']}."]
    if bad:
        lines += ["", "Violations (up to 3 of each kind and outcome):", ""] + [f"- {_short(v)}" for v in bad]
    lines.append(END)
    return "\n".join(lines)


def _short(violation: str) -> str:
    """One line: kind / damage: outcome, and for a traceback its exception and innermost product frame."""
    violation = re.sub(r"(?:/[\w.+-]+)+/", "…/", violation)  # no paths of the machine that ran it
    lines = [ln.strip() for ln in violation.splitlines() if ln.strip()]
    if ": traceback:" not in lines[0]:
        return lines[0][:300]
    frames = [
        ln for ln in lines if ln.startswith("File ") and "/tests/" not in ln and "site-packages" not in ln
    ]
    where = frames[-1].split("/")[-1] if frames else ""
    return f"{lines[0].split(' Traceback')[0]} {lines[-1][:200]} ({where})"


def splice(section: str) -> None:
    """Replace the fuzz section of RELIABILITY.md, or put it before the known limits."""
    text = REPORT.read_text()
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        head, sep, tail = text.partition("\n## Known limits")
        text = head.rstrip("\n") + "\n\n" + section + "\n" + sep + tail
    REPORT.write_text(text)


def _cap_memory(gb: float) -> None:
    """Cap the address space at its size now plus ``gb``: a case that would allocate without bound (a
    damaged extent of 2**60 rows) then ends as a MemoryError traceback, a violation in the table, instead
    of the kernel's OOM killer ending the whole run and whatever else shares the machine."""
    if gb <= 0:
        return
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + int(gb * 2**30), hard))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=5000, help="cases per input kind (default 5000)")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--kinds", nargs="*", default=None, help="only these kinds (default: all)")
    ap.add_argument("--hang-s", type=float, default=120.0, help="seconds one case may take")
    ap.add_argument("--kind-budget-s", type=float, default=None, help="stop a kind after this many s")
    ap.add_argument("--no-report", action="store_true", help="do not touch RELIABILITY.md")
    ap.add_argument("--memory-gb", type=float, default=8.0, help="address space a case may add (GB)")
    args = ap.parse_args()
    names = args.kinds or sorted(KINDS)
    _cap_memory(args.memory_gb)
    dog = Watchdog(args.hang_s)
    started = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        donors = {n: prepare(KINDS[n], Path(tmp)).pristine for n in ("PNG frame", "JPEG frame")}
        for name in names:
            prep = prepare(KINDS[name], Path(tmp))
            tally = Tally(name)
            dog.tick(name, tally)
            docs = args.cases // 2 if prep.kind.text else 0
            donor = donors["JPEG frame" if name == "PNG frame" else "PNG frame"]
            t0 = time.monotonic()
            half = None if args.kind_budget_s is None else args.kind_budget_s / (2 if docs else 1)
            try:
                run_bytes(prep, donor, args.seed, args.cases - docs, _Ticking(tally, dog, name, half))
            except _OutOfTime:
                pass
            try:
                run_documents(prep, args.seed, docs, _Ticking(tally, dog, name, half))
            except _OutOfTime:
                pass
            rows.append(
                {
                    "kind": name,
                    "cases": tally.cases,
                    "outcomes": dict(tally.outcomes),
                    "mutations": dict(tally.by_mutation),
                    "violations": tally.violations,
                    "seconds": round(time.monotonic() - t0, 1),
                }
            )
            print(f"{name}: {tally.cases} cases, {dict(tally.outcomes)}", file=sys.stderr, flush=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "seed": args.seed,
        "cases_per_kind": args.cases,
        "command": ("PYTHONPATH=tests python -m fuzz.run " + " ".join(sys.argv[1:]))
        if sys.argv[1:]
        else "make fuzz",
        "budget": "" if args.kind_budget_s is None else f", at most {args.kind_budget_s:g} s per kind",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "seconds": time.monotonic() - started,
    }
    if args.kinds is not None and RESULTS.exists():  # a partial rerun replaces its kinds' rows only
        old = json.loads(RESULTS.read_text())
        rerun = {r["kind"]: r for r in rows}
        rows = [rerun.pop(r["kind"], r) for r in old["rows"]] + list(rerun.values())
        meta = {
            **old["meta"],
            "rerun": f"{', '.join(args.kinds)} re-run {meta['date']} ({meta['seconds']:.0f} s)",
        }
    section = render(rows, meta)
    print(section)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    if not args.no_report:
        splice(section)
    return 1 if any(r["violations"] for r in rows) else 0


class _OutOfTime(Exception):
    """This half of a kind's time budget is spent."""


class _Ticking(Tally):
    """A Tally view that resets the hang watchdog on every case and enforces the time budget."""

    def __init__(self, inner: Tally, dog: Watchdog, kind: str, budget: float | None) -> None:
        deadline = None if budget is None else time.monotonic() + budget
        self.__dict__.update(inner=inner, dog=dog, kind_name=kind, deadline=deadline)

    def add(self, mutation: str, outcome: str, detail: str) -> None:
        self.inner.add(mutation, outcome, detail)
        self.dog.tick(self.kind_name, self.inner)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _OutOfTime


if __name__ == "__main__":
    sys.exit(main())
