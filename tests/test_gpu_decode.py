"""--decode cpu|gpu|auto: which decoder a video gets, and the one-line refusal where the GPU one cannot."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import tiny_extract_config
from video_fixtures import moving_frames, write_video

import data.gpu_decode as gpu_decode
import extract.run
from core.errors import UserError
from data.gpu_decode import INSTALL, check_decode, resolve_decode, use_gpu
from data.video import read_video


@pytest.mark.parametrize(
    ("choice", "size", "cuda", "torchcodec", "gpu"),
    [
        ("auto", (1920, 1080), True, True, True),
        ("auto", (1080, 1920), True, True, True),  # portrait 1080p
        ("auto", (3840, 2160), True, True, True),
        ("auto", (1920, 1079), True, True, False),
        ("auto", (1280, 720), True, True, False),
        ("auto", (1920, 1080), False, True, False),
        ("auto", (1920, 1080), True, False, False),
        ("cpu", (3840, 2160), True, True, False),
        ("gpu", (320, 240), True, True, True),
    ],
)
def test_auto_decodes_on_the_gpu_only_from_1080p_with_cuda_and_torchcodec(
    choice, size, cuda, torchcodec, gpu
):
    assert use_gpu(choice, *size, cuda=cuda, torchcodec=torchcodec) is gpu


def test_gpu_decode_without_torchcodec_names_the_install_command():
    with pytest.raises(UserError) as err:
        check_decode("gpu", "cuda", cuda=True, torchcodec=False)
    assert INSTALL in str(err.value) and "\n" not in str(err.value)


def test_gpu_decode_without_cuda_is_refused_and_auto_falls_back_to_cpu():
    with pytest.raises(UserError, match="--decode gpu needs a CUDA GPU"):
        resolve_decode("gpu", "cpu")
    assert resolve_decode("auto", "cpu") == "cpu"
    check_decode("auto", "cpu", cuda=False, torchcodec=False)  # auto never refuses


def _video(path, width, height, frames=3):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_auto_sends_a_1080p_video_to_the_gpu_decoder_and_a_small_one_to_pyav(tmp_path, monkeypatch):
    calls = []

    def fake_gpu(path, wanted, device="cuda"):
        calls.append(path.name)
        return {i: np.zeros((1080, 1920, 3), np.uint8) for i in wanted}

    monkeypatch.setattr(gpu_decode, "read_video_gpu", fake_gpu)
    small = read_video(_video(tmp_path / "small.mp4", 64, 48), [0, 2], 3, decode="auto")
    assert calls == [] and small[2].shape == (48, 64, 3) and small[2].mean() > 60  # PyAV's frame 2
    read_video(_video(tmp_path / "hd.mp4", 1920, 1080, frames=1), [0], 1, decode="auto")
    assert calls == ["hd.mp4"]


def _torchcodec_loads() -> bool:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401 - loads its FFmpeg libraries
    except Exception:  # noqa: BLE001 - not installed, or no FFmpeg libraries it can load
        return False
    return True


needs_torchcodec = pytest.mark.skipif(
    not _torchcodec_loads(), reason=f"torchcodec or its FFmpeg libraries are missing ({INSTALL})"
)


@needs_torchcodec
def test_torchcodec_reader_gives_pyavs_frames_for_scattered_indices(tmp_path):
    # The GPU reader's own code (indices, layout, host copy) run on torchcodec's CPU decoder: an H.264
    # stream with B-frames, read at scattered indices, must give PyAV's frames within codec tolerance.
    path = write_video(tmp_path / "b.mp4", moving_frames(40), "libx264", gop=12, options={"bf": "2"})
    wanted = [0, 3, 4, 17, 30, 39]
    pyav = read_video(path, wanted, 40, decode="cpu")
    codec = gpu_decode.read_video_gpu(path, wanted, device="cpu")
    assert sorted(codec) == wanted
    for i in wanted:
        assert codec[i].shape == pyav[i].shape == (48, 64, 3) and codec[i].dtype == np.uint8
        errors = {j: np.abs(codec[i].astype(int) - pyav[j].astype(int)).mean() for j in wanted}
        assert errors[i] < 2 and min(errors, key=errors.get) == i  # its own frame, no other


@needs_torchcodec
@pytest.mark.skipif(
    not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
    reason="this PyAV cannot write a display matrix (VideoStream.set_display_rotation)",
)
@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_torchcodec_reader_turns_phone_videos_upright_as_pyav_does(tmp_path, degrees):
    scene = np.zeros((48, 64, 3), np.uint8)  # quadrants of distinct colours: a wrong turn moves them far
    scene[:24, :32], scene[:24, 32:] = (250, 30, 30), (30, 250, 30)
    scene[24:, :32], scene[24:, 32:] = (30, 30, 250), (240, 240, 40)
    path = write_video(tmp_path / "phone.mp4", [scene] * 3, "libx264", rotation=degrees, options={"crf": "4"})
    pyav = read_video(path, [0, 2], 3, decode="cpu")
    codec = gpu_decode.read_video_gpu(path, [0, 2], device="cpu")
    for i in (0, 2):
        assert codec[i].shape == pyav[i].shape
        assert np.abs(codec[i].astype(int) - pyav[i].astype(int)).mean() < 2


def test_extract_refuses_gpu_decoding_on_cpu_before_planning_or_building_encoders(
    small_demo, tmp_path, monkeypatch
):
    def never(*args, **kwargs):
        raise AssertionError("reached work that --decode gpu should have stopped before")

    monkeypatch.setattr(extract.run, "build_encoders", never)
    monkeypatch.setattr(extract.run, "make_plan", never)
    cfg = tiny_extract_config(small_demo, tmp_path / "cache", decode="gpu", device="cpu")
    with pytest.raises(UserError, match="--decode gpu needs a CUDA GPU"):
        extract.run.run(cfg)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
