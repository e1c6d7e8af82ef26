"""The device data path (workers only decode, the device resizes) writes the features the host path writes.

This is what protects the GPU path while no GPU is at hand: the same code runs on CPU here.
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import h5py
import numpy as np
import pytest
import torch
from conftest import tiny_extract_config

from extract.device_path import DeviceFrames, resize_area, resolve_data_path
from extract.run import run

# (width, height) -> square side: shrinking (block means, 2x2 means, fractional areas, one axis 2x),
# enlarging one or both axes, and enlarging one axis while shrinking the other.
SIZES = [
    ((96, 72), 64),
    ((128, 128), 64),
    ((192, 192), 64),
    ((128, 96), 64),
    ((1280, 720), 640),
    ((64, 48), 64),
    ((160, 120), 640),
    ((50, 90), 64),
]


@pytest.mark.parametrize(("wh", "size"), SIZES)
def test_device_resize_gives_the_pixels_of_the_host_resize(wh, size):
    width, height = wh
    rng = np.random.default_rng(width * height)
    frames = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    frames[1] = cv2.GaussianBlur(frames[1], (9, 9), 3)  # smooth content has many rounding ties
    resize = A.Resize(size, size, interpolation=cv2.INTER_AREA, p=1.0)  # the host path's clean copy
    host = np.stack([resize(image=f)["image"] for f in frames])  # (2, S, S, 3)
    device = resize_area(torch.from_numpy(frames), size)  # (2, 3, S, S) in [0, 1]
    levels = (device * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(levels, host)


def _extract(
    data: Path, cache: Path, path: str, image_size: int, **options: object
) -> tuple[Path, dict[str, dict]]:
    cfg = tiny_extract_config(
        data, cache, image_size=image_size, augment_copies=1, data_path=path, batch_size=3, **options
    )
    key_dir = run(cfg).key_dir
    arrays = {}
    for split in ("train", "val"):
        with h5py.File(key_dir / f"{split}.h5", "r") as f:
            arrays[split] = {name: f[name][()] for name in f}
    return key_dir, arrays


def test_device_path_writes_the_host_paths_features_under_the_same_key(tmp_path):
    from data.demo import write_demo_dataset

    data = tmp_path / "data"
    write_demo_dataset(data, size=(64, 48), videos_per_class=1, seed=0)
    # 64x48 frames to 56x56: one axis shrinks, the other grows (the resize itself is tested above)
    host_key, host = _extract(data, tmp_path / "host", "host", 56)
    device_key, device = _extract(data, tmp_path / "device", "device", 56)
    assert host_key.name == device_key.name  # one cache serves both paths
    assert any(a > 0 for a in host["train"]["aug_index"])  # augmented copies went through too
    _assert_same_features(host, device)


def _assert_same_features(want: dict[str, dict], got: dict[str, dict]) -> None:
    for split, fields in want.items():
        assert fields.keys() == got[split].keys()
        for name, expected in fields.items():
            if expected.dtype == np.float16:  # float16 storage: a rounding apart at most
                np.testing.assert_allclose(
                    got[split][name], expected, rtol=2e-3, atol=1e-3, err_msg=f"{split}/{name}"
                )
            else:
                np.testing.assert_array_equal(got[split][name], expected, err_msg=f"{split}/{name}")


@pytest.mark.slow  # torch.compile of six tiny networks on CPU: ~2.5 min
def test_compiled_backbones_write_the_eager_features_under_the_same_key(tmp_path, monkeypatch):
    from data.demo import write_demo_dataset
    from extract import device_path

    data = tmp_path / "data"
    write_demo_dataset(data, size=(64, 48), videos_per_class=1, seed=0)
    eager_key, eager = _extract(data, tmp_path / "eager", "device", 56)
    compiled_roles: list[str] = []
    compile_backbone = device_path.compile_backbone
    monkeypatch.setattr(
        device_path, "compile_backbone", lambda enc: compiled_roles.append(enc.role) or compile_backbone(enc)
    )
    compiled_key, compiled = _extract(data, tmp_path / "compiled", "device", 56, compile=True)
    assert {"cnn", "vit", "dino", "swav", "hands"} <= set(compiled_roles)
    assert compiled_key.name == eager_key.name  # --compile changes how, not what: same cache
    _assert_same_features(eager, compiled)


def test_frames_of_several_sizes_come_back_in_item_order():
    stager = DeviceFrames(torch.device("cpu"), 32)
    small = torch.full((2, 16, 16, 3), 10, dtype=torch.uint8)
    large = torch.full((3, 64, 48, 3), 200, dtype=torch.uint8)
    items = [{"frames": small}, {"error": "x.mp4: bad"}, {"frames": large}, {"frames": small + 1}]
    staged = list(stager.stage([items]))
    assert len(staged) == 1 and staged[0].items is items
    out = stager.frames(staged[0])  # (7, 3, 32, 32)
    levels = (out * 255).round()[:, 0, 0, 0].tolist()
    assert out.shape == (7, 3, 32, 32) and levels == [10, 10, 200, 200, 200, 11, 11]


def test_auto_is_the_device_path_on_cuda_only():
    assert resolve_data_path("auto", torch.device("cuda", 0)) == "device"
    assert resolve_data_path("auto", torch.device("cpu")) == "host"
    assert resolve_data_path("device", torch.device("cpu")) == "device"


def test_hand_boxes_are_decoded_in_fp32_under_bf16_autocast():
    from models.encoders import create_encoder

    enc = create_encoder("tiny_hands", "random", seed=0)
    head = enc.model.model[-1]
    decoded = []
    inner = head._inference
    head._inference = lambda x: decoded.append(inner(x)) or decoded[-1]
    frames = torch.rand(2, 3, 128, 128)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(enc.prepare(frames))
    assert decoded[0].dtype == torch.float32  # the convolutions ran in bf16, the decode did not
    assert out.boxes.dtype == torch.float32


@pytest.mark.filterwarnings("ignore:.*CUDA is not available.*")  # autocast("cuda") on a CPU-only box
def test_cudnn_search_is_on_only_inside_the_encoders_calls_and_the_process_setting_comes_back():
    from extract.encode import encoder_context

    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False  # as training's deterministic run leaves it
        with encoder_context(torch.device("cuda")):
            assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.benchmark is False
        with pytest.raises(RuntimeError), encoder_context(torch.device("cuda")):
            raise RuntimeError("an encoder failed")
        assert torch.backends.cudnn.benchmark is False
        with encoder_context(torch.device("cpu")):
            assert torch.backends.cudnn.benchmark is False  # nothing changes on CPU
    finally:
        torch.backends.cudnn.benchmark = before
