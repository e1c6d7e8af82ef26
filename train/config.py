"""Config dataclasses of the training-side commands; the CLI builds flags and YAML keys from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


def _inputs(help: str) -> Any:
    """The positional INPUT arguments of a command (none by default)."""
    return field(default=(), metadata={"help": help, "positional": True})


@dataclass
class TrainConfig:
    """`pipeline.py train`: fit the heads on one extraction key's cache."""

    cache: Path = field(metadata={"help": "cache key directory printed by `extract` (holds manifest.json)"})
    out: Path = _f(Path("artifacts/runs"), "directory that receives one folder per run")
    name: str | None = _f(None, "run folder name (default: <streams>-s<seed>-<time>)")
    streams: str = _f(
        "all",
        "head streams joined by ',' or '+' (twelve, dino-swav, hands, or any per-frame vector field of the "
        "cache; '+' in a sweep grid, where ',' separates values), or all: every head the cache can feed, "
        "fused",
    )
    epochs: int = _f(30, "maximum number of epochs")
    batch_size: int = _f(32, "sequences per batch")
    lr: float = _f(3e-3, "maximum learning rate of the OneCycle schedule")
    weight_decay: float = _f(1e-4, "RAdam (decoupled) weight decay")
    label_smoothing: float = _f(0.0, "cross-entropy label smoothing in [0, 1)")
    grad_clip: float = _f(1.0, "max gradient norm (0 disables clipping)")
    patience: int = _f(10, "stop after this many epochs without improvement (0 disables)")
    metric: Literal["acc", "f1", "loss"] = _f("acc", "validation metric that picks best.pt")
    seed: int = _f(0, "seed for weights, shuffling and dropout")
    device: str = _f("auto", "compute device: auto (cuda when available), cpu, cuda, cuda:N")
    workers: int = _f(0, "DataLoader worker processes (0: read in a background thread, best on few cores)")
    preload: bool = _f(True, "decode the cache into memory once when it fits")
    hidden: int = _f(128, "hidden size of the heads")
    dropout: float = _f(0.2, "dropout probability in the heads")
    folds: str | None = _f(
        None, "cross-validate: K folds over train+val (grouped by subject), or 'loso' (test held out)"
    )
    signer_adversarial: float = field(
        default=0.0,
        metadata={
            "help": "λ of a gradient-reversal signer classifier on the sequence embedding; 0: off, the flag "
            "alone: 0.5. Signers are the cache's subjects, or --pseudo-signers",
            "const": 0.5,
        },
    )
    supcon: float = field(
        default=0.0,
        metadata={
            "help": "weight of a supervised contrastive loss on the normalised embedding; 0: off, the flag "
            "alone: 0.1",
            "const": 0.1,
        },
    )
    supcon_temperature: float = _f(0.07, "temperature τ of the supervised contrastive loss")
    pseudo_signers: int = _f(
        0, "K: when the cache knows no subjects, K-means over the sequences' features names K pseudo-signers"
    )


@dataclass
class EvaluateConfig:
    """`pipeline.py evaluate`: metrics, attention statistics and plots of a checkpoint on one split."""

    checkpoint: Path = field(metadata={"help": "checkpoint file (best.pt or last.pt of a run)"})
    split: Literal["val", "test"] = _f("val", "cache split to evaluate")
    cache: Path | None = _f(None, "cache key directory (default: the one the checkpoint was trained on)")
    device: str = _f("auto", "compute device: auto (cuda when available), cpu, cuda, cuda:N")
    out: Path | None = _f(
        None,
        "directory for report.json and plots (default: the checkpoint's folder for best.pt, whose report "
        "the run's is; eval-<name> beside any other checkpoint, so last.pt's results never mix into it)",
    )


@dataclass
class PredictConfig:
    """`pipeline.py predict`: classify videos or frame folders with a checkpoint."""

    checkpoint: Path = field(metadata={"help": "checkpoint file (best.pt of a run)"})
    inputs: tuple[str, ...] = _inputs(
        "video files, frame folders, folders of frame folders (one clip each), FOLDER/<video_id> "
        "(one video of a folder of <video_id>_frame_<n> frames) or id lists (.csv/.txt) to classify"
    )
    windows: str | None = _f(
        None, "W:S: classify sliding windows of W frames every S frames; prints a timeline"
    )
    top_k: int = _f(3, "number of classes to print per input")
    device: str = _f("auto", "compute device: auto (cuda when available), cpu, cuda, cuda:N")
    landmarks_npz: Path | None = field(
        default=None,
        metadata={
            "help": "folder of the inputs' landmark files (<input name>.npz, as the landmark system exports "
            "them), for a checkpoint whose cache imported landmarks with --landmarks npz:DIR; without it "
            "their landmarks are absent",
            "metavar": "DIR",
        },
    )
    csv: Path | None = _f(
        None,
        "also write the predictions to this CSV file: a row per input (per window with --windows) with its "
        "id and the top-k classes and probabilities",
    )


@dataclass
class RunsConfig:
    """`pipeline.py runs`: compare finished runs."""

    runs_dir: Path = _f(Path("artifacts/runs"), "directory holding the run folders")
    sort: str | None = _f(None, "sort groups by this metric, best first (e.g. val_acc, test_acc, best)")
    where: tuple[str, ...] = field(
        default=(), metadata={"help": "keep runs whose config has these values", "metavar": "FLAG=VALUE"}
    )
    csv: Path | None = _f(None, "also write the grouped table to this CSV file")


@dataclass
class ShowConfig:
    """`pipeline.py show`: one video's frames with the chosen overlays, as an MP4."""

    cache: Path = field(metadata={"help": "cache key directory (holds manifest.json)"})
    out: Path = field(metadata={"help": "the MP4 file to write"})
    video: tuple[str, ...] = _inputs(
        "the video: a video file, a frame folder, FOLDER/<video_id> for a folder of "
        "<video_id>_frame_<n> frames, or a sequence id of the cache (<class>/<video_id>[@start-end])"
    )
    masks: bool = field(default=False, metadata={"help": "draw the hand masks"})
    boxes: bool = field(
        default=False,
        metadata={"help": "draw the hand detector's boxes (else the dataset's annotated ones, if cached)"},
    )
    attention: bool = field(default=False, metadata={"help": "draw DINO's attention and its crop region"})
    landmarks: bool = field(
        default=False, metadata={"help": "draw the hand landmarks, when the cache has them"}
    )
    fps: float = field(default=8.0, metadata={"help": "frames per second of the MP4"})
    device: str = field(
        default="auto", metadata={"help": "compute device for re-extraction: auto, cpu, cuda"}
    )
