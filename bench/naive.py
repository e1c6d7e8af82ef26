"""The reference the pipeline is measured against: the original system's plain per-image loop.

Per frame and per view it calls each encoder on one image with the libraries' stock preprocessing:
``ViTImageProcessor`` for the ViT, timm's ``create_transform(resolve_model_data_config(model))`` for the
CNN and DINO, torchvision transforms for SwAV, and ``YOLO.predict`` on one image for the hands. It runs
the very same modules as the pipeline (same weights, random or real). The CNNs and YOLO are copied back
to the stock NCHW layout, because channels_last is one of the pipeline's optimisations, not the
original's. Outputs are numerically close to the pipeline's but not equal (timm's eval transform
centre-crops, the pipeline resizes whole frames): it is a speed reference, not a numeric one.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image

from extract.channels import assemble_channels
from extract.crops import attention_box
from models.encoders import Encoder
from models.encoders.swav import SWAV_MEAN, SWAV_STD


def _stock_layout(module: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(module).to(memory_format=torch.contiguous_format)


def _yolo(detection_model: torch.nn.Module, workdir: Path):  # -> ultralytics.YOLO
    """An ultralytics ``YOLO`` around the same DetectionModel, loaded the stock way from a .pt file."""
    from ultralytics import YOLO

    path = workdir / "hands.pt"
    torch.save({"model": _stock_layout(detection_model), "train_args": {}}, path)
    return YOLO(str(path), task="detect")


class NaiveExtractor:
    """One image, one view, one encoder call at a time. ``timings`` collects seconds per stage."""

    def __init__(
        self, encoders: dict[str, Encoder], image_size: int, attention_mass: float, crop_margin: float
    ) -> None:
        import timm.data
        import torchvision.transforms as T
        from transformers import ViTImageProcessor
        from transformers.image_utils import PILImageResampling

        self.image_size = image_size
        self.attention_mass, self.crop_margin = attention_mass, crop_margin
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-naive-")
        vit = encoders["vit"]
        h, w = vit.preprocess.input_size
        # dima806's preprocessor_config.json: ViTImageProcessor, 224 x 224, bilinear, mean = std = 0.5.
        self.vit_processor = ViTImageProcessor(
            size={"height": h, "width": w},
            resample=PILImageResampling.BILINEAR,
            image_mean=list(vit.preprocess.mean),
            image_std=list(vit.preprocess.std),
        )
        self.vit = vit.model  # ViTForImageClassification
        self.cnn = _stock_layout(encoders["cnn"].model)
        self.cnn_transform = timm.data.create_transform(**timm.data.resolve_model_data_config(self.cnn))
        self.dino = encoders["dino"]  # the encoder itself: its attention hook is the original's trick too
        self.dino_transform = timm.data.create_transform(
            **timm.data.resolve_model_data_config(self.dino.model)
        )
        swav = encoders["swav"]
        self.swav = _stock_layout(swav.model)
        self.swav_transform = T.Compose(
            [T.Resize(swav.preprocess.input_size), T.ToTensor(), T.Normalize(SWAV_MEAN, SWAV_STD)]
        )
        hands = encoders["hands"]
        self.hands = _yolo(hands.model, Path(self._tmp.name))
        # The encoders' device: each image goes there on its own, as the original loop moved them.
        self.device = next(vit.parameters()).device
        self.hands_kwargs = dict(
            device=str(self.device),
            imgsz=hands.preprocess.input_size[0],
            conf=hands.conf_threshold,
            iou=hands.iou_threshold,
            agnostic_nms=True,
            max_det=hands.max_hands,
            verbose=False,
        )
        self.timings: dict[str, float] = {}
        self.threads = torch.get_num_threads()

    def _timed(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - start
        return now

    @torch.inference_mode()
    def frame(self, path: Path) -> dict[str, np.ndarray]:
        """One JPEG -> the per-frame arrays, as the original loop computed them."""
        t = time.perf_counter()
        with Image.open(path) as img:
            image = img.convert("RGB").resize((self.image_size, self.image_size), Image.BOX)
        t = self._timed("decode", t)
        half = self.image_size // 2
        views = {
            "left": image.crop((0, 0, half, self.image_size)),
            "right": image.crop((half, 0, self.image_size, self.image_size)),
            "whole": image,
        }
        result = self.hands.predict(image, **self.hands_kwargs)[0]
        # ultralytics' predictor calls torch.set_num_threads(cpu_count - 1): 1 thread on a 2-core machine,
        # for everything that runs after it in the process. The reference gets its threads back, so it
        # is slower only by its own style, not by that side effect.
        torch.set_num_threads(self.threads)
        det = result.boxes
        boxes = np.zeros((self.hands_kwargs["max_det"], 6), np.float32)
        det = det.cpu()
        boxes[: len(det), :4] = det.xyxyn.numpy()
        boxes[: len(det), 4], boxes[: len(det), 5] = det.conf.numpy(), det.cls.numpy()
        t = self._timed("hands", t)
        vit, cnn = {}, {}
        for name, view in views.items():
            pixels = self.vit_processor(images=view, return_tensors="pt")["pixel_values"].to(self.device)
            vit[name] = self.vit.vit(pixel_values=pixels).last_hidden_state.mean(1)  # (1, D)
            t = self._timed("vit", t)
            cnn[name] = self.cnn(self.cnn_transform(view)[None].to(self.device))  # (1, C)
            t = self._timed("cnn", t)
        dino = self.dino(self.dino_transform(image)[None].to(self.device))
        t = self._timed("dino", t)
        box = attention_box(dino.attention, self.attention_mass, self.crop_margin)[0].cpu()  # (4,) normalised
        crop = image.crop(tuple(float(v) * self.image_size for v in box))
        swav = self.swav(self.swav_transform(crop)[None].to(self.device)).cpu()  # (1, 2048)
        self._timed("swav", t)
        return {
            "embeddings": assemble_channels(vit, cnn)[0].cpu().numpy(),
            "dino_cls": dino.cls[0].cpu().numpy(),
            "dino_attention": dino.attention[0].cpu().numpy(),
            "swav": swav[0].numpy(),
            "swav_boxes": box.numpy(),
            "hand_boxes": boxes,
            "hand_count": np.uint8(len(det)),
        }

    def sequence(self, paths: list[Path], out: Path) -> None:
        """Encode the frames of one sequence and write them, uncompressed float16, to one HDF5 file."""
        rows = [self.frame(p) for p in paths]
        t = time.perf_counter()
        with h5py.File(out, "w") as h5:
            for name in rows[0]:
                arr = np.stack([r[name] for r in rows])
                h5[name] = arr.astype(np.float16) if arr.dtype == np.float32 else arr
        self._timed("write", t)

    def close(self) -> None:
        self._tmp.cleanup()
