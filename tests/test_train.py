"""Training, checkpoints, evaluation, plots, prediction and run listing on a synthetic cache."""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from train_fixtures import CLASSES, write_frames, write_synthetic_cache

from core.errors import BadInputError, CacheError, WeightsUnavailableError
from extract.channels import CHANNEL_NAMES
from train.checkpoint import DIGEST_KEY, load_checkpoint, save_checkpoint
from train.config import EvaluateConfig, PredictConfig, TrainConfig
from train.evaluate import run_evaluate
from train.fit import run_train
from train.predict import run_predict
from train.runs import list_runs

FORBIDDEN = ("models.encoders", "extract")  # train reads only the cache (DESIGN §1)


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def _cfg(cache: Path, out: Path, name: str, **kw) -> TrainConfig:
    base = dict(epochs=8, batch_size=8, lr=1e-2, hidden=16, dropout=0.1, seed=0, device="cpu", patience=0)
    return TrainConfig(cache=cache, out=out, name=name, **{**base, **kw})


@pytest.fixture(scope="module")
def single_thread():
    # Tiny models run far faster on one thread, and the CI box has two shared cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, single_thread):
    """Two identical-seed runs of the full model, with encoders unreachable and the dataset's frames
    on disk, where any image opened outside the final DINO overlay plot fails the run."""
    root = tmp_path_factory.mktemp("train")
    cache = write_synthetic_cache(root / "cache", data_root=str(root / "data"))
    write_frames(cache, root / "data", (0, 200, 0), size=(16, 12))
    opened: dict[str, list] = {"overlay": [], "elsewhere": []}

    with pytest.MonkeyPatch.context() as mp:
        for mod in [m for m in sys.modules if _forbidden(m)]:
            mp.delitem(sys.modules, mod)
        import PIL.Image

        real_open = PIL.Image.open

        def only_for_the_overlay(fp, *args, **kwargs):
            if any(frame.name == "plot_dino_attention" for frame in traceback.extract_stack()):
                opened["overlay"].append(fp)
                return real_open(fp, *args, **kwargs)
            opened["elsewhere"].append(fp)
            raise AssertionError(f"train must not open images: {fp}")

        mp.setattr(PIL.Image, "open", only_for_the_overlay)
        run_a = run_train(_cfg(cache, root / "runs", "a"))
        run_b = run_train(_cfg(cache, root / "runs", "b"))
        imported = sorted(m for m in sys.modules if _forbidden(m))
    return types.SimpleNamespace(root=root, cache=cache, a=run_a, b=run_b, imported=imported, opened=opened)


def test_run_dir_holds_every_output(runs):
    names = {p.name for p in runs.a.iterdir()}
    assert {"best.pt", "last.pt", "metrics.csv", "config.yaml", "report.json", "run.json"} <= names
    cfg = yaml.safe_load((runs.a / "config.yaml").read_text())
    assert cfg["name"] == "a" and cfg["device"] == "cpu" and cfg["cache"] == str(runs.cache)
    TrainConfig(**cfg)  # the saved config is a valid TrainConfig again


def test_train_imports_no_encoder_and_opens_no_image(runs):
    assert runs.imported == []
    # Epochs read the cache only. The dataset's frames are there (the final DINO figure drew some
    # of them under the maps: a few per split and run), yet nothing else opened one.
    assert runs.opened["elsewhere"] == []
    assert 0 < len(runs.opened["overlay"]) <= 2 * 2 * 4 * 5  # runs x (val, test) x sequences x frames


def test_model_learns_the_synthetic_task(runs):
    report = json.loads((runs.a / "report.json").read_text())
    assert report["val"]["accuracy"] >= 0.9
    assert report["test"]["accuracy"] >= 0.9


def test_same_seed_gives_identical_metrics(runs):
    a = (runs.a / "metrics.csv").read_text()
    assert a == (runs.b / "metrics.csv").read_text()
    assert len(a.splitlines()) == 1 + 8


def test_checkpoint_is_self_sufficient_and_weights_only(runs):
    ckpt = torch.load(runs.a / "best.pt", map_location="cpu", weights_only=True)
    assert ckpt["class_names"] == list(CLASSES)
    assert ckpt["cache_key"] == "synth0001"
    assert ckpt["model_args"]["streams"] == ["twelve", "dino-swav"]  # "all": every head the cache feeds
    assert ckpt["model_args"]["inputs"]["embeddings"] == [12, 16]
    for key in ("encoders", "dims", "channel_layout", "config"):
        assert key in ckpt["cache"]
    assert ckpt["config"]["cache"] == str(runs.cache)  # Paths stored as plain str
    assert ckpt["best_metric"]["metric"] == "acc" and ckpt["best_metric"]["split"] == "val"
    assert isinstance(next(iter(ckpt["state_dict"].values())), torch.Tensor)
    assert load_checkpoint(runs.a / "last.pt")["epoch"] == 8


def test_evaluate_reproduces_training_val_metrics(runs, tmp_path, single_thread, capsys):
    ckpt = load_checkpoint(runs.a / "best.pt")
    report = run_evaluate(
        EvaluateConfig(checkpoint=runs.a / "best.pt", split="val", device="cpu", out=tmp_path)
    )
    assert report["accuracy"] == ckpt["val_metrics"]["acc"]
    assert report["f1_macro"] == pytest.approx(ckpt["val_metrics"]["f1"], abs=1e-12)
    assert report["loss"] == pytest.approx(ckpt["val_metrics"]["loss"], rel=1e-5)
    row = [r for r in _csv(runs.a / "metrics.csv") if int(r["epoch"]) == ckpt["best_metric"]["epoch"]][0]
    assert float(row["val_acc"]) == pytest.approx(report["accuracy"], abs=1e-5)
    assert json.loads((tmp_path / "report.json").read_text())["val"]["accuracy"] == report["accuracy"]
    assert "accuracy" in capsys.readouterr().out


def test_evaluating_last_pt_leaves_the_runs_report_to_best_pt(runs, tmp_path, single_thread):
    """A run's report.json is what `runs` compares, and it is best.pt's: last.pt's test results used to be
    merged into it (val from best.pt, test from last.pt), and `runs` showed them as the run's."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs.a, run)
    before = (run / "report.json").read_bytes()
    report = run_evaluate(EvaluateConfig(checkpoint=run / "last.pt", split="test", device="cpu"))
    assert (run / "report.json").read_bytes() == before
    assert json.loads((run / "eval-last" / "report.json").read_text())["test"] == report


def test_report_has_attention_statistics(runs):
    att = json.loads((runs.a / "report.json").read_text())["val"]["attention"]
    assert list(att["channel_weights"]) == list(CHANNEL_NAMES)
    assert sum(att["channel_weights"].values()) == pytest.approx(1.0, abs=1e-4)
    assert att["most_attended_channel"] in CHANNEL_NAMES and att["least_attended_channel"] in CHANNEL_NAMES
    assert len(att["frame_weights"]) == 8 and sum(att["frame_weights"]) == pytest.approx(1.0, abs=1e-4)
    assert 0 <= att["most_attended_frame"] < 8
    assert all(0 < g < 1 for g in att["fusion_gate"].values())
    assert set(att["fusion_gate"]) == {"dino_vs_swav", "twelve_vs_dino-swav"}  # named by what it weighs


def test_plots_are_nonempty_pngs(runs):
    expected = ["curves.png"] + [
        f"{kind}_{split}.png"
        for kind in ("confusion", "tsne", "attention", "dino_attention")
        for split in ("val", "test")
    ]
    for name in expected:
        data = (runs.a / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


@pytest.mark.parametrize("change", ["key", "classes", "order"])
def test_evaluate_refuses_a_mismatched_cache(runs, tmp_path, change):
    kw = {
        "key": {"key": "otherkey1"},
        "classes": {"classes": ("fist", "palm", "stop")},
        "order": {"classes": tuple(reversed(CLASSES))},  # the labels would mean other classes
    }[change]
    other = write_synthetic_cache(tmp_path, counts={"train": 3, "val": 3, "test": 0}, **kw)
    with pytest.raises(CacheError) as exc:
        run_evaluate(EvaluateConfig(checkpoint=runs.a / "best.pt", cache=other, device="cpu", out=tmp_path))
    assert "\n" not in str(exc.value) and str(other) in str(exc.value)
    if change != "key":  # class subsets share a key directory: say how to restore the model's
        assert "re-run extract with the --classes the model was trained with" in str(exc.value)
    assert ("the same 3 classes in another order" in str(exc.value)) == (change == "order")


def test_evaluate_on_jester_test_points_to_predict_over_its_unlabelled_list(runs, tmp_path):
    """Jester's test clips ship without labels, so its cache has an empty test split: evaluate says how to
    classify them instead; a corpus without such a list gets the plain error."""
    other = write_synthetic_cache(tmp_path / "cache", counts={"train": 3, "val": 3, "test": 0})
    manifest = json.loads((other / "manifest.json").read_text())
    for fmt, hint in (("jester", True), ("ipn", False)):
        manifest["config"] = {**manifest["config"], "format": fmt}
        (other / "manifest.json").write_text(json.dumps(manifest))
        cfg = EvaluateConfig(
            checkpoint=runs.a / "best.pt", cache=other, split="test", device="cpu", out=tmp_path
        )
        with pytest.raises(CacheError) as exc:
            run_evaluate(cfg)
        message = str(exc.value)
        assert "empty 'test' split" in message and "\n" not in message
        assert ("pipeline.py predict" in message and "jester-v1-test.csv" in message) == hint, message


def test_predict_extracts_with_the_checkpoint_manifest(runs, monkeypatch, capsys):
    seen = {}
    with h5py.File(runs.cache / "val.h5", "r") as f:
        items = [{k: f[k][i] for k in ("embeddings", "dino_cls", "swav", "valid")} for i in range(3)]
        for item, name in zip(items, "xyz", strict=True):
            item["input"] = item["video_id"] = name
        labels = f["labels"][:3]

    def extract_inputs(paths, manifest, device):
        seen.update(paths=paths, manifest=manifest, device=device)
        return items

    _fake_extract(monkeypatch, extract_inputs)
    results = run_predict(
        PredictConfig(checkpoint=runs.a / "best.pt", inputs=("x", "y", "z"), top_k=2, device="cpu")
    )
    assert seen["manifest"]["key"] == "synth0001" and seen["paths"] == [Path("x"), Path("y"), Path("z")]
    assert [r["prediction"] for r in results] == [CLASSES[i] for i in labels]
    assert [r["input"] for r in results] == ["x", "y", "z"]
    for r in results:
        probs = [t["probability"] for t in r["top"]]
        assert len(probs) == 2 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert CLASSES[labels[0]] in capsys.readouterr().out


def test_predict_classifies_each_input_as_it_is_encoded_and_writes_a_csv(runs, tmp_path, monkeypatch, capsys):
    """A test set of thousands of clips is never held whole: each input is classified and printed before the
    next is encoded. ``--csv`` writes the same predictions as a table, one row per input."""
    with h5py.File(runs.cache / "val.h5", "r") as f:
        items = [{k: f[k][i] for k in ("embeddings", "dino_cls", "swav", "valid")} for i in range(3)]
    printed_before = []

    def extract_inputs(paths, manifest, device):
        for item, name in zip(items, "xyz", strict=True):
            printed_before.append(capsys.readouterr().out)  # what predict printed before this one was encoded
            yield {**item, "input": f"clips/{name}", "video_id": name}

    _fake_extract(monkeypatch, extract_inputs)
    table = tmp_path / "out" / "predictions.csv"
    cfg = PredictConfig(
        checkpoint=runs.a / "best.pt", inputs=("x", "y", "z"), top_k=2, device="cpu", csv=table
    )
    results = run_predict(cfg)
    assert "clips/x" in printed_before[1] and "clips/y" in printed_before[2]
    rows = _csv(table)
    assert list(rows[0]) == ["input", "id", "prediction", "probability", "class_2", "probability_2"]
    assert [r["id"] for r in rows] == ["x", "y", "z"]
    assert [r["prediction"] for r in rows] == [r["prediction"] for r in results]
    assert [float(r["probability_2"]) for r in rows] == pytest.approx(
        [r["top"][1]["probability"] for r in results], abs=1e-6
    )
    with pytest.raises(BadInputError, match="is a folder"):
        run_predict(dataclasses.replace(cfg, csv=tmp_path))


def test_predict_notes_windows_at_another_time_scale_than_training(runs, tmp_path, monkeypatch, capsys):
    """A head trained on windows of W frames saw gestures at that speed: predict says so when it samples
    another span (other windows, or whole inputs) into the same number of frames, and not otherwise."""
    with h5py.File(runs.cache / "val.h5", "r") as f:
        item = {k: f[k][0] for k in ("embeddings", "dino_cls", "swav", "valid")}
    _fake_extract(
        monkeypatch,
        lambda paths, manifest, device, **kw: iter(
            [{**item, "input": "x", "video_id": "x", "start": 0, "end": 7}]
        ),
    )
    ckpt = load_checkpoint(runs.a / "best.pt")
    ckpt["cache"]["config"]["windows"] = "16:8"
    windowed = tmp_path / "windowed.pt"
    save_checkpoint(windowed, {k: v for k, v in ckpt.items() if k not in ("format", DIGEST_KEY)})
    said = {}
    for name, checkpoint, windows in (
        ("other", windowed, "32:8"),
        ("whole", windowed, None),
        ("same", windowed, "16:4"),
        ("unwindowed", runs.a / "best.pt", "32:8"),
    ):
        run_predict(PredictConfig(checkpoint=checkpoint, inputs=("x",), windows=windows, device="cpu"))
        said[name] = capsys.readouterr().err
    assert "windows of 32 frames" in said["other"] and "--windows 16:S" in said["other"]
    assert "whole inputs" in said["whole"]
    assert "note:" not in said["same"] and "note:" not in said["unwindowed"]


def test_predict_lets_extraction_errors_through(runs, monkeypatch):
    def extract_inputs(paths, manifest, device):
        raise WeightsUnavailableError("weights for test_vit are not cached; run once online")

    _fake_extract(monkeypatch, extract_inputs)
    with pytest.raises(WeightsUnavailableError):
        run_predict(PredictConfig(checkpoint=runs.a / "best.pt", inputs=("x",), device="cpu"))


def test_list_runs_groups_runs_by_cache_key(runs):
    table = list_runs(runs.a.parent)
    assert table.splitlines()[0].startswith("cache synth0001")
    rows = {line.split()[0]: line for line in table.splitlines()[3:]}
    assert set(rows) == {"a", "b"} and "val acc" in rows["a"] and "8/8" in rows["a"]


def test_empty_val_split_selects_by_train_metric(tmp_path, single_thread):
    cache = write_synthetic_cache(
        tmp_path / "cache", counts={"train": 12, "val": 0, "test": 0}, key="noval0001"
    )
    run = run_train(_cfg(cache, tmp_path / "runs", "noval", epochs=2, streams="twelve"))
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["best_metric"]["split"] == "train" and ckpt["model_args"]["streams"] == ["twelve"]
    assert "train" in json.loads((run / "report.json").read_text())


def _fake_extract(monkeypatch, fn) -> None:
    module = types.ModuleType("extract.single")
    module.extract_inputs = fn
    module.sample_only_fields = lambda manifest, fields: []  # synthetic caches store no annotations
    monkeypatch.setitem(sys.modules, "extract.single", module)


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_early_stopping_stops_after_patience_epochs(tmp_path, single_thread):
    cache = write_synthetic_cache(
        tmp_path / "cache", counts={"train": 12, "val": 6, "test": 0}, key="stop00001"
    )
    # A learning rate this small cannot improve val accuracy, so patience must end the run.
    run = run_train(_cfg(cache, tmp_path / "runs", "stop", epochs=12, patience=2, lr=1e-9, streams="twelve"))
    info = json.loads((run / "run.json").read_text())
    assert info["epochs_run"] == info["best"]["epoch"] + 2 < 12
    assert len(_csv(run / "metrics.csv")) == info["epochs_run"]


def _colour_pixels(png: Path, rgb: tuple[int, int, int], tol: int = 12) -> np.ndarray:
    """x coordinates of the pixels of ``png`` within ``tol`` of ``rgb`` (per channel)."""
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)  # (H, W, 3)
    near = (np.abs(pixels - np.array(rgb, dtype=np.int16)) <= tol).all(axis=-1)
    return np.nonzero(near)[1]


def test_dino_attention_plot_overlays_the_original_frames(tmp_path):
    from matplotlib import colormaps

    from train.plots import plot_dino_attention

    frames_root = tmp_path / "data"
    cache = write_synthetic_cache(
        tmp_path / "cache", counts={"train": 3, "val": 3, "test": 0}, data_root=str(frames_root)
    )
    green = np.array([0, 200, 0])
    write_frames(cache, frames_root, tuple(green))
    with h5py.File(cache / "val.h5", "r+") as f:  # attention on the left half of every frame only
        attn = np.zeros(f["dino_attention"].shape, np.float32)  # (N, T, h, w)
        attn[..., : attn.shape[-1] // 2] = 1.0
        f["dino_attention"][...] = attn
    config = json.loads((cache / "manifest.json").read_text())["config"]
    out = plot_dino_attention(cache / "val.h5", config, tmp_path / "overlay.png", "DINO attention")

    # The map (inferno, alpha 0.55) blended over the green frames: high and low attention give two
    # colours that neither the frames nor the colour bar contain.
    inferno = colormaps["inferno"]
    high, low = (
        tuple((0.55 * 255 * np.array(inferno(v)[:3]) + 0.45 * green).round().astype(int)) for v in (1.0, 0.0)
    )
    high_x, low_x = _colour_pixels(out, high), _colour_pixels(out, low)
    assert len(high_x) > 2000 and len(low_x) > 2000, (len(high_x), len(low_x))
    assert high_x.mean() < low_x.mean()  # the attention sits on the left of each frame, as cached

    maps_only = plot_dino_attention(
        cache / "val.h5", {"data": str(tmp_path / "gone")}, tmp_path / "maps.png", "DINO"
    )
    assert len(_colour_pixels(maps_only, high)) == 0  # no frame under the maps when the data is gone
    assert len(_colour_pixels(maps_only, tuple(round(255 * c) for c in inferno(1.0)[:3]))) > 2000


def test_dino_attention_plot_finds_segments_of_recordings_in_the_corpus_format(tmp_path, capsys):
    """A cached sequence that is a segment of a long recording (here IPN Hand's layout) is drawn over the
    frames it was extracted from: the segment's, not the recording's first ones."""
    from matplotlib import colormaps
    from PIL import Image

    from cache.schema import encode_id
    from train.corpus import source_config
    from train.plots import plot_dino_attention

    corpus = tmp_path / "corpus"
    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 3, "val": 3, "test": 0})
    red, green = np.array([220, 0, 0]), np.array([0, 200, 0])
    with h5py.File(cache / "val.h5", "r+") as f:
        n, t = f["frame_indices"].shape
        lines, ids = ["video,label,id,t_start,t_end,frames"], []
        for i, label in enumerate(f["labels"][:]):  # recording i: t red frames, then the gesture's t green
            folder = corpus / "frames" / f"rec{i}"
            folder.mkdir(parents=True)
            for k in range(2 * t):
                colour = tuple(int(c) for c in (red if k < t else green))
                Image.new("RGB", (16, 12), colour).save(folder / f"rec{i}_{k + 1:06d}.png")
            lines.append(f"rec{i},{CLASSES[label]},1,{t + 1},{2 * t},{t}")  # 1-based, inclusive
            ids.append(f"{CLASSES[label]}/rec{i}@{t}-{2 * t - 1}")
        f["sequence_ids"][...] = np.array([encode_id(s) for s in ids])
        f["frame_indices"][...] = np.tile(np.arange(t, 2 * t, dtype=np.int32), (n, 1))
        f["dino_attention"][...] = 1.0
    (corpus / "Annot_List.txt").write_text("\n".join(lines) + "\n")
    # As evaluate passes it: the config says 'auto', the manifest's stream options the format extract found.
    config = source_config(
        {"config": {"data": str(corpus), "format": "auto"}, "stream_options": {"annotations": "ipn"}}
    )
    capsys.readouterr()
    out = plot_dino_attention(cache / "val.h5", config, tmp_path / "overlay.png", "DINO attention")
    assert capsys.readouterr().err == ""  # the format is not detected and announced again

    top = np.array(colormaps["inferno"](1.0)[:3]) * 255 * 0.55
    over_green, over_red = (tuple((top + 0.45 * c).round().astype(int)) for c in (green, red))
    assert len(_colour_pixels(out, over_green)) > 2000  # drawn over the segment's own frames
    assert len(_colour_pixels(out, over_red)) == 0  # not over the recording's first frames


def test_evaluate_refuses_a_split_holding_videos_the_model_trained_on(runs, tmp_path):
    """A cache re-split after training (same key) must not score a model on its own training videos."""
    ckpt = load_checkpoint(runs.a / "best.pt")
    with h5py.File(runs.cache / "train.h5", "r") as f:
        train_ids = sorted(raw.decode() for raw in f["sequence_ids"][...])
    with h5py.File(runs.cache / "test.h5", "r") as f:
        test_video = f["sequence_ids"][0].decode()
    assert ckpt["trained_videos"] == train_ids and test_video not in train_ids
    resplit = tmp_path / "resplit.pt"  # as if test_video had been in train when this model was fitted
    # ... on the split the cache held then: another digest of which sequences each split held
    older = {"trained_videos": sorted([*train_ids, test_video]), "splits_sha256": "0" * 64}
    save_checkpoint(resplit, {**ckpt, **older})
    with pytest.raises(CacheError) as exc:
        run_evaluate(EvaluateConfig(checkpoint=resplit, split="test", device="cpu", out=tmp_path))
    message = str(exc.value)
    assert "\n" not in message and "re-split" in message and test_video in message
    report = run_evaluate(EvaluateConfig(checkpoint=resplit, split="val", device="cpu", out=tmp_path))
    assert report["split"] == "val" and report["num_sequences"] > 0  # the other splits are still scored


@pytest.mark.parametrize(
    "flag",
    [
        ("--lr", "inf"),
        ("--weight-decay", "-1"),
        ("--weight-decay", "nan"),
        ("--grad-clip", "nan"),
        ("--patience", "-1"),
        ("--seed", "-1"),
        ("--supcon-temperature", "inf"),
        ("--name", "../elsewhere"),
    ],
)
def test_train_refuses_values_that_would_crash_later_or_train_on_nan(runs, tmp_path, capsys, flag):
    """`inf` passes a "positive" test and trains on NaN; a negative seed crashed t-SNE after training; a
    name with a slash wrote outside --out. Each is one line before anything is written."""
    import pipeline

    argv = ["train", "--cache", str(runs.cache), "--out", str(tmp_path / "runs"), "--epochs", "1", *flag]
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and flag[0] in err[0], err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_an_output_path_under_a_file_is_one_line(runs, tmp_path, capsys, monkeypatch, command):
    """One line naming the path, and for evaluate and predict before the work whose result it would hold
    (a whole test set classified, then lost to the CSV's path)."""
    import pipeline

    def too_late(*args, **kwargs):
        raise AssertionError("the output path is checked before any work")

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    if command == "train":
        argv = ["train", "--cache", str(runs.cache), "--epochs", "1", "--hidden", "8", "--out", str(blocker)]
    elif command == "evaluate":
        monkeypatch.setattr("train.evaluate.evaluate_split", too_late)
        argv = ["evaluate", "--checkpoint", str(runs.a / "best.pt"), "--out", str(blocker / "report")]
    else:
        _fake_extract(monkeypatch, too_late)
        clip = runs.root / "data" / CLASSES[0] / "v0"
        argv = [
            "predict",
            "--checkpoint",
            str(runs.a / "best.pt"),
            str(clip),
            "--csv",
            str(blocker / "p.csv"),
        ]
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(blocker) in err[0] and "choose a" in err[0], err


def test_an_output_file_in_a_folder_the_user_cannot_write_is_refused_before_the_work(
    runs, tmp_path, capsys, monkeypatch
):
    """A read-only folder (a shared dataset mount) fails the CSV's write only after every clip is
    classified; it is refused first. Root may write anywhere, so the permission answer is stubbed."""
    import os

    import pipeline

    def too_late(*args, **kwargs):
        raise AssertionError("the output path is checked before any work")

    locked = tmp_path / "read-only"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr("core.atomic.os.access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    _fake_extract(monkeypatch, too_late)
    clip = runs.root / "data" / CLASSES[0] / "v0"
    argv = ["predict", "--checkpoint", str(runs.a / "best.pt"), str(clip), "--csv", str(locked / "p.csv")]
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot write into {locked}" in err[0], err


def _cache_without_hands(root: Path) -> Path:
    """A synthetic cache as ``extract --encoders hands=none`` writes it: no ``hand_boxes``/``hand_count``
    in the manifest or the split files (absent, not zero-filled), and no annotated boxes either."""
    cache = write_synthetic_cache(root, counts={"train": 6, "val": 3, "test": 0}, frames=4)
    manifest = json.loads((cache / "manifest.json").read_text())
    for name in ("hand_boxes", "hand_count"):
        del manifest["dims"]["fields"][name]
    (cache / "manifest.json").write_text(json.dumps(manifest))
    for entry in manifest["splits"].values():
        with h5py.File(cache / entry["file"], "r+") as h5:
            del h5["hand_boxes"], h5["hand_count"]
    return cache


@pytest.mark.parametrize("streams", ["hands", "twelve,hands", "twelve+hands"])
def test_a_stream_the_cache_cannot_feed_is_one_line_naming_the_cache_and_its_streams(
    tmp_path, capsys, streams
):
    """--streams hands on a hands=none cache would train the hand head on nothing (constant input): it is
    refused in one line that names the cache and lists what it can train, before a run folder exists."""
    import pipeline

    cache = _cache_without_hands(tmp_path / "cache")
    argv = ["train", "--cache", str(cache), "--streams", streams, "--out", str(tmp_path / "runs")]
    assert pipeline.main([*argv, "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(cache) in err[0] and "valid: all, twelve, dino-swav" in err[0], err
    assert not (tmp_path / "runs").exists()


def test_streams_all_takes_only_what_the_cache_can_feed(tmp_path):
    """``all`` on a hands=none cache is the heads it can feed; with the hand boxes, ``hands`` resolves."""
    from models.heads.model import ModelArgs
    from train.arrays import cache_fields

    without = json.loads((_cache_without_hands(tmp_path / "a") / "manifest.json").read_text())
    assert ModelArgs.from_manifest(without, "all", 8, 0.0).streams == ("twelve", "dino-swav")
    assert "hand_motion" not in cache_fields(tmp_path / "a" / "synth0001", "all")
    full = json.loads((write_synthetic_cache(tmp_path / "b", frames=4) / "manifest.json").read_text())
    assert ModelArgs.from_manifest(full, "twelve,hands", 8, 0.0).streams == ("twelve", "hands")


@pytest.mark.parametrize("streams", ["hands", "twelve"])
def test_a_head_whose_input_never_varies_is_warned_about(tmp_path, capsys, streams):
    """--streams hands on a cache where no hand was ever detected trains on constant input and ends at
    chance with no word; the fitted statistics show it, so training says which field is constant."""
    import pipeline

    cache = write_synthetic_cache(tmp_path / "cache", counts={"train": 6, "val": 3, "test": 0}, frames=4)
    argv = ["train", "--cache", str(cache), "--streams", streams, "--out", str(tmp_path / "runs")]
    assert pipeline.main([*argv, "--epochs", "1", "--hidden", "8"]) == 0
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "the same value in every" in ln]
    assert len(warned) == (streams == "hands"), warned
    assert all(w.startswith("warning: hand_motion") and str(cache) in w for w in warned), warned


def test_tsne_of_a_head_that_saw_nothing_is_skipped(tmp_path):
    """A head whose input never varies (--streams hands on a cache where no hand was detected) gives every
    sequence the same embedding; the report goes on without that figure instead of crashing."""
    from train.plots import plot_tsne

    same = np.tile(np.linspace(-1, 1, 16, dtype=np.float32), (12, 1))  # (12, 16), one point 12 times
    labels = np.arange(12) % 3
    assert plot_tsne(same, labels, ["a", "b", "c"], tmp_path / "same.png", "t") is None
    spread = same + np.random.default_rng(0).normal(0, 0.1, same.shape).astype(np.float32)
    assert plot_tsne(spread, labels, ["a", "b", "c"], tmp_path / "spread.png", "t") == tmp_path / "spread.png"


@pytest.mark.parametrize("command", ["train", "extract"])
def test_ctrl_c_says_what_a_rerun_does(monkeypatch, tmp_path, capsys, command):
    """extract resumes where it stopped; a train run does not, and telling its user to "re-run to resume"
    sent them into "run folder already exists"."""
    import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if command == "train":
        monkeypatch.setattr("train.fit.run_train", interrupted)
        argv = ["train", "--cache", str(tmp_path), "--out", str(tmp_path / "runs")]
    else:
        monkeypatch.setattr("extract.run.run", interrupted)
        argv = ["extract", "--data", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]
    assert pipeline.main(argv) == 130
    err = capsys.readouterr().err
    assert ("does not resume" in err) == (command == "train") and ("to resume" in err) == (
        command == "extract"
    )
