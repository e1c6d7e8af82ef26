"""Render RELIABILITY.md from the fault suite's own results.

``REPORT_RELIABILITY=1 .venv/bin/pytest tests/faults`` writes ``artifacts/reliability/results.json``
(rows recorded by tests only after their assertions passed, plus every test's outcome) and this page.
``python tests/faults/report.py RESULTS.json > RELIABILITY.md`` re-renders it from a saved JSON.
``REPORT_RELIABILITY=add pytest tests/faults/test_x.py`` adds (or replaces) only the rows of the tests
that ran, for a partial run. The fuzz section (`make fuzz`, between its markers) is kept either way.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

# Limits the suite documents rather than fixes.
KNOWN_LIMITS = (
    "By default staleness is detected by each frame's size and mtime_ns, not a content hash (hashing "
    "every frame costs about as much I/O as decoding it): a tool that rewrites a frame with the same "
    "size and then restores its mtime is not noticed. `extract --fingerprint content` notices it (BLAKE2b "
    "of the bytes, remembered by path, size, mtime, ctime and inode).",
    "Split assembly copies compressed chunks without decoding them (DESIGN §5), so bit rot inside a "
    "*shard* is copied into the split files; `cache verify` reports it there. Deleting that shard and "
    "the damaged split file makes `extract` recompute it.",
    "Pretrained YOLO weights from the hub are unpickled by ultralytics itself, not with weights_only; "
    "this toolkit's own checkpoints never are.",
    "A full disk is emulated with RLIMIT_FSIZE (the kernel fails real writes with EFBIG) and with "
    "injected ENOSPC/EDQUOT errors, not with a filesystem that really fills up.",
    "Most killed runs are forks of a warm interpreter running `pipeline.main` (the code path of "
    "`python pipeline.py`, minus ~6 s of imports each); one kill per seed, the disk-full shard case, "
    "the lock refusal and a bad-input case use real `python pipeline.py` processes.",
)
_TMP = re.compile(r"/\S*?/pytest-\d+/[^/\s]+")


def _cell(text: Any) -> str:
    """One table cell: temporary paths shortened, pipes escaped, one line."""
    return _TMP.sub("…", str(text)).replace("|", "\\|").replace("\n", " ")


def _detail(details: dict[str, Any]) -> str:
    parts = []
    for key, value in details.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts)


FUZZ_BEGIN, FUZZ_END = "<!-- fuzz:begin -->", "<!-- fuzz:end -->"


def fuzz_section(old_md: str) -> str:
    """The block `make fuzz` wrote into the previous page, to carry over; empty when there is none."""
    if FUZZ_BEGIN not in old_md:
        return ""
    return FUZZ_BEGIN + old_md.split(FUZZ_BEGIN, 1)[1].split(FUZZ_END, 1)[0] + FUZZ_END


def _row_line(row: dict[str, Any]) -> str:
    return f"| {_cell(row['fault'])} | {row['trials']} | {_cell('; '.join(row['held']))} |"


def _note_line(row: dict[str, Any]) -> str:
    return f"- {_cell(row['fault'])} — {_cell(_detail(row['details']))}"


def add_rows(md: str, rows: list[dict[str, Any]]) -> str:
    """``md`` with ``rows`` put into their areas' tables (a row with the same fault is replaced) and
    the known limits re-rendered."""
    lines = md.splitlines()
    for row in rows:
        title = f"## {row['area'][0].upper()}{row['area'][1:]}"
        start = lines.index(title)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        prefix = f"| {_cell(row['fault'])} |"
        old = [i for i in range(start, end) if lines[i].startswith(prefix)]
        if old:
            lines[old[0]] = _row_line(row)
        else:
            last = max(i for i in range(start, end) if lines[i].startswith("| "))
            lines.insert(last + 1, _row_line(row))
            end += 1
            summary = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {_cell(row['area'])} |"))
            _, faults, trials, _ = lines[summary].rsplit("|", 3)
            lines[summary] = f"| {_cell(row['area'])} | {int(faults) + 1} | {int(trials) + row['trials']} |"
        if row.get("details"):
            note = f"- {_cell(row['fault'])} — "
            old_note = [i for i in range(start, end) if lines[i].startswith(note)]
            if old_note:
                lines[old_note[0]] = _note_line(row)
            else:
                last = max(i for i in range(start, end) if lines[i].startswith(("- ", "| ")))
                lines.insert(last + 1, _note_line(row))
    return "\n".join(lines).split("\n\n## Known limits")[0] + "\n" + known_limits()


def render(results: dict[str, Any], fuzz: str = "") -> str:
    env = results["environment"]
    outcomes = results["outcomes"]
    counts: dict[str, int] = defaultdict(int)
    for outcome in outcomes.values():
        counts[outcome] += 1
    by_area: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in results["rows"]:
        by_area[row["area"]].append(row)
    lines = [
        "# Reliability",
        "",
        "<!-- generated by tests/faults/report.py; do not edit by hand, re-run the suite instead -->",
        "",
        "What the pipeline survives, measured by the fault-injection suite in `tests/faults/`. Every row "
        "was written by a test after all of its assertions passed; a failing test writes no row.",
        "",
        f"Generated {results['date']} by `REPORT_RELIABILITY=1 .venv/bin/pytest tests/faults` "
        f"(Python {env['python']}, torch {env['torch']}, h5py {env['h5py']} / HDF5 {env['hdf5']}, "
        f"{env['cpus']} CPUs, uid {env['uid']}). Tests: "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        + f"; {results['suite_seconds']:.0f} s in total.",
        "",
        "| area | faults | trials |",
        "|---|---:|---:|",
    ]
    for area, rows in by_area.items():
        lines.append(f"| {_cell(area)} | {len(rows)} | {sum(r['trials'] for r in rows)} |")
    for area, rows in by_area.items():
        lines += [
            "",
            f"## {area[0].upper()}{area[1:]}",
            "",
            "| fault injected | trials | what held |",
            "|---|---:|---|",
        ]
        notes = []
        for row in rows:
            lines.append(_row_line(row))
            if row.get("details"):
                notes.append(_note_line(row))
        if notes:
            lines += ["", "What the user sees, and where the trials landed:", "", *notes]
    failed = sorted(node for node, outcome in outcomes.items() if outcome != "passed")
    if failed:
        lines += ["", "## Not passing in this run", ""] + [f"- `{node}`: {outcomes[node]}" for node in failed]
    if fuzz:
        lines += ["", fuzz]
    return "\n".join(lines) + "\n" + known_limits()


def known_limits() -> str:
    return "\n".join(["", "## Known limits", ""] + [f"- {text}" for text in KNOWN_LIMITS]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(json.loads(Path(sys.argv[1]).read_text())))
