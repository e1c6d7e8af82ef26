"""The stage-neutral core: one device resolver, one atomic write, one config-to-dict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

import core.atomic
from core.atomic import atomic_path, write_json_atomic, write_text_atomic
from core.config import config_to_dict, save_config, to_plain
from core.device import resolve_device
from core.errors import DeviceUnavailableError, UserError
from core.ranks import Ranks


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend two CUDA devices are visible (resolution never touches the device itself)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_and_auto_without_cuda(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU is visible; use --device cpu"):
        resolve_device("cuda:0")
    with pytest.raises(UserError, match="unknown --device 'tpu'"):
        resolve_device("tpu")


def test_cuda_index_is_kept_and_checked(two_gpus):
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(DeviceUnavailableError, match=r"only 2 CUDA device\(s\)"):
        resolve_device("cuda:2")


def test_torchrun_rank_drives_its_local_gpu(two_gpus):
    rank1 = Ranks(rank=1, world_size=2, local_rank=1)
    assert resolve_device("cuda", rank1) == torch.device("cuda", 1)
    assert resolve_device("auto", rank1) == torch.device("cuda", 1)
    assert resolve_device("cpu", rank1) == torch.device("cpu")
    with pytest.raises(DeviceUnavailableError, match="each rank uses cuda:LOCAL_RANK"):
        resolve_device("cuda:0", rank1)


def test_failed_atomic_write_keeps_the_old_file_and_no_tmp(tmp_path: Path):
    target = tmp_path / "run" / "report.json"
    write_json_atomic(target, {"epoch": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_atomic_write_fsyncs_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    synced: list[Path] = []
    real = core.atomic.fsync_path
    monkeypatch.setattr(core.atomic, "fsync_path", lambda p: (synced.append(Path(p)), real(p)))
    write_text_atomic(tmp_path / "a.txt", "x")
    assert synced == [tmp_path / ".a.txt.tmp", tmp_path]  # the data before the rename, the rename after
    assert (tmp_path / "a.txt").read_text() == "x"


@dataclass
class _Inner:
    root: Path = Path("data")
    sizes: tuple[int, ...] = (1, 2)


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    name: str = "x"


def test_config_to_dict_is_flat_and_plain(tmp_path: Path):
    flat = config_to_dict(_Outer())
    assert flat == {"root": "data", "sizes": [1, 2], "name": "x"}
    save_config(_Outer(), tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == flat


def test_to_plain_walks_nested_values():
    got = to_plain({"p": Path("a/b"), 3: (1, {"x": torch.tensor(2.5)}), "none": None})
    assert got == {"p": "a/b", "3": [1, {"x": 2.5}], "none": None}


def test_a_sealed_memo_opens_only_for_the_user_who_wrote_it(tmp_path, monkeypatch):
    from core.sealed import seal, unseal

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "me"))
    blob = seal({"folder": ["00001.jpg"]})
    assert unseal(blob) == {"folder": ["00001.jpg"]}
    assert unseal(blob[:40] + bytes([blob[40] ^ 1]) + blob[41:]) is None  # tampered
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "colleague"))  # another user's secret
    assert unseal(blob) is None  # a copied cache's memo is rebuilt, never unpickled


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("epochs: true", "'epochs': True (must be int)"),
        ("streams: [twelve, hands]", "must be one value"),
        ("name: no", "'name': False (YAML read it as true/false; quote it"),  # a run folder named False
    ],
)
def test_a_config_file_value_of_the_wrong_kind_is_refused_naming_the_file(tmp_path, capsys, line, words):
    """YAML has booleans and lists where a flag has neither: `epochs: true` trained one epoch, and a list
    of streams became the stream "['twelve', 'hands']", refused later without naming the file."""
    import pipeline

    config = tmp_path / "train.yaml"
    config.write_text(line + "\n")
    assert pipeline.main(["train", "--cache", str(tmp_path), "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {config}: bad value for ") and words in err, err


def test_a_config_file_may_share_options_through_a_yaml_merge_key(tmp_path):
    """`<<: *base` is how YAML shares a block between configs; the check for keys given twice must not
    mistake it (or a key it overrides) for a repeat."""
    from core.config import read_yaml_mapping

    config = tmp_path / "train.yaml"
    config.write_text("base: &base {lr: 0.01, epochs: 3}\nrun:\n  <<: *base\n  epochs: 5\n")
    assert read_yaml_mapping(config, "options")["run"] == {"lr": 0.01, "epochs": 5}
