"""`pipeline.py show`: a playable MP4 of one video with overlays, from the cache or re-extracted."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from train_fixtures import write_frames, write_synthetic_cache

from pipeline import main
from train.attention_masks import unpack_masks

FRAME = (200, 0, 200)  # magenta: the hand tints (green, blue) stand out against it
SIZE = (64, 48)


@pytest.fixture(scope="module")
def shown(tmp_path_factory) -> Path:
    """A synthetic cache with masks whose frames exist on disk as ``<class>/<video>_frame_<n>.png``."""
    root = tmp_path_factory.mktemp("show")
    cache = write_synthetic_cache(
        root / "cache", counts={"train": 3, "val": 3, "test": 0}, masks="dense", data_root=str(root / "data")
    )
    write_frames(cache, root / "data", FRAME, size=SIZE)
    return root


def _decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _no_extraction(monkeypatch):
    import extract.single

    def refuse(*args, **kwargs):
        raise AssertionError("show re-ran encoders for a video the cache holds")

    monkeypatch.setattr(extract.single, "extract_inputs", refuse)


def test_show_draws_a_cached_video_without_running_an_encoder(shown, tmp_path, monkeypatch):
    _no_extraction(monkeypatch)
    out = tmp_path / "clip.mp4"
    video = shown / "data" / "palm" / "val001"  # FOLDER/<video_id> in a folder of several videos
    argv = ["show", str(video), "--cache", str(shown / "cache" / "synth0001"), "--out", str(out)]
    assert main([*argv, "--boxes", "--attention", "--masks"]) == 0
    frames = _decode(out)
    assert len(frames) == 8 and frames[0].shape == (SIZE[1], SIZE[0], 3)


def test_show_tints_each_valid_hand_mask_where_the_cache_puts_it(shown, tmp_path, monkeypatch):
    _no_extraction(monkeypatch)
    out = tmp_path / "masks.mp4"
    video = shown / "data" / "palm" / "val001"
    assert (
        main(
            ["show", str(video), "--cache", str(shown / "cache" / "synth0001"), "--masks", "--out", str(out)]
        )
        == 0
    )
    with h5py.File(shown / "cache" / "synth0001" / "val.h5", "r") as f:
        masks = unpack_masks(f["hand_masks"][1]) & f["mask_valid"][1].astype(bool)[..., None, None]
    union = masks.any(1)  # (T, 64, 64)
    frames = _decode(out)
    checked = 0
    for t, frame in enumerate(frames):
        hands = [k for k in range(2) if masks[t, k].any()]
        if not hands:
            continue
        # a pixel inside a mask is tinted; one far from every mask (and its outline) keeps its colour
        ys, xs = np.nonzero(masks[t, hands[0]])  # one square hand: its centre is inside it
        y, x = int(ys.mean()), int(xs.mean())
        inside = frame[y * SIZE[1] // 64, x * SIZE[0] // 64].astype(int)
        free = np.argwhere(~_grow(union[t], 10))
        if len(free):
            fy, fx = free[len(free) // 2]
            outside = frame[fy * SIZE[1] // 64, fx * SIZE[0] // 64].astype(int)
            assert np.abs(outside - FRAME).max() < 30, (t, outside)
        assert np.abs(inside - FRAME).max() > 60, (t, inside)
        checked += 1
    assert checked >= 3


def _grow(mask: np.ndarray, r: int) -> np.ndarray:
    """``mask`` dilated by ``r`` cells (a square neighbourhood)."""
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def _tiny_cache(root: Path, **manifest_entries: object) -> Path:
    """A cache extracted with tiny random encoders (its manifest is what show rebuilds them from);
    ``manifest_entries`` replace the manifest's top-level entries."""
    cache = write_synthetic_cache(root / "cache", counts={"train": 3, "val": 0, "test": 0}, key="tiny0001")
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["encoders"] = {
        role: {"name": f"tiny_{role}", "weights": "random:0"}
        for role in ("vit", "cnn", "dino", "swav", "hands")
    }
    manifest["config"]["image_size"] = 32
    (cache / "manifest.json").write_text(json.dumps({**manifest, **manifest_entries}))
    return cache


def _new_clip(shown: Path, folder: Path) -> Path:
    """A numbered frame folder ``folder/clip`` of 6 frames: one video, unknown to the cache."""
    clip = folder / "clip"
    source = sorted((shown / "data" / "fist").glob("train000_frame_*.png"))
    clip.mkdir(parents=True)
    for n, path in enumerate(source[:6]):
        (clip / f"{n:05d}.png").write_bytes(path.read_bytes())
    return clip


def _encoders_built(monkeypatch) -> list[str]:
    """The names of the encoders extraction builds from now on, in the order it builds them."""
    import extract.single

    built: list[str] = []
    real = extract.single.create_encoder
    monkeypatch.setattr(
        extract.single, "create_encoder", lambda name, *a: built.append(name) or real(name, *a)
    )
    return built


def test_show_extracts_only_the_streams_it_draws_for_a_video_the_cache_lacks(shown, tmp_path, monkeypatch):
    cache = _tiny_cache(tmp_path)
    clip = _new_clip(shown, tmp_path / "new")
    built = _encoders_built(monkeypatch)
    out = tmp_path / "new.mp4"
    argv = ["show", str(clip), "--cache", str(cache), "--boxes", "--attention", "--device", "cpu"]
    assert main([*argv, "--out", str(out)]) == 0
    assert sorted(built) == ["tiny_dino", "tiny_hands"]  # not the 12-channel or SwAV encoders
    frames = _decode(out)
    assert len(frames) == 8 and frames[0].shape == (SIZE[1], SIZE[0], 3)


@pytest.mark.parametrize(
    ("video", "flags", "message"),
    [
        ("data/palm/nope", ["--boxes"], "nope: does not exist"),
        ("bad.mp4", ["--boxes"], "bad.mp4: cannot be decoded"),
        ("data/palm/val001", ["--masks", "--landmarks"], None),  # the cache has none: a note, then masks
        ("data/palm/val001", ["--boxes", "--no-masks"], None),
        ("data/palm/val001", ["--fps", "inf"], "--fps must be a frame rate"),  # the writer overflowed
    ],
)
def test_show_reports_bad_input_in_one_line(shown, tmp_path, capsys, video, flags, message):
    (shown / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    out = tmp_path / "x.mp4"
    code = main(
        ["show", str(shown / video), "--cache", str(shown / "cache" / "synth0001"), "--out", str(out), *flags]
    )
    err = capsys.readouterr().err.strip().splitlines()
    if message is None:
        assert code == 0 and len(_decode(out)) == 8
        assert any("has no landmarks" in line for line in err) == ("--landmarks" in flags)
        return
    assert code == 2 and len(err) == 1 and message in err[0] and not out.exists()


def test_show_given_a_mistyped_sequence_id_names_the_nearest_ids(shown, tmp_path, monkeypatch, capsys):
    """A VIDEO that is neither a path nor an id of the cache: one line that offers the ids it resembles."""
    monkeypatch.chdir(tmp_path)
    cache = shown / "cache" / "synth0001"
    with h5py.File(cache / "val.h5", "r") as f:
        wanted = f["sequence_ids"][0].decode()  # '<class>/<video_id>'
    code = main(["show", wanted[:-1], "--cache", str(cache), "--out", str(tmp_path / "x.mp4"), "--boxes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "nor a sequence id of the cache" in err[0] and f"did you mean {wanted}" in err[0], err


def test_show_refuses_an_overlay_the_cache_cannot_give(tmp_path, capsys):
    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 3, "val": 0, "test": 0})
    write_frames(cache, tmp_path / "data", FRAME, size=SIZE)
    argv = ["show", str(tmp_path / "data" / "fist" / "train000"), "--cache", str(cache), "--masks"]
    assert main([*argv, "--out", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--masks" in err[0] and "has no hand masks" in err[0]


def test_show_draws_the_annotated_boxes_of_a_cache_without_a_detector(small_demo, tmp_path, monkeypatch):
    """The demo extracts with hands=none and stores the generator's boxes: --boxes draws those, where
    they are, rather than refusing for want of the detector's."""
    from conftest import demo_boxes_config

    from cache.schema import decode_id
    from data.demo import true_hand_boxes
    from extract.run import run

    key = run(demo_boxes_config(small_demo, tmp_path / "cache")).key_dir
    with h5py.File(key / "train.h5", "r") as f:
        sequence = decode_id(f["sequence_ids"][0])  # class/video_id
        indices = f["frame_indices"][0]
    _no_extraction(monkeypatch)
    argv = ["show", str(small_demo / sequence), "--cache", str(key), "--attention"]
    assert main([*argv, "--out", str(tmp_path / "plain.mp4")]) == 0
    assert main([*argv, "--boxes", "--out", str(tmp_path / "boxes.mp4")]) == 0
    plain, boxed = _decode(tmp_path / "plain.mp4"), _decode(tmp_path / "boxes.mp4")
    truth = true_hand_boxes(small_demo)[sequence]  # (frames, 4)
    hgt, wid = plain[0].shape[:2]
    yy, xx = np.mgrid[:hgt, :wid]
    for t in (0, len(plain) // 2, len(plain) - 1):
        change = np.abs(boxed[t].astype(int) - plain[t].astype(int)).sum(-1)  # (H, W)
        x1, y1, x2, y2 = truth[indices[t]] * [wid - 1, hgt - 1, wid - 1, hgt - 1]
        inside = (xx >= x1 - 1.5) & (xx <= x2 + 1.5) & (yy >= y1 - 1.5) & (yy <= y2 + 1.5)
        core = (xx >= x1 + 1.5) & (xx <= x2 - 1.5) & (yy >= y1 + 1.5) & (yy <= y2 - 1.5)
        outline = inside & ~core  # the true box's edge, a pixel and a half either side
        assert change[outline].mean() > 4 * max(change[~outline].mean(), 1.0), t


def test_show_draws_a_sequence_named_by_its_cache_id_over_its_own_segment(tmp_path, monkeypatch):
    """VIDEO may be a sequence id of the cache, as reports name them (``G01/rec0@8-15``): show draws that
    row over the frames of the corpus it was extracted from (here an IPN Hand layout whose recordings
    are red before the segment and green inside it), without running an encoder."""
    from PIL import Image

    from cache.schema import encode_id

    _no_extraction(monkeypatch)
    corpus = tmp_path / "corpus"
    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 3, "val": 3, "test": 0})
    with h5py.File(cache / "val.h5", "r+") as f:
        n, t = f["frame_indices"].shape
        names = [raw.decode().split("/")[0] for raw in f["sequence_ids"][:]]
        lines, ids = ["video,label,id,t_start,t_end,frames"], []
        for i, label in enumerate(names):  # recording i: t red frames, then the gesture's t green ones
            folder = corpus / "frames" / f"rec{i}"
            folder.mkdir(parents=True)
            for k in range(2 * t):
                Image.new("RGB", SIZE, (220, 0, 0) if k < t else (0, 200, 0)).save(
                    folder / f"rec{i}_{k + 1:06d}.png"
                )
            lines.append(f"rec{i},{label},1,{t + 1},{2 * t},{t}")  # 1-based, inclusive
            ids.append(f"{label}/rec{i}@{t}-{2 * t - 1}")
        f["sequence_ids"][...] = np.array([encode_id(s) for s in ids])
        f["frame_indices"][...] = np.tile(np.arange(t, 2 * t, dtype=np.int32), (n, 1))
    (corpus / "Annot_List.txt").write_text("\n".join(lines) + "\n")
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["config"] = {**manifest["config"], "data": str(corpus), "format": "auto"}
    manifest["stream_options"] = {**manifest.get("stream_options", {}), "annotations": "ipn"}
    manifest["splits"]["val"]["sequence_ids"] = ids
    (cache / "manifest.json").write_text(json.dumps(manifest))

    out = tmp_path / "segment.mp4"
    assert main(["show", ids[1], "--cache", str(cache), "--out", str(out), "--boxes"]) == 0
    frames = np.stack(_decode(out)).astype(float)  # (t, H, W, 3)
    assert len(frames) == t
    red, green = frames[..., 0].mean(), frames[..., 1].mean()
    assert green > 150 and red < 60, (red, green)  # the segment's frames, not the recording's first


def test_show_with_no_overlay_flag_draws_every_overlay_the_cache_holds(shown, tmp_path, monkeypatch, capsys):
    _no_extraction(monkeypatch)
    cache = shown / "cache" / "synth0001"
    video = shown / "data" / "palm" / "val001"
    plain, chosen = tmp_path / "plain.mp4", tmp_path / "chosen.mp4"
    assert main(["show", str(video), "--cache", str(cache), "--out", str(plain)]) == 0
    note = capsys.readouterr().err
    assert "--masks" in note and "--attention" in note and "--boxes" in note and "--landmarks" not in note
    assert (
        main(
            [
                "show",
                str(video),
                "--cache",
                str(cache),
                "--out",
                str(chosen),
                "--masks",
                "--attention",
                "--boxes",
            ]
        )
        == 0
    )
    assert all(np.array_equal(a, b) for a, b in zip(_decode(plain), _decode(chosen), strict=True))


def test_show_refuses_landmarks_alone_from_a_cache_without_them(shown, tmp_path, capsys):
    """``--landmarks`` and nothing else, from a cache extracted without landmarks, would write the bare
    frames, which read as a video in which no hand was found: one line saying what is missing and how to
    get it, exit status 2, and no MP4."""
    out = tmp_path / "x.mp4"
    video = shown / "data" / "palm" / "val001"
    code = main(
        ["show", str(video), "--cache", str(shown / "cache" / "synth0001"), "--landmarks", "--out", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "--landmarks" in err[0] and "has no landmarks" in err[0], err
    assert "re-extract it with --landmarks mediapipe or --landmarks npz:DIR" in err[0], err
    assert "--masks" in err[0] and "--boxes" in err[0], err  # the overlays it can draw instead
    assert not out.exists()


# The fields an extraction with --landmarks npz:DIR adds to a cache (streams/landmarks.py).
NPZ_FIELDS = {
    "landmarks": {"bounds": None, "dtype": "float", "fill": 0.0, "shape": [2, 21, 3], "stream": "landmarks"},
    "landmark_valid": {"bounds": [0, 1], "dtype": "uint8", "fill": 0.0, "shape": [2], "stream": "landmarks"},
    "pose": {"bounds": None, "dtype": "float", "fill": 0.0, "shape": [33, 3], "stream": "landmarks"},
    "pose_valid": {"bounds": [0, 1], "dtype": "uint8", "fill": 0.0, "shape": [], "stream": "landmarks"},
}


def test_show_of_a_clip_without_its_landmark_file_leaves_imported_landmarks_out(
    shown, tmp_path, monkeypatch, capsys
):
    """A cache whose landmarks came from ``.npz`` files (``--landmarks npz:DIR``) can give a video it lacks
    landmarks only from that video's own file in DIR. Drawing everything (no overlay flag) leaves them out
    in one note and re-extracts the rest; ``--landmarks`` asked for is one line naming the file to export,
    before any encoder loads; with the file there, they are drawn."""
    marks = tmp_path / "marks"
    marks.mkdir()
    cache = _tiny_cache(tmp_path, stream_options={"landmarks": f"npz:{marks}"})
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["dims"]["fields"].update(NPZ_FIELDS)
    (cache / "manifest.json").write_text(json.dumps(manifest))
    clip = _new_clip(shown, tmp_path / "new")
    built = _encoders_built(monkeypatch)
    argv = ["show", str(clip), "--cache", str(cache), "--device", "cpu"]

    assert main([*argv, "--out", str(tmp_path / "all.mp4")]) == 0
    err = capsys.readouterr().err
    dropped = [line for line in err.splitlines() if str(marks / "clip.npz") in line]
    assert len(dropped) == 1 and "without landmarks" in dropped[0] and "error" not in err, err
    assert sorted(built) == ["tiny_dino", "tiny_hands"]  # the other overlays were re-extracted
    assert len(_decode(tmp_path / "all.mp4")) == 8

    built.clear()
    code = main([*argv, "--landmarks", "--attention", "--out", str(tmp_path / "asked.mp4")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, errors
    assert "--landmarks" in errors[0] and f"{marks / 'clip.npz'} does not exist" in errors[0], errors
    assert "leave out --landmarks" in errors[0], errors
    assert built == [] and not (tmp_path / "asked.mp4").exists()

    hand = np.random.default_rng(0).uniform(0.2, 0.8, (6, 21, 3)).astype(np.float32)
    np.savez(marks / "clip.npz", left_hand=hand, right_hand=hand)  # one row per source frame
    assert main([*argv, "--landmarks", "--out", str(tmp_path / "marks.mp4")]) == 0
    assert "landmarks" not in capsys.readouterr().err  # drawn, not noted away
    assert len(_decode(tmp_path / "marks.mp4")) == 8


def test_show_refuses_an_out_path_under_a_file_before_any_work(shown, tmp_path, monkeypatch, capsys):
    """An MP4 that cannot be written (its folder is a file) is refused before a frame is read or an encoder
    runs, not after all the work: one line naming --out and the file in the way."""
    import train.show

    def refuse(*args, **kwargs):
        raise AssertionError("show read frames before checking --out")

    monkeypatch.setattr(train.show, "read_frames", refuse)
    _no_extraction(monkeypatch)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    out = blocker / "clips" / "x.mp4"
    video = shown / "data" / "palm" / "val001"
    code = main(
        ["show", str(video), "--cache", str(shown / "cache" / "synth0001"), "--masks", "--out", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"--out {out}" in err[0] and f"{blocker} is a file" in err[0], err
