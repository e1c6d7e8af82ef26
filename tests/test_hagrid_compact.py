"""HaGRID's annotations packed at parse time (``HagridNotes``) give every cached output byte for byte what
the parsed lists gave: the annotations stream's arrays, the landmark slots, their mirrored and warped
copies, and each sample's cache key; a listing memo holding a parse of plain dicts is parsed again."""

from __future__ import annotations

import json
import math
import pickle
import random
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from corpus_replicas import hagrid

from cache.fingerprint import video_fingerprint
from data.config import DataConfig
from data.formats.hagrid import FIELDS, HaGRID, annotation_arrays, check_entry
from data.formats.hagrid_hands import HagridNotes, NotesPacker, hand_slots
from data.mirror import mirror_hands
from data.sequence import Video
from data.sequences import read_samples
from data.warp import Warp, warp_points

# --- Entries: what check_entry lets through, as json.loads gives it. ---


def _number(rng: random.Random) -> Any:
    """Mostly a float in [0, 1) at full precision, sometimes an edge (ints, bools, -0.0, non-finite, past
    float32's range, near float32 rounding ties)."""
    if rng.random() < 0.9:
        return rng.random()
    return rng.choice(
        [0, 1, True, False, -0.0, 0.5, math.nan, math.inf, -math.inf, 1e300, -1e39, 2**40, 1 + 2**-24, 3e-45]
    )


def _point(rng: random.Random, odd: float) -> Any:
    if rng.random() >= odd:
        return [rng.random(), rng.random()]
    return rng.choice(
        [
            [_number(rng), _number(rng)],
            [rng.random()],  # one number
            [rng.random(), rng.random(), rng.random()],  # x, y, z
            ["0.1", 0.2],
            [None, 0.2],
            None,
            0.3,
            [],
            [[0.1, 0.2]],
            {"x": 0.1},
        ]
    )


def _hand(rng: random.Random, odd: float) -> list:
    count = rng.choice([21, 21, 21, 0, rng.randint(1, 20), rng.randint(22, 25)])
    return [_point(rng, odd) for _ in range(count)]


def _entry(rng: random.Random) -> dict[str, Any]:
    hands = rng.randint(0, 5)
    odd = rng.choice([0.0, 0.0, 0.0, 0.05, 0.5])  # most entries are the regular parse
    label = rng.choice(["call", "like", "two_up"])
    entry: dict[str, Any] = {
        "bboxes": [
            [rng.random() for _ in range(4)] if rng.random() > odd else [_number(rng) for _ in range(4)]
            for _ in range(hands)
        ],
        "labels": [rng.choice([label, label, "no_gesture"]) for _ in range(hands)],
    }
    if rng.random() < 0.8:
        entry["user_id"] = f"{rng.getrandbits(64):016x}"
    marks = [_hand(rng, odd) for _ in range(rng.choice([hands, hands, hands, max(hands - 1, 0), hands + 1]))]
    key = rng.choice(["hand_landmarks", "hand_landmarks", "landmarks", "both", "none", "null"])
    if key == "both":  # v2's wins; v1's is still part of the key
        entry["hand_landmarks"], entry["landmarks"] = marks, [_hand(rng, odd) for _ in range(hands)]
    elif key == "null":  # v2's null: v1's is read
        entry["hand_landmarks"], entry["landmarks"] = None, marks
    elif key != "none":
        entry[key] = marks
    leading = rng.choice(["left", "right", "absent", "absent", None])
    if leading != "absent":
        entry["leading_hand"] = leading
    united = rng.choice(["box", "null", "absent", "odd"])
    if united == "box":
        entry["united_bbox"], entry["united_label"] = [[rng.random() for _ in range(4)]], [label]
    elif united == "null":
        entry["united_bbox"], entry["united_label"] = [None], ["null"]
    elif united == "odd":
        entry["united_bbox"], entry["united_label"] = [[0.1, 1, 0.2, 0.3], None, "x"], [label, 2]
    if rng.random() < 0.3:
        entry["meta"] = {"age": [30], "gender": ["female"]}  # not one of FIELDS: dropped
    return json.loads(json.dumps(entry))  # as parsed: NaN and Infinity round-trip as floats


EDGES: list[dict[str, Any]] = [
    {"bboxes": [], "labels": []},
    {"bboxes": [], "labels": [], "hand_landmarks": []},
    {"bboxes": [[0.1, 0.2, 0.3, 0.4]], "labels": ["call"], "hand_landmarks": [[]]},
    {"bboxes": [[0, 0, 1, 1]], "labels": ["call"], "landmarks": [[[0, 1]] * 21]},  # ints throughout
    {"bboxes": [[0.1, 0.2, 0.3, 0.4]], "labels": ["call"], "hand_landmarks": [[[0.25, 0.5]] * 21]},
    {"bboxes": [[0.1, 0.2, 0.3, 0.4]], "labels": ["call"], "hand_landmarks": [[[1e300, 0.5]] * 21]},
    {"bboxes": [[0.1, 0.2, 0.3, 0.4]], "labels": ["call"], "hand_landmarks": None, "landmarks": None},
    {"bboxes": [[0.1, 0.2, 0.3, 0.4]], "labels": ["call"], "leading_hand": "left"},
    {"bboxes": [[0.1, 0.2, 0.3, 0.4]] * 2, "labels": ["call", "no_gesture"], "leading_hand": "right"},
    {"bboxes": [[True, 0.2, 0.3, 0.4]], "labels": ["no_gesture"], "user_id": ""},
]


def _entries(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    entries = [json.loads(json.dumps(e)) for e in EDGES] + [_entry(rng) for _ in range(count)]
    assert all(check_entry(e) is None for e in entries)  # only what a parse lets through
    return entries


def _kept(entry: dict[str, Any]) -> dict[str, Any]:
    """What the sample carried before packing."""
    return {k: entry[k] for k in FIELDS if k in entry}


def _outcome(make: Any) -> Any:
    """``make()``'s arrays as (name, dtype, shape, bytes), or the error it raised: equal means identical."""
    try:
        out = make()
    except Exception as error:  # noqa: BLE001 - the same error either way counts as the same outcome
        return ("raised", type(error).__name__, str(error))
    arrays = out.items() if isinstance(out, dict) else enumerate(out)
    return [(name, a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes()) for name, a in arrays]


def _warp() -> Warp:
    """A smooth distortion of a 64 x 64 copy, a few pixels at most."""
    rows, cols = np.indices((64, 64), np.float32)
    return Warp(3 * np.sin(rows / 9) * np.cos(cols / 13), 2 * np.cos(rows / 7 + cols / 11))


def _video(image: Path, notes: Any) -> Video:
    return Video("call", 0, "a1", 1, image.parent, frames=(image,), annotations=notes)


def _same(new: Any, old: Any) -> Any:
    """Asserts ``new()`` and ``old()`` have the same outcome (arrays byte for byte, or the same error);
    returns what ``new()`` gave, None where it raised."""
    got, want = _outcome(new), _outcome(old)
    assert got == want
    return None if got and got[0] == "raised" else new()


def _bare(sample: Video, old: dict[str, Any]) -> Video:
    """The sample as it was before packing: its annotation the parsed dict."""
    return replace(sample, annotations=old)


def _same_outputs(sample: Video, old: dict[str, Any], warp: Warp) -> None:
    """Every output a cache is built from, for one sample, as the parsed dict gives it (the readers are
    the same; what they read must read the same)."""
    _same(lambda: annotation_arrays(sample, 2), lambda: annotation_arrays(_bare(sample, old), 2))
    arrays = _same(lambda: HaGRID.annotation_arrays(sample, 0), lambda: annotation_arrays(_bare(sample, old)))
    if arrays is not None:  # and as a flipped and a distorted copy stores them
        want = annotation_arrays(_bare(sample, old))
        _same(lambda: HaGRID.mirror_annotations(arrays), lambda: HaGRID.mirror_annotations(want))
        _same(lambda: HaGRID.warp_annotations(arrays, warp), lambda: HaGRID.warp_annotations(want, warp))
    slots = _same(lambda: HaGRID.annotated_hands(sample, 0), lambda: hand_slots(old))
    if slots is not None:
        want_slots = hand_slots(old)
        _same(lambda: mirror_hands(*slots), lambda: mirror_hands(*want_slots))
        _same(
            lambda: warp_points(slots[0], slots[1], warp),
            lambda: warp_points(want_slots[0], want_slots[1], warp),
        )
    # the cache key: a packed annotation keys its sample as the parsed lists did
    assert video_fingerprint(sample) == video_fingerprint(replace(sample, annotations=old))


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")  # the edges
def test_packed_entries_give_every_cached_output_byte_for_byte(tmp_path):
    packer, warp, image = NotesPacker(), _warp(), tmp_path / "a1.jpg"
    image.write_bytes(b"jpeg")
    entries = _entries(600)
    packed_landmarks = 0
    for n, entry in enumerate(entries):
        old = _kept(entry)
        notes = packer.pack(entry, FIELDS)
        assert isinstance(notes, HagridNotes) and json.dumps(dict(notes)) == json.dumps(old), n  # order, NaN
        packed_landmarks += notes.packed("hand_landmarks") is not None
        try:
            for new in (notes, pickle.loads(pickle.dumps(notes))):  # as the listing memo gives it back too
                _same_outputs(_video(image, new), old, warp)
        except AssertionError as error:
            raise AssertionError(f"entry {n}: {entry}") from error
    assert packed_landmarks > len(entries) // 3  # most entries were packed, not kept as parsed


def test_only_what_packs_without_loss_is_packed():
    notes = NotesPacker().pack(
        {
            "bboxes": [[0, 0.2, 0.3, 0.4]],  # an int: kept as parsed, so 0 stays 0, not 0.0
            "labels": ["call"],
            "united_bbox": [None],
            "hand_landmarks": [[[0.1, 0.2]] * 21, [[0.1, 0.2, 0.0]] * 21],  # a 3-number point
            "landmarks": [[[0.1, 0.2]] * 21],
        },
        FIELDS,
    )
    assert notes.packed("bboxes") is None and notes.packed("hand_landmarks") is None
    assert notes.packed("united_bbox") == [None] and notes.packed("landmarks")[0].shape == (21, 2)
    assert json.dumps(notes["bboxes"]) == "[[0, 0.2, 0.3, 0.4]]"
    with pytest.raises(TypeError):  # read-only: a sample's annotation is part of its cache key
        notes["labels"] = ["like"]


def _heap_bytes(build: Any) -> tuple[Any, int]:
    """What ``build()`` returns and the bytes it still holds (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        return kept, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_packed_annotations_take_a_quarter_of_the_memory_or_less():
    rng = random.Random(1)
    images = {}
    for i in range(2000):  # HaGRIDv2's shape: one or two hands, 21 points each, a united box
        hands = rng.choice((1, 1, 2))
        images[f"{i:06d}"] = {
            "bboxes": [[rng.random() for _ in range(4)] for _ in range(hands)],
            "labels": ["call"] + ["no_gesture"] * (hands - 1),
            "united_bbox": [[rng.random() for _ in range(4)]],
            "united_label": ["call"],
            "user_id": f"{rng.getrandbits(128):032x}",
            "hand_landmarks": [[[rng.random(), rng.random()] for _ in range(21)] for _ in range(hands)],
        }
    text = json.dumps(images)
    old, old_bytes = _heap_bytes(lambda: [_kept(e) for e in json.loads(text).values()])
    packer = NotesPacker()  # from the JSON too, so its strings count on its side
    new, new_bytes = _heap_bytes(lambda: [packer.pack(e, FIELDS) for e in json.loads(text).values()])
    assert new == old
    assert old_bytes / new_bytes >= 4, (old_bytes / len(old), new_bytes / len(new))  # ~5.4 KB, ~0.9 KB


def test_a_memo_holding_a_parse_of_plain_dicts_is_parsed_again(tmp_path, monkeypatch):
    """A listing memo kept by the code before packing (PARSE_VERSION 4, plain dicts) is never served: the
    corpus is parsed again and the memo rewritten, packed."""
    import data.formats.hagrid
    import data.framelist

    hagrid(tmp_path / "corpus")
    memo, cfg = tmp_path / "memo.pkl", DataConfig(data=tmp_path / "corpus")
    with monkeypatch.context() as old:  # the memo as the code before packing wrote it
        old.setattr(data.framelist, "PARSE_VERSION", 4)
        old.setattr(
            NotesPacker, "pack", lambda self, entry, fields: {k: entry[k] for k in fields if k in entry}
        )
        first = read_samples(cfg, memo_path=memo)
    assert all(type(v.annotations) is dict for v in first.videos)
    parsed: list[int] = []
    loads = data.formats.hagrid.json.loads
    monkeypatch.setattr(data.formats.hagrid.json, "loads", lambda text: parsed.append(1) or loads(text))
    again = read_samples(cfg, memo_path=memo)
    assert parsed and all(isinstance(v.annotations, HagridNotes) for v in again.videos)
    assert {v.key: dict(v.annotations) for v in again.videos} == {v.key: v.annotations for v in first.videos}
    parsed.clear()
    kept = read_samples(cfg, memo_path=memo)  # the rewritten memo serves the packed parse
    assert not parsed and all(isinstance(v.annotations, HagridNotes) for v in kept.videos)
    assert [video_fingerprint(v) for v in kept.videos] == [video_fingerprint(v) for v in first.videos]
