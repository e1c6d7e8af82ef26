"""Tiny replicas of the corpora the formats read, written by the tests (32x24 frames, 10-frame videos).

Each writer returns the samples the format must parse out of it: key -> (label, start, end, subject,
split), bounds 0-based inclusive, written out by hand from the corpus's own conventions.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
from PIL import Image

Expected = dict[str, tuple[str, int, int, str | None, str | None]]


def frame(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((24, 32, 3), value % 256, np.uint8)
    pixels[:, : 4 + value % 28] = 255 - value % 256  # a bar whose width tracks the value
    Image.fromarray(pixels).save(path)
    return path


def video(path: Path, count: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for i in range(count):
            pixels = np.full((24, 32, 3), 20 * i % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def jester(root: Path) -> Expected:
    root.mkdir(parents=True, exist_ok=True)
    (root / "jester-v1-labels.csv").write_text("Thumb Up\nSwiping Left\n")  # file order = label index
    (root / "jester-v1-train.csv").write_text("1;Swiping Left\n2;Thumb Up\n")
    (root / "jester-v1-validation.csv").write_text("3;Thumb Up\n")
    (root / "jester-v1-test.csv").write_text("4\n")
    for clip, count in {"1": 5, "2": 4, "3": 6, "4": 3}.items():
        for n in range(1, count + 1):
            frame(root / "20bn-jester-v1" / clip / f"{n:05d}.jpg", 10 * n)
    return {
        "Swiping Left/1": ("Swiping Left", 0, 4, None, "train"),
        "Thumb Up/2": ("Thumb Up", 0, 3, None, "train"),
        "Thumb Up/3": ("Thumb Up", 0, 5, None, "val"),
    }


IPN_A, IPN_B = "1CM1_1_R_#217", "4CM2_2_L_#30"


def ipn(root: Path, lines: list[str] | None = None) -> Expected:
    for name, count in {IPN_A: 12, IPN_B: 9}.items():
        for n in range(1, count + 1):
            frame(root / "frames" / name / f"{name}_{n:06d}.jpg", 15 * n)
    lines = lines or [f"{IPN_A},G01,3,1,4,4", f"{IPN_A},G02,4,6,12,7", f"{IPN_B},G01,3,2,5,4"]
    (root / "Annot_List.txt").write_text("video,label,id,t_start,t_end,frames\n" + "\n".join(lines) + "\n")
    return {
        f"G01/{IPN_A}@0-3": ("G01", 0, 3, "1CM1", None),
        f"G02/{IPN_A}@5-11": ("G02", 5, 11, "1CM1", None),
        f"G01/{IPN_B}@1-4": ("G01", 1, 4, "4CM2", None),
    }


def egogesture(root: Path) -> Expected:
    expected: Expected = {}
    for subject, split in {"Subject01": "val", "Subject02": "test", "Subject03": "train"}.items():
        for n in range(1, 11):
            frame(root / "images" / subject / "Scene1" / "Color" / "rgb1" / f"{n:06d}.jpg", 9 * n)
        labels = root / "labels-final-revised1" / subject / "Scene1" / "Group1.csv"
        labels.parent.mkdir(parents=True, exist_ok=True)
        labels.write_text("5,2,4\n12,6,10\n")
        recording = f"{subject}/Scene1/rgb1"
        expected[f"5/{recording}@1-3"] = ("5", 1, 3, subject, split)
        expected[f"12/{recording}@5-9"] = ("12", 5, 9, subject, split)
    return expected


def nvgesture(root: Path) -> Expected:
    video(root / "Video_data" / "class_01" / "subject13_r0" / "sk_color.avi", 10)
    video(root / "Video_data" / "class_02" / "subject14_r1" / "sk_color.avi", 10)
    line = (
        "path:./Video_data/class_{c:02d}/{s} depth:sk_depth:{a}:{b} color:sk_color:{a}:{b} "
        "duo_left:duo_left:1:9 label:{c}"
    )
    (root / "nvgesture_train_correct_cvpr2016_v2.lst").write_text(
        line.format(c=1, s="subject13_r0", a=2, b=6) + "\n"
    )
    (root / "nvgesture_test_correct_cvpr2016_v2.lst").write_text(
        line.format(c=2, s="subject14_r1", a=0, b=10) + "\n"
    )
    return {
        "1/Video_data/class_01/subject13_r0@2-5": ("1", 2, 5, "subject13", "train"),
        "2/Video_data/class_02/subject14_r1": ("2", 0, 9, "subject14", "test"),
    }


def hagrid(root: Path) -> Expected:
    notes = {
        ("train", "call"): {"a1": "u1", "a2": "u2"},
        ("val", "like"): {"b1": "u3"},
        ("test", "call"): {"c1": "u4"},
        ("train", "like"): {"b2": "u1"},
    }
    expected: Expected = {}
    for (split, label), images in notes.items():
        data = {}
        for i, (image, user) in enumerate(images.items()):
            frame(root / "hagrid_dataset" / label / f"{image}.jpg", 40 * i + 20)
            data[image] = {
                "bboxes": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.2, 0.2]],
                "labels": [label, "no_gesture"],
                "user_id": user,
                "united_bbox": [[0.1, 0.2, 0.6, 0.5]],
                "united_label": [label],
                "hand_landmarks": [[[0.15, 0.25]] * 21, []],
            }
            expected[f"{label}/{image}"] = (label, 0, 0, user, split)
        path = root / "annotations" / split / f"{label}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    return expected


def hagrid_v1(root: Path, download_script: bool = False) -> Expected:
    """HaGRID v1 as its 30k sample unpacks: ``ann_train_val/`` and ``ann_test/`` (the annotations of every
    class), ``hagrid_30k/train_val_<class>/`` and ``hagrid_30k/test/<class>/`` (images of the classes
    downloaded); or, ``download_script``, as its download.py saves the archives: ``train/ann_train_val/``,
    ``train/train_val_<class>/``, ``test/ann_test/``, ``test/<class>/``. ``dislike`` was annotated but its
    archive not unpacked, and ``call``'s ``a9`` has no file."""
    notes = {
        ("ann_train_val", "train_val_call", "call"): {"a1": "u1", "a2": "u2", "a9": "u2"},
        ("ann_train_val", "train_val_like", "like"): {"b1": "u3"},
        ("ann_train_val", "train_val_dislike", "dislike"): {"d1": "u1", "d2": "u5"},
        ("ann_test", "test/call", "call"): {"c1": "u4"},
    }
    expected: Expected = {}
    for (folder, images, label), ids in notes.items():
        split = "test" if folder == "ann_test" else "train"
        part = root / split if download_script else root
        images_at = (
            part / (label if split == "test" else images) if download_script else root / "hagrid_30k" / images
        )
        data = {}
        for i, (image, user) in enumerate(ids.items()):
            data[image] = {"bboxes": [[0.1, 0.2, 0.3, 0.4]], "labels": [label], "user_id": user}
            if label == "dislike" or image == "a9":
                continue
            frame(images_at / f"{image}.jpg", 40 * i + 20)
            expected[f"{label}/{image}"] = (label, 0, 0, user, split)
        path = part / folder / f"{label}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    return expected


def wlasl(root: Path) -> Expected:
    video(root / "videos" / "00001.mp4", 10)
    video(root / "videos" / "00003.mp4", 8)
    video(root / "videos" / "00004.mp4", 6)  # a YouTube instance as preprocessing cut it: 6 frames
    youtube = "https://www.youtube.com/watch?v=0UsjUE-TXns"
    index = [
        {
            "gloss": "book",
            "instances": [
                {"video_id": "00001", "frame_start": 2, "frame_end": 5, "signer_id": 7, "split": "train"},
                {"video_id": "00002", "frame_start": 1, "frame_end": -1, "signer_id": 8, "split": "val"},
            ],
        },
        {
            "gloss": "drink",
            "instances": [
                {"video_id": "00003", "frame_start": 1, "frame_end": -1, "signer_id": 9, "split": "test"},
                {
                    "video_id": "00004",
                    "frame_start": 1201,
                    "frame_end": 1206,
                    "signer_id": 9,
                    "split": "train",
                    "url": youtube,
                },
            ],
        },
    ]
    (root / "WLASL_v0.3.json").write_text(json.dumps(index))
    return {
        "book/00001@1-4": ("book", 1, 4, "7", "train"),
        "drink/00003": ("drink", 0, 7, "9", "test"),
        "drink/00004": ("drink", 0, 5, "9", "train"),
    }


def manifest(root: Path) -> tuple[Path, Expected]:
    video(root / "clips" / "take1.mp4", 10)
    for n in (1, 2, 10, 11):  # unpadded: a name sort would put 10 before 2
        frame(root / "frames" / "take2" / f"img_{n}.png", n)
    path = root / "samples.csv"
    path.write_text(
        "path,label,start,end,subject,split\n"
        "clips/take1.mp4,wave,0,4,s1,\n"
        "clips/take1.mp4,clap,5,,s1,\n"
        "frames/take2,wave,,,s2,\n"
    )
    return path, {
        "wave/clips/take1.mp4@0-4": ("wave", 0, 4, "s1", None),
        "clap/clips/take1.mp4@5-9": ("clap", 5, 9, "s1", None),
        "wave/frames/take2": ("wave", 0, 3, "s2", None),
    }
