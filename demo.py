"""The built-in demo: synthetic data -> extract (tiny, random weights) -> train + evaluate, offline.

It is the one workflow that spans both stages, so it lives beside the CLI rather than inside either.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from data.config import DataConfig

DEMO_STREAMS = ("twelve", "dino-swav", "hands", "twelve,dino-swav,hands")


@dataclass
class DemoConfig:
    out: Path = field(default=Path("artifacts"), metadata={"help": "folder for demo-data/, cache/ and runs/"})
    epochs: int = field(default=30, metadata={"help": "training epochs"})
    seed: int = field(default=0, metadata={"help": "seed for splits and training"})
    workers: int = field(default=2, metadata={"help": "DataLoader workers for extraction"})
    streams: tuple[str, ...] = field(
        default=DEMO_STREAMS,
        metadata={
            "help": "--streams of each run, one run each, compared in the runs table",
            "metavar": "STREAMS",
        },
    )


def run_demo(cfg: DemoConfig) -> Path:
    """Run the whole product on the synthetic set and return the training run directory."""
    from data.demo import write_demo_dataset
    from data.discovery import discover
    from data.splits import load_splits
    from data.summary import summarize
    from extract.config import ExtractConfig
    from extract.run import run as run_extract
    from train.config import TrainConfig
    from train.fit import _validate, run_train
    from train.runs import list_runs

    trainings = [  # by default each stream alone, then the three fused
        TrainConfig(
            cache=cfg.out / "cache",
            out=cfg.out / "runs",
            streams=s,
            epochs=cfg.epochs,
            batch_size=8,
            seed=cfg.seed,
        )
        for s in cfg.streams
    ]
    for training in trainings:  # --epochs 0 is refused before any data is written or extracted
        _validate(training)
    data_dir = cfg.out / "demo-data"
    if not data_dir.is_dir() or not any(data_dir.iterdir()):
        # Written once: rewriting would change mtimes, hence fingerprints, hence force re-extraction.
        write_demo_dataset(data_dir)
    # Tiny encoders read at most 128 px, so 160 px frames lose nothing and augment/resize far faster.
    # The demo format stores the generator's own hand boxes (annotated_boxes) in place of what a random-weight
    # hand detector would find, so the hand-motion head has a real track to learn from.
    dataset_cfg = DataConfig(data=data_dir, val=0.2, test=0.2, seed=cfg.seed, image_size=160, format="demo")
    extract_cfg = ExtractConfig(
        dataset=dataset_cfg,
        cache_dir=cfg.out / "cache",
        preset="tiny",
        weights="random",
        workers=cfg.workers,
        encoders="hands=none",
    )
    result = run_extract(extract_cfg)
    dataset = discover(data_dir)
    print(summarize(dataset, load_splits(result.key_dir / "splits.json")), flush=True)
    run_dir = Path()
    for training in trainings:
        run_dir = run_train(replace(training, cache=result.key_dir))
    print(list_runs(cfg.out / "runs"), flush=True)
    return run_dir  # the last run; training ends by evaluating best.pt on val and test, with plots
