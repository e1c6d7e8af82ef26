"""Files read from the user that are the wrong file or not UTF-8 end in one `error:` line, exit 2.

Regressions found by trying the product as a new user would (issue 18): a run folder's metrics.csv
passed as a checkpoint ended in the unpickler's IndexError, and non-UTF-8 bytes in a --config YAML
or a cache's manifest.json ended in a UnicodeDecodeError traceback.
"""

from __future__ import annotations

import pytest
from train_fixtures import write_synthetic_cache

import pipeline

NOT_UTF8 = b"frames: 8\nseed: \xff\xfe\x00 caf\xe9\n"


def _cli(capsys, *argv: str) -> tuple[int, list[str]]:
    rc = pipeline.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, [ln for ln in err.splitlines() if ln.strip()]


def test_evaluate_given_the_runs_metrics_csv_says_it_is_not_a_checkpoint(tmp_path, capsys):
    metrics = tmp_path / "run" / "metrics.csv"
    metrics.parent.mkdir()
    metrics.write_text("epoch,train_loss,val_loss,val_acc\n1,1.02,0.98,0.61\n2,0.71,0.80,0.72\n")
    rc, lines = _cli(capsys, "evaluate", "--checkpoint", metrics)
    assert rc == 2 and len(lines) == 1, lines
    assert str(metrics) in lines[0] and "not a checkpoint written by `pipeline.py train`" in lines[0]


@pytest.mark.parametrize("command", ["extract", "train"])
def test_config_yaml_that_is_not_utf8_is_named_in_one_line(tmp_path, capsys, command):
    config = tmp_path / "settings.yaml"
    config.write_bytes(NOT_UTF8)
    rc, lines = _cli(capsys, command, "--config", config)
    assert rc == 2 and len(lines) == 1, lines
    assert str(config) in lines[0] and "UTF-8" in lines[0]


@pytest.mark.parametrize("command", ["cache-verify", "train"])
def test_manifest_that_is_not_utf8_is_named_in_one_line(tmp_path, capsys, command):
    key_dir = write_synthetic_cache(tmp_path / "cache", counts={"train": 3, "val": 3, "test": 0})
    manifest = key_dir / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"key"', b'"k\xe9y"', 1))
    if command == "cache-verify":
        rc = pipeline.main(["cache", "verify", str(key_dir)])
        out = capsys.readouterr()
        assert "Traceback" not in out.err and rc == 2
        faults = [ln for ln in out.out.splitlines() if ln.startswith("FAULT")]
        assert len(faults) == 1 and "manifest.json" in faults[0] and "UTF-8" in faults[0], out.out
        return
    rc, lines = _cli(capsys, "train", "--cache", key_dir, "--out", tmp_path / "runs", "--epochs", "1")
    assert rc == 2 and len(lines) == 1, lines
    assert str(manifest) in lines[0] and "UTF-8" in lines[0]


@pytest.mark.parametrize(
    ("text", "said"), [("val: 1.2\n", "--val 1.2"), ("hands_every: 0\n", "--hands-every")]
)
def test_a_bad_value_read_from_the_config_file_names_the_file(tmp_path, capsys, text, said):
    # Found by the fuzz suite: __post_init__ checks name the flag (--val), not the file it came from.
    config = tmp_path / "settings.yaml"
    config.write_text(text)
    rc, lines = _cli(capsys, "extract", "--config", config, "--data", tmp_path)
    assert rc == 2 and len(lines) == 1, lines
    assert said in lines[0] and str(config) in lines[0]


def test_an_unknown_option_whose_name_holds_a_line_break_is_one_line(tmp_path):
    # Found by the fuzz suite: the name was quoted as it stood, so the error itself (which sweeps and
    # tune report too, not only the CLI's printer) ran over two lines.
    from cli.config_args import build_config
    from core.errors import UserError
    from extract.config import ExtractConfig

    config = tmp_path / "settings.yaml"
    config.write_text('"fra\\u2028mes": 8\n')
    ns = pipeline.build_parser().parse_args(["extract", "--config", str(config)])
    with pytest.raises(UserError) as caught:
        build_config(ExtractConfig, ns)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and str(config) in message and "unknown option" in message


@pytest.mark.parametrize(
    "edit",
    [
        {"dims": {"float_dtype": "float1&"}},  # one flipped bit in "float16"
        {"class_names": [["fist"], {"palm": 1}, "peace"]},
    ],
    ids=["dtype", "class-names"],
)
def test_cache_verify_reports_a_manifest_of_the_wrong_shape(tmp_path, capsys, edit):
    # Found by the fuzz suite: both ended in a TypeError/ValueError traceback inside verify.
    import json

    key_dir = write_synthetic_cache(tmp_path / "cache", counts={"train": 3, "val": 3, "test": 0})
    path = key_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    for key, value in edit.items():
        manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    path.write_text(json.dumps(manifest))
    rc = pipeline.main(["cache", "verify", str(key_dir)])
    out = capsys.readouterr()
    assert rc == 2 and "Traceback" not in out.err
    assert any(ln.startswith("FAULT manifest.json: ") for ln in out.out.splitlines()), out.out


@pytest.mark.parametrize(
    ("argv", "text", "line", "said"),
    [
        (["train", "--cache", "x"], "epochs: 3\nlr: 0.1\nepochs: 5\n", 3, "'epochs' is given twice"),
        (["sweep", "--cache", "x", "--grid"], "lr: [0.1, 0.2]\nlr: [0.3]\n", 2, "'lr' is given twice"),
        (["train", "--cache", "x"], "weight-decay: 0.1\nweight_decay: 0.2\n", None, "are one option"),
    ],
)
def test_an_option_given_twice_in_a_yaml_file_is_refused_not_last_wins(
    tmp_path, capsys, argv, text, line, said
):
    # PyYAML keeps the last of two equal keys: the first value was dropped without a word.
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    args = [*argv, path] if argv[-1] == "--grid" else [*argv, "--config", path]
    rc, lines = _cli(capsys, *args)
    assert rc == 2 and len(lines) == 1, lines
    where = f"{path}:{line}:" if line else f"{path}:"
    assert lines[0].startswith(f"error: {where}") and said in lines[0], lines
