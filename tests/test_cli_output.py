"""What the command line prints around its work: a closed stdout, Ctrl-C hints, and the macro F1 it reports.

Each case checks what a user sees (exit status, stderr lines, printed numbers) on a tiny synthetic cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import write_synthetic_cache

import pipeline
from train.metrics import classification_summary, epoch_metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    return write_synthetic_cache(root, counts={"train": 8, "val": 4, "test": 0}, frames=4, key="cli00001")


def test_a_closed_stdout_ends_the_command_quietly(cache):
    """`pipeline.py cache info CACHE | head -3`: the reader leaves early. Its stdout here is a pipe whose
    reading end is already closed, so every write fails (with head, only the writes after it quit)."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "pipeline.py"), "cache", "info", str(cache)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "YOLO_OFFLINE": "1"},
        )
    finally:
        os.close(write)
    assert done.stderr == "", done.stderr  # no traceback, no "Exception ignored"
    assert done.returncode == pipeline.EXIT_CLOSED_STDOUT


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _train(cache: Path, out: Path, *extra: str) -> int:
    return pipeline.main(["train", "--cache", str(cache), "--out", str(out), "--epochs", "1", *extra])


def test_ctrl_c_in_a_plain_train_run_says_it_does_not_resume(cache, tmp_path, monkeypatch, capfd):
    import train.fit

    monkeypatch.setattr(train.fit, "run_train", _interrupt)
    capfd.readouterr()
    assert _train(cache, tmp_path) == 130
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1] == f"interrupted; {pipeline.AFTER_INTERRUPT['train']}", err


def test_an_allocation_numpy_cannot_make_is_one_line_saying_to_ask_for_less(
    cache, tmp_path, monkeypatch, capfd
):
    """NumPy's MemoryError (a preload, a decoded array) is the user's to size down, as torch's is."""
    import train.fit

    monkeypatch.setattr(train.fit, "run_train", lambda *a, **k: np.empty(1 << 62, dtype=np.uint8))
    capfd.readouterr()
    assert _train(cache, tmp_path) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of memory (Unable to allocate"), err
    assert "--batch-size" in err[0]


@pytest.mark.parametrize("named", [True, False])
def test_ctrl_c_in_folds_says_the_same_command_resumes(cache, tmp_path, monkeypatch, capfd, named):
    """Finished folds are kept and the same command (with or without --name) resumes them: removing the
    folder, as a plain train run's hint says, would throw them away."""
    import train.folds

    monkeypatch.setattr(train.folds, "run_folds", _interrupt)
    capfd.readouterr()
    assert _train(cache, tmp_path, "--folds", "2", *(["--name", "cv"] if named else [])) == 130
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1] == f"interrupted; {pipeline.AFTER_FOLDS_INTERRUPT}", err
    assert "does not resume" not in err[-1] and "remove" not in err[-1]


NAMES = ["a", "b", "circle"]


def test_macro_f1_averages_over_the_classes_a_split_holds():
    """A val split without 'circle' and every sequence right: accuracy 1 and macro F1 1, not 0.8333 from
    a zero F1 for a class with nothing to recall; the report names the absent class."""
    y = np.array([0, 0, 1, 1, 1])
    summary = classification_summary(y, y, NAMES)
    assert summary["accuracy"] == 1.0
    assert summary["f1_macro"] == pytest.approx(1.0)
    assert summary["precision_macro"] == pytest.approx(1.0) and summary["recall_macro"] == pytest.approx(1.0)
    assert summary["absent_classes"] == ["circle"]
    assert epoch_metrics(y, y, len(NAMES), 0.1)["f1"] == pytest.approx(1.0)


def test_macro_f1_still_counts_a_present_class_missed_and_agrees_with_the_epoch_metric():
    """best.pt is chosen on the epoch F1 and evaluate reports the summary's: the two stay one number, and a
    prediction of an absent class still costs the true class its recall."""
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 2, 1, 0])
    summary = classification_summary(y_true, y_pred, NAMES)
    assert summary["absent_classes"] == ["circle"]
    assert summary["f1_macro"] == pytest.approx(epoch_metrics(y_true, y_pred, len(NAMES), 0.0)["f1"])
    assert summary["f1_macro"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # a: F1 1/2; b: P 1, R 1/2, F1 2/3
    full = classification_summary(np.array([0, 1, 2]), np.array([0, 1, 2]), NAMES)
    assert full["absent_classes"] == [] and full["f1_macro"] == pytest.approx(1.0)


def test_the_printed_report_names_an_absent_class_instead_of_a_row_of_zeros():
    from train.evaluate import format_summary

    y = np.array([0, 0, 1, 1, 1])
    summary = classification_summary(y, y, NAMES)
    report = {"split": "val", "num_sequences": 5, "loss": 0.1, "class_names": NAMES, "attention": {}}
    report.update(summary)
    text = format_summary(report)
    assert "absent from this split (left out of the macro averages): circle" in text
    assert not [line for line in text.splitlines() if line.strip().startswith("circle")], text


@pytest.mark.parametrize(
    "argv, said",
    [
        (
            ["extract", "--data", "NOWHERE", "--encoders", "hands=none", "--encoders", "dino=dino_vit_s8"],
            "note: --encoders is given twice; the last (dino=dino_vit_s8) is used",
        ),
        (
            ["train", "--cache", "NOWHERE", "--preload", "--no-preload"],
            "note: --preload/--no-preload is given twice",
        ),
    ],
)
def test_a_flag_given_twice_says_which_value_is_used(argv, said, capsys, tmp_path):
    """argparse keeps the last value, and scripts override a common flag that way; but a second --encoders
    dropped hands=none (YOLO ran, another cache key) without a word."""
    argv = [str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in argv]
    assert pipeline.main(argv) == 2  # the folder does not exist: stopped before any work
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(said) and err[1].startswith("error: "), err


def test_a_list_flag_given_twice_takes_both_lists():
    """`--flip-swap a:b --flip-swap c:d` swapped only c:d: flipped copies of a and b kept wrong labels."""
    from cli.config_args import build_config
    from extract.config import ExtractConfig

    argv = ["extract", "--data", "d", "--flip-swap", "a:b", "--flip-swap", "c:d", "e:f"]
    cfg = build_config(ExtractConfig, pipeline.build_parser().parse_args(argv))
    assert cfg.dataset.flip_swap == ("a:b", "c:d", "e:f")


@pytest.mark.parametrize(
    "argv, said",
    [
        (
            ["train", "--cache", "CACHE", "--folds", ""],
            "error: --folds is empty: give K or loso, or leave it out",
        ),
        (["demo", "--epochs", "0"], "error: --epochs must be at least 1"),
    ],
)
def test_options_a_run_would_misread_are_refused_before_any_work(cache, tmp_path, capsys, argv, said):
    """--folds "$K" with K unset trained one plain run instead of cross-validating; demo --epochs 0 wrote
    the demo set and extracted it before saying its epochs were wrong."""
    argv = [str(cache) if a == "CACHE" else a for a in argv]
    assert pipeline.main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == said
    assert not (tmp_path / "out").exists()
