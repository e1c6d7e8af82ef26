"""Seeded byte mutations of a good file, and Hypothesis strategies for damaged JSON/YAML documents."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

MUTATIONS = ("bit flips", "truncation", "zeroed chunk", "duplicated chunk", "spliced bytes")


def truncations(data: bytes) -> Iterator[bytes]:
    """The file cut at every power of two below its length (and at 0)."""
    yield b""
    n = 1
    while n < len(data):
        yield data[:n]
        n *= 2


def mutate(data: bytes, rng: random.Random, donor: bytes) -> tuple[str, bytes]:
    """One random damage of ``data``: (mutation name, damaged bytes). ``donor`` is another file."""
    how = rng.choice(MUTATIONS)
    buf = bytearray(data)
    n = len(buf)
    if how == "bit flips":
        for _ in range(rng.choice((1, 1, 2, 8, 64))):
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
    elif how == "truncation":
        cuts = list(truncations(data))
        return how, cuts[rng.randrange(len(cuts))]
    else:
        size = min(n, rng.choice((1, 4, 16, 64, 512, 4096)))
        start = rng.randrange(n - size + 1)
        if how == "zeroed chunk":
            buf[start : start + size] = bytes(size)
        elif how == "duplicated chunk":
            at = rng.randrange(n + 1)
            buf[at:at] = buf[start : start + size]
        else:  # spliced from another file, over the same span
            src = rng.randrange(max(1, len(donor) - size + 1))
            buf[start : start + size] = donor[src : src + size]
    return how, bytes(buf)


def byte_cases(data: bytes, donor: bytes, seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """Every truncation first (they are few), then ``count`` seeded random mutations."""
    for cut in truncations(data):
        yield "truncation", cut
    rng = random.Random(seed)
    for _ in range(count):
        yield mutate(data, rng, donor)


# ---------------------------------------------------------------- documents with wrong content

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "✋ wävé", "\x00", "../../etc", "a" * 300, "1e999", "nan", "0x10"]),
)
VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    doc = doc.copy()
    head, rest = path[0], path[1:]
    if delete and not rest:
        doc.pop(head)
    elif not rest:
        doc[head] = value
    else:
        doc[head] = _set(doc[head], rest, value, delete)
    return doc


@st.composite
def damaged_documents(draw, good: Any, dump) -> bytes:
    """A structurally valid document with one to three edits, or raw garbage; ``dump`` -> str."""
    choice = draw(st.sampled_from(["edit", "edit", "edit", "duplicate key", "garbage", "empty"]))
    if choice == "garbage":
        return draw(st.binary(max_size=200))
    if choice == "empty":
        return draw(st.sampled_from([b"", b"{}", b"[]", b"null", b"0", b'""', b"\n"]))
    doc = good
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and path:
            doc = _set(doc, path, None, delete=True)
        elif action == "add" and isinstance(_get(doc, path), dict):
            doc = _set(doc, (*path, draw(st.text(max_size=8))), draw(VALUES)) if path else {**doc, "x": 1}
        else:
            doc = _set(doc, path, draw(VALUES))
    text = dump(doc)
    if choice == "duplicate key" and isinstance(doc, dict) and doc:
        key = draw(st.sampled_from(sorted(doc, key=str)))
        extra = json.dumps({str(key): draw(VALUES)}, default=str)[1:-1]
        text = (
            text.replace("{", "{" + extra + ",", 1) if text.lstrip().startswith("{") else f"{extra}\n{text}"
        )
    return text.encode("utf-8", "surrogatepass")


def json_documents(good: bytes):
    """Damaged documents of a good JSON file, dumped as JSON (a strategy: see ``damaged_documents``)."""
    return damaged_documents(json.loads(good), lambda d: json.dumps(d, indent=1, default=str))


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


# ---------------------------------------------------------------- tables with wrong lines and fields

_FIELDS = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "-1",
            "0",
            "1.5",
            "1e999",
            "nan",
            "2147483648",
            "✋ wävé",
            "\x00",
            "\r",
            '"',
            "../../etc",
            "a" * 300,
        ]
    ),
)


@st.composite
def damaged_lines(draw, good: bytes, sep: str) -> bytes:
    """An annotation table (CSV, a list file) with one to three edits of its lines and fields (a field
    replaced, dropped or added; a line dropped, repeated or made up), or raw garbage, or nothing."""
    choice = draw(st.sampled_from(["edit", "edit", "edit", "garbage", "empty"]))
    if choice == "garbage":
        return draw(st.binary(max_size=200))
    if choice == "empty":
        return draw(st.sampled_from([b"", b"\n", sep.encode(), b"\xef\xbb\xbf", b"\n\n\n"]))
    rows = [line.split(sep) for line in good.decode("utf-8").splitlines()] or [[""]]
    for _ in range(draw(st.integers(1, 3))):
        r = draw(st.integers(0, len(rows) - 1))
        row = list(rows[r])
        action = draw(st.sampled_from(["field", "field", "drop field", "add field", "drop", "repeat", "new"]))
        if action == "field":
            row[draw(st.integers(0, len(row) - 1))] = draw(_FIELDS)
        elif action == "drop field" and len(row) > 1:
            row.pop(draw(st.integers(0, len(row) - 1)))
        elif action == "add field":
            row.insert(draw(st.integers(0, len(row))), draw(_FIELDS))
        elif action == "repeat":
            rows.insert(r, row)
        elif action == "new":
            rows.insert(r, [draw(_FIELDS) for _ in range(draw(st.integers(1, 6)))])
            continue
        if action == "drop" and len(rows) > 1:
            rows.pop(r)
        else:
            rows[r] = row
    return ("\n".join(sep.join(row) for row in rows) + "\n").encode("utf-8", "surrogatepass")
