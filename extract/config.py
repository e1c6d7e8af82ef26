"""Typed configuration of the extraction stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.errors import UserError
from data.config import DataConfig


@dataclass
class ExtractConfig:
    """Everything ``pipeline.py extract`` needs; flags and YAML keys mirror these field names."""

    dataset: DataConfig = field(default_factory=DataConfig)
    cache_dir: Path = field(default=Path("artifacts/cache"), metadata={"help": "root of all caches"})
    preset: Literal["full", "tiny"] = field(
        default="full",
        metadata={"help": "named default model per role: the real architectures, or tiny ones for tests"},
    )
    encoders: str = field(
        default="",
        metadata={
            "help": "per-role model choice over the preset, ROLE=MODEL,... "
            "(e.g. dino=dino_vit_s8,hands=none); "
            "a wrong name lists the valid ones"
        },
    )
    weights_revision: str = field(
        default="",
        metadata={
            "help": "pin a hub revision (branch, tag or commit) per role, ROLE=REV,... (--weights pretrained)"
        },
    )
    dino_heads: bool = field(
        default=False,
        metadata={
            "help": "also store DINO's per-head CLS->patch maps (dino_attention_heads), not just their mean"
        },
    )
    landmarks: str = field(
        default="none",
        metadata={
            "help": "hand landmarks per frame (landmarks, landmark_valid): none; mediapipe (MediaPipe "
            "HandLandmarker, pip install '.[landmarks]', with --landmark-model); or npz:DIR (the landmark "
            "system's <video_id>.npz files: left_hand, right_hand, optional pose); or annotations (the "
            "format's own: --format hagrid's hand landmarks, v2 or v1)",
            "metavar": "none|mediapipe|npz:DIR|annotations",
        },
    )
    landmark_model: str = field(
        default="", metadata={"help": "the hand_landmarker.task file that --landmarks mediapipe runs"}
    )
    weights: Literal["pretrained", "random"] = field(
        default="pretrained",
        metadata={"help": "real pretrained weights, or the same architectures with seeded random weights"},
    )
    weights_seed: int = field(default=0, metadata={"help": "seed of the random weights (--weights random)"})
    crop_mode: Literal["halves", "hands"] = field(
        default="halves",
        metadata={"help": "left/right views: image halves, or YOLO hand boxes falling back to halves"},
    )
    hands_every: int = field(
        default=1,
        metadata={
            "help": "run the hand detector on every N-th frame of a sequence (and its last) only and "
            "interpolate the boxes between; stored per box in hand_detected; part of the cache key"
        },
    )
    dtype: Literal["float16", "float32"] = field(
        default="float16", metadata={"help": "storage dtype of the float feature streams"}
    )
    device: str = field(
        default="auto", metadata={"help": "where encoders run: auto (cuda when available), cpu, cuda, cuda:N"}
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "sequences per encoder batch (frames per batch = this x --frames); unset: 2 on CPU, on "
            "CUDA enough to fill the encoders' micro-batches (8 at 32 frames)"
        },
    )
    data_path: Literal["auto", "host", "device"] = field(
        default="auto",
        metadata={
            "help": "where clean frames are resized: auto (device on CUDA), host (CPU workers), or device "
            "(workers only decode; same features either way, so not in the cache key)"
        },
    )
    decode: Literal["auto", "cpu", "gpu"] = field(
        default="auto",
        metadata={
            "help": "video decoder: cpu (PyAV, threaded), gpu (torchcodec NVDEC, "
            'pip install ".[gpu-decode]"), '
            "auto (gpu for 1080p and above when CUDA and torchcodec are there)"
        },
    )
    compile: bool = field(
        default=False, metadata={"help": "run torch.compile on the encoder backbones (worth it on CUDA)"}
    )
    workers: int | None = field(
        default=None,
        metadata={
            "help": "DataLoader workers that decode and augment frames (0: in this process); unset: 2 on "
            "CPU, on CUDA this rank's cores but 4, at most 12"
        },
    )
    shard_size: int = field(
        default=16, metadata={"help": "sequences per crash-safe shard; a kill loses at most one shard"}
    )
    attention_mass: float = field(
        default=0.6, metadata={"help": "share of DINO attention mass whose patches define the SwAV crop"}
    )
    crop_margin: float = field(
        default=0.1, metadata={"help": "margin added around the SwAV crop, as a fraction of the frame side"}
    )
    crop_source: Literal["attention", "mask"] = field(
        default="attention",
        metadata={
            "help": "SwAV's crop box: the DINO attention-mass rectangle, or the union of the hand masks "
            "(needs --encoders masks=MODEL; frames without a valid mask fall back to attention)"
        },
    )
    fingerprint: Literal["stat", "content"] = field(
        default="stat",
        metadata={
            "help": "what tells a source file changed: 'stat' (size + mtime, free) or 'content' "
            "(BLAKE2b of the bytes, hashed once per file and remembered in <cache-dir>/digests.json)"
        },
    )
    wait_lock: bool = field(
        default=False, metadata={"help": "wait for another extract on the same cache instead of refusing"}
    )

    def __post_init__(self) -> None:
        # Checked before any encoder runs: --shard-size 0 used to fail only when the first shard was written.
        checks = [
            (self.shard_size >= 1, f"--shard-size must be at least 1, got {self.shard_size}"),
            (self.workers is None or self.workers >= 0, f"--workers must be 0 or more, got {self.workers}"),
            (
                self.batch_size is None or self.batch_size >= 1,
                f"--batch-size must be at least 1, got {self.batch_size}",
            ),
            (
                0.0 < self.attention_mass <= 1.0,  # a share of the attention (nan fails too)
                f"--attention-mass must be a share in (0, 1], got {self.attention_mass}",
            ),
            (
                0.0 <= self.crop_margin <= 1.0,
                f"--crop-margin must be a fraction of the frame side in [0, 1], got {self.crop_margin}",
            ),
            (  # here, not only in the stream, so a value read from --config names the file
                self.hands_every >= 1,
                f"--hands-every must be a whole number >= 1 (1: every frame), got {self.hands_every}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
