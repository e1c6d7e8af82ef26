"""The hands role: a YOLOv8x fine-tuned on hand gestures, run on whole batches of frames.

``YOLO.predict`` goes image by image through letterboxing and result objects; here the fused
``DetectionModel`` runs on a (B, 3, S, S) batch and a batched greedy NMS, equal to ultralytics' own
``non_max_suppression`` for the few boxes kept, picks the boxes with no host-device synchronisation.
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
        preds = self.model(x)  # ((B, 4 + nc, anchors) decoded xywh + class scores, raw head outputs)
        decoded = preds[0] if isinstance(preds, (tuple, list)) else preds
        with torch.autocast(x.device.type, enabled=False):  # NMS in fp32 even under bf16 autocast
            boxes, count = greedy_nms(
                decoded.float(), self.conf_threshold, self.iou_threshold, self.max_hands
            )
        height, width = x.shape[-2], x.shape[-1]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=x.device)
        boxes[..., :4] = (boxes[..., :4] / scale).clamp(0.0, 1.0)  # padding rows stay zero
        return HandOutput(boxes=boxes, count=count)


def greedy_nms(
    prediction: torch.Tensor, conf_threshold: float, iou_threshold: float, max_det: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-agnostic greedy NMS over a whole batch at once: the first ``max_det`` boxes that ultralytics'
    ``non_max_suppression(agnostic=True)`` keeps, in its order, from the same (B, 4 + nc, A) xywh + class
    scores. Ultralytics goes image by image, each image a boolean-mask filter, a torchvision NMS call and
    host-device synchronisations: ~20 kernel launches and 3 waits per frame, paid in every frame that
    holds a hand. With a handful of boxes kept per frame, greedy NMS is ``max_det`` rounds of "take the
    best box left, drop what overlaps it" over every anchor of every frame: a fixed number of batched
    kernels and no synchronisation, so the device never waits on the host here.

    Returns (B, max_det, 6) float32 rows x1 y1 x2 y2 (pixels) conf cls, most confident first, rows from
    ``count`` on zero; and (B,) int64 ``count``."""
    xywh = prediction[:, :4].transpose(1, 2)  # (B, A, 4)
    half = xywh[..., 2:] / 2
    boxes = torch.cat((xywh[..., :2] - half, xywh[..., :2] + half), -1)  # (B, A, 4) x1 y1 x2 y2
    score, cls = prediction[:, 4:].max(1)  # (B, A): each anchor's best class, as ultralytics picks it
    gone = torch.tensor(-1.0, device=prediction.device)  # below any threshold: a dropped anchor
    score = torch.where(score > conf_threshold, score, gone)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])  # (B, A)
    batch = prediction.shape[0]
    kept = torch.zeros(batch, max_det, 6, dtype=torch.float32, device=prediction.device)
    count = torch.zeros(batch, dtype=torch.int64, device=prediction.device)
    for slot in range(max_det):
        best, index = score.max(1)  # (B,)
        found = best > conf_threshold  # once a frame runs out, every later slot of it stays empty
        box = boxes.gather(1, index[:, None, None].expand(-1, 1, 4))  # (B, 1, 4)
        inter = torch.minimum(box[..., 2:], boxes[..., 2:]) - torch.maximum(box[..., :2], boxes[..., :2])
        inter = inter.clamp(min=0).prod(-1)  # (B, A)
        iou = inter / (area.gather(1, index[:, None]) + area - inter)  # torchvision's NMS formula
        score = torch.where(iou > iou_threshold, gone, score).scatter_(1, index[:, None], -1.0)
        row = torch.cat((box[:, 0], best[:, None], cls.gather(1, index[:, None]).float()), 1)  # (B, 6)
        kept[:, slot] = torch.where(found[:, None], row, 0.0)
        count += found
    return kept, count


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
