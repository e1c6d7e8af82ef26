"""The hands role: a YOLOv8x fine-tuned on hand gestures, run on whole batches of frames.

``YOLO.predict`` goes image by image through letterboxing and result objects; here the fused
``DetectionModel`` runs on a (B, 3, S, S) batch and ultralytics' own ``non_max_suppression`` picks the boxes.
Frames are resized (stretched) to S x S, so box coordinates divided by S are already normalised to the
original frame.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .base import Encoder, HandOutput, PreprocessConfig, register_encoder
from .weights import LocalWeights, WeightSource

HANDS_REPO = "lewiswatson/yolov8x-tuned-hand-gestures"
HANDS_FILE = "weights/best.pt"


class YoloHands(Encoder):
    """Frames resized to S x S in [0, 1] (not normalised) -> ``HandOutput`` with up to ``max_hands`` boxes."""

    def __init__(self, model: nn.Module, size: int, max_hands: int = 4) -> None:
        # channels_last: YOLOv8x at 640 on CPU takes 3.5% less CPU per frame one frame at a time and 13%
        # less in batches of 8 (3.02 vs 3.13 and 3.24 vs 3.72 CPU-s; bench/sweep.py); outputs agree to
        # fp32 rounding.
        super().__init__("hands", 6, PreprocessConfig(input_size=(size, size), channels_last=True))
        model.eval()
        # conv+BN folded: ~1.3x faster, same outputs
        self.model = model.fuse(verbose=False).to(memory_format=torch.channels_last)
        _decode_boxes_in_fp32(self.model.model[-1])
        self.class_names: dict[int, str] = dict(model.names)
        self.max_hands = max_hands
        self.conf_threshold = 0.25
        # One box per hand whatever gesture class wins, so NMS is class-agnostic; 0.7 is YOLO.predict's IoU.
        self.iou_threshold = 0.7

    def forward(self, x: torch.Tensor) -> HandOutput:
        from ultralytics.utils.nms import non_max_suppression

        preds = self.model(x)  # ((B, 4 + nc, anchors) decoded xywh + class scores, raw head outputs)
        decoded = preds[0] if isinstance(preds, (tuple, list)) else preds
        with torch.autocast(x.device.type, enabled=False):  # NMS in fp32 even under bf16 autocast
            detections = non_max_suppression(
                decoded.float(),
                conf_thres=self.conf_threshold,
                iou_thres=self.iou_threshold,
                agnostic=True,
                max_det=self.max_hands,
            )  # B x (n, 6): x1 y1 x2 y2 in pixels of x, conf, cls; sorted by conf
        batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=x.device)
        boxes = torch.zeros(batch, self.max_hands, 6, dtype=torch.float32, device=x.device)
        count = torch.zeros(batch, dtype=torch.int64, device=x.device)
        for i, det in enumerate(detections):
            n = min(det.shape[0], self.max_hands)
            det = det[:n, :6].float()
            boxes[i, :n, :4] = (det[:, :4] / scale).clamp(0.0, 1.0)
            boxes[i, :n, 4:] = det[:, 4:6]
            count[i] = n
        return HandOutput(boxes=boxes, count=count)


def _decode_boxes_in_fp32(head: nn.Module) -> None:
    """Run the detect head's box decoding (DFL, anchors x strides, in pixels of a 640 image) in fp32: under
    bf16 autocast its 8-bit mantissa would round coordinates near 640 to steps of 4 pixels. The head's
    convolutions stay in bf16; only the decode of their outputs is lifted. A partial of a module-level
    function, so the model still pickles (bench/naive.py saves it)."""
    head._inference = functools.partial(_fp32_inference, head)


def _fp32_inference(head: nn.Module, x: dict) -> torch.Tensor:
    lifted = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in x.items()}
    with torch.autocast(lifted["boxes"].device.type, enabled=False):
        return type(head)._inference(head, lifted)


def _random_yolo(cfg: str, class_names: dict[int, str]) -> nn.Module:
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    spec = yaml_model_load(cfg)
    spec["nc"] = len(class_names)  # set in the dict: passing nc= logs an "Overriding" line to stdout
    model = DetectionModel(cfg=spec, verbose=False)
    model.names = dict(class_names)
    return model


def _register_yolo(name: str, source: WeightSource, architecture: str) -> None:
    """One hand detector: an ultralytics checkpoint, or its architecture with random weights offline."""

    @register_encoder(name, role="hands", source=source)
    def build(weights: LocalWeights | None) -> Encoder:
        if weights is None:
            # The release's class list is not known offline; one "hand" class keeps the architecture and
            # the (B, K, 6) output identical, only the class head is narrower.
            return YoloHands(_random_yolo(architecture, {0: "hand"}), 640)
        from ultralytics import YOLO

        return YoloHands(YOLO(str(weights[source.files[0]])).model, 640)


# YOLOv8x fine-tuned on hand gestures (the default); smaller one-class hand detectors (n: ~8.7 GFLOPs at
# 640, s: ~28.6, against x's ~258) for when the boxes matter less than the extraction bill.
_register_yolo("yolov8x_hands", WeightSource(repo=HANDS_REPO, files=(HANDS_FILE,)), "yolov8x.yaml")
_register_yolo(
    "yolov8s_hands", WeightSource(repo="Bingsu/adetailer", files=("hand_yolov8s.pt",)), "yolov8s.yaml"
)
_register_yolo(
    "yolov8n_hands", WeightSource(repo="Bingsu/adetailer", files=("hand_yolov8n.pt",)), "yolov8n.yaml"
)


@register_encoder("tiny_hands", role="hands")
def tiny_hands(weights: LocalWeights | None) -> Encoder:
    return YoloHands(_random_yolo("yolov8n.yaml", {0: "hand"}), 128)
