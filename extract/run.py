"""The extraction run: compute only the missing sequences, shard by shard, then assemble the splits."""

from __future__ import annotations

import errno
import json
import math
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm import tqdm

from cache.assemble import assemble_splits
from cache.lock import CacheLock
from cache.manifest import read_manifest
from cache.schema import RECORD_ERRORS, SCHEMA_VERSION, Dims, read_attrs
from cache.shards import ShardStore
from core.atomic import write_json_atomic
from core.config import config_to_dict, save_config
from core.device import resolve_device
from core.errors import BadInputError, UserError
from core.ranks import EXTRACT_TIMEOUT, cores_per_rank, process_group
from data.gpu_decode import resolve_decode
from data.splits import dataset_subjects, save_splits, split_params
from extract.config import ExtractConfig
from extract.device_path import DeviceFrames, resolve_data_path
from extract.distributed import (
    SharedProgress,
    describe_deal,
    index_after_extraction,
    merge_ranks,
    plan_job,
)
from extract.encode import FrameEncoder, default_micro_batch
from extract.plan import Plan, PlanItem, encoder_models, make_augmenter, make_plan
from extract.shard_writer import ShardWriter
from extract.source import SequenceFrames, decode_loader, worker_context
from extract.streams import resolve_revisions
from models.encoders import Encoder, create_encoder

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass
class ExtractResult:
    key_dir: Path
    computed: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)
    forward_calls: int = 0


def with_loader_defaults(cfg: ExtractConfig, device: torch.device) -> ExtractConfig:
    """``cfg`` with an unset ``batch_size`` and ``workers`` sized for ``device``.

    On CPU, 2 and 2: the encoders need the cores, and a batch of 2 sequences already fills their CPU
    micro-batches. On CUDA a batch fills the largest micro-batch (256 frames: 8 sequences of 32, as the
    H100 figures ran), and the workers take this rank's cores but 4 (the main process, its pinning
    thread, the shard writer), at most 12: replaying the H100 run's worker costs (bench/loader.py), 12
    workers kept the encoders fed where the 8 it ran with left them waiting for data.
    """
    if device.type == "cuda":
        batch = math.ceil(max(default_micro_batch(device).values()) / cfg.dataset.frames)
        workers = max(1, min(12, cores_per_rank() - 4))
    else:
        batch, workers = 2, 2
    return replace(
        cfg,
        batch_size=batch if cfg.batch_size is None else cfg.batch_size,
        workers=workers if cfg.workers is None else cfg.workers,
    )


def build_encoders(cfg: ExtractConfig) -> dict[str, Encoder]:
    """Role -> frozen encoder chosen by the preset and ``--encoders`` (roles set to none are not built).

    Missing pretrained weights raise WeightsUnavailableError. Two roles choosing one model at one revision
    share one built encoder (``mask_features`` and ``dino`` both on DINOv2)."""
    pins = resolve_revisions(cfg.weights_revision)
    built: dict[tuple[str, str | None], Encoder] = {}
    out: dict[str, Encoder] = {}
    for role, model in encoder_models(cfg).items():
        which = (model, pins.get(role))
        if which not in built:
            built[which] = create_encoder(model, cfg.weights, cfg.weights_seed, which[1])
        out[role] = built[which]
    return out


def make_frame_encoder(
    encoders: dict[str, Encoder], plan: Plan, device: torch.device, compile: bool = False
) -> FrameEncoder:
    return FrameEncoder(encoders, device, plan.options, compile=compile)


def stream_dims(frame_encoder: FrameEncoder, cfg: ExtractConfig) -> Dims:
    """The cache's dataset layout: every field the active streams declare, sized by their encoders."""
    return Dims(frames=cfg.dataset.frames, fields=frame_encoder.fields, float_dtype=cfg.dtype)


def _versions() -> dict[str, str]:
    import albumentations
    import h5py
    import timm
    import transformers
    import ultralytics

    mods = {
        "torch": torch,
        "timm": timm,
        "transformers": transformers,
        "ultralytics": ultralytics,
        "albumentations": albumentations,
        "h5py": h5py,
        "numpy": np,
    }
    return {name: m.__version__ for name, m in mods.items()}


def _meta(cfg: ExtractConfig, plan: Plan, dims: Dims) -> dict[str, Any]:
    from extract.streams import get_stream

    extra: dict[str, Any] = {"channel_layout": [], "stream_options": asdict(plan.options)}
    for name in dims.streams:
        extra.update(get_stream(name).meta(plan.options))
    return {
        "schema_version": SCHEMA_VERSION,
        "key": plan.key,
        "key_spec": plan.key_spec,
        "dims": dims.to_json(),
        "class_names": plan.dataset.classes,
        **extra,
        "encoders": {
            s: e for stream in plan.key_spec["streams"].values() for s, e in stream["encoders"].items()
        },
        "config": _recorded_config(cfg),
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _recorded_config(cfg: ExtractConfig) -> dict[str, Any]:
    """The config the manifest records, with the dataset's paths made absolute: plots, ``show`` and the
    other-corpus check re-read the dataset from wherever they run, not from extract's working folder."""
    out = config_to_dict(cfg)
    for f in fields(cfg.dataset):
        value = getattr(cfg.dataset, f.name)
        if isinstance(value, Path):
            out[f.name] = str(value.resolve())
    return out


def _record(item: PlanItem, label: int, arrays: dict[str, np.ndarray], dims: Dims) -> dict[str, Any]:
    seq = item.sequence
    floats = set(dims.float_fields)
    rec: dict[str, Any] = {k: v.astype(dims.float_dtype) if k in floats else v for k, v in arrays.items()}
    rec.update(
        labels=label,
        frame_indices=seq.indices.astype(np.int32),
        valid=seq.valid.astype(np.uint8),
        sequence_ids=seq.sequence_id,
        content_ids=item.content_id,
        aug_index=seq.aug_index,
    )
    return rec


def _write_shard(store: ShardStore, records: list[dict[str, Any]], dims: Dims, meta: dict[str, Any]) -> None:
    try:
        store.write_shard(records, dims, meta)
    except OSError as e:
        if e.errno in _DISK_ERRNOS:
            raise UserError(
                f"cannot write a shard under {store.key_dir}: {e.strerror}; free disk space "
                "and re-run the same command (finished shards are kept)"
            ) from None
        raise


def extract_missing(
    todo: list[PlanItem],
    plan: Plan,
    cfg: ExtractConfig,
    store: ShardStore,
    frame_encoder: FrameEncoder,
    dims: Dims,
    meta: dict[str, Any],
    progress: SharedProgress | None = None,
) -> tuple[int, list[str]]:
    """Encode ``todo`` in batches of sequences and write a shard every ``shard_size`` sequences.

    ``progress`` (a torchrun job's bar over all ranks) replaces this process's own bar.
    """
    d = cfg.dataset
    device = frame_encoder.device
    # The device data path (extract/device_path.py): workers only decode, the device resizes.
    stager = (
        DeviceFrames(device, d.image_size) if resolve_data_path(cfg.data_path, device) == "device" else None
    )
    source = SequenceFrames(
        [it.sequence for it in todo],
        make_augmenter(cfg, plan.dataset.classes),
        d.augment_seed,
        resize_clean=stager is None,
        decode=resolve_decode(cfg.decode, device.type),
    )
    loader = decode_loader(
        source, cfg.batch_size, cfg.workers, pin_memory=stager is not None and device.type == "cuda"
    )
    pending: list[dict[str, Any]] = []
    computed, skipped, t = 0, [], d.frames
    if progress is None:
        progress = tqdm(
            total=len(todo) * t, unit="frame", desc="extract", file=sys.stderr, dynamic_ncols=True
        )
    # Through a lambda: _write_shard is looked up at each write (bench/stages.py times it).
    writer = ShardWriter(lambda records: _write_shard(store, records, dims, meta))
    with progress as bar, writer:
        for staged in stager.stage(loader) if stager else loader:
            batch = staged.items if stager else staged
            good = []
            for item in batch:
                if "error" not in item:
                    good.append(item)
                elif d.on_bad_frame == "skip":
                    skipped.append(item["error"])
                    bar.update(t)
                else:
                    raise BadInputError(item["error"])
            if good:
                # where each frame came from, for streams that store what a sample carries (annotations)
                seqs = [todo[g["index"]].sequence for g in good]
                samples = [(seq.video, int(i)) for seq in seqs for i in seq.indices]
                mirrored = [bool(g["flipped"]) for g in good for _ in range(t)]  # (n*T,)
                warps = [g["warp"] for g in good for _ in range(t)]  # (n*T,), one per copy repeated
                kwargs = {"sequence_length": t, "mirrored": mirrored, "warps": warps}
                if stager is not None:  # the good items are exactly the staged ones
                    frames = stager.frames(staged)  # (n*T, 3, S, S) on the device
                    out = frame_encoder.encode(frames, samples, **kwargs)
                else:
                    frames = torch.cat([g["frames"] for g in good])  # (n*T, S, S, 3)
                    out = frame_encoder(frames, samples, **kwargs)
                for j, g in enumerate(good):
                    rows = {k: v[j * t : (j + 1) * t] for k, v in out.items()}
                    pending.append(_record(todo[g["index"]], g["label"], rows, dims))
                computed += len(good)
                bar.update(len(good) * t)
            while len(pending) >= cfg.shard_size:
                writer.submit(pending[: cfg.shard_size])
                del pending[: cfg.shard_size]
        if pending:
            writer.submit(pending)
    return computed, skipped


def _load_dims(key_dir: Path, plan: Plan) -> Dims:
    """The recorded layout of a cache whose sequences are all stored: key.json's, checked against what a
    shard records. A key.json that is unreadable, or whose dims an edit changed, is rebuilt from the
    shards: trusted, an edited one made assembly blame a good shard, and deleting the cache would throw
    every sequence away."""
    path = key_dir / "key.json"
    recorded: Dims | None = None
    try:
        recorded = Dims.from_json(json.loads(path.read_text(encoding="utf-8"))["dims"])
    except RECORD_ERRORS as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        problem = f"{path}: unreadable ({type(e).__name__}: {reason})"
    for shard in ShardStore(key_dir).shard_paths():
        try:
            with h5py.File(shard, "r", locking=False) as h5:
                dims = Dims.from_json(read_attrs(h5)["dims"])
        except RECORD_ERRORS:
            continue
        if dims == recorded:
            return dims
        if recorded is not None:
            problem = f"{path}: its dims differ from those {shard.name} was written with"
        write_json_atomic(
            path, {"key": plan.key, "spec": plan.key_spec, "dims": dims.to_json()}, sort_keys=True
        )
        print(f"note: {problem}; rebuilt it from {shard.name}", file=sys.stderr)
        return dims
    if recorded is not None:  # no shard to check it by
        return recorded
    raise UserError(f"{problem}, and no shard records the layout; delete {key_dir} and re-run extract")


def _warn_other_dataset(key_dir: Path, cfg: ExtractConfig) -> None:
    """Say so, before any encoder runs, when this key's split files hold another dataset's samples.

    The key names how bytes are made, not the dataset, so two corpora extracted with the same settings
    share a key directory: their sequences live side by side in its shards, but its split files (and
    manifest) are one dataset's, and this run replaces them. Nothing is lost (the other extract, run again,
    computes nothing), yet runs trained on the other corpus refuse this cache until then."""
    try:
        before = (read_manifest(key_dir) or {}).get("config", {}).get("data")
    except UserError:  # an unreadable manifest is replaced anyway
        return
    now = cfg.dataset.data
    if not before or now is None or Path(before).resolve() == Path(now).resolve():
        return
    print(
        f"warning: {key_dir} holds the split files of {before}; this run replaces them with those of {now}. "
        f"Its shards keep both corpora's sequences (extracting {before} again encodes nothing); give each "
        "corpus its own --cache-dir to keep both assembled",
        file=sys.stderr,
    )


def run(cfg: ExtractConfig) -> ExtractResult:
    """Extract every sequence of the dataset that the cache does not hold yet, then assemble the splits.

    Under torchrun, rank 0 plans, holds the cache lock and deals the missing sequences out, every
    rank encodes its share into its own shards, and rank 0 alone assembles (extract/distributed.py).
    """
    # ultralytics calls dist.barrier() when first imported inside a process group (its settings
    # "zero first" guard), a collective the other ranks never join: import it, with every library
    # whose version the cache records, before the group exists.
    _versions()
    with process_group(cfg.device, EXTRACT_TIMEOUT) as ranks, ExitStack() as held:
        device = resolve_device(cfg.device, ranks)
        cfg = with_loader_defaults(cfg, device)
        # --decode gpu where it cannot run: refused before the corpus is planned and the encoders built
        resolve_decode(cfg.decode, device.type)

        earlier: set[Path] = set()  # shards of earlier runs: assembly checks their chunks before copying

        def prepare() -> tuple[Plan, list[PlanItem]]:  # rank 0 only
            plan = make_plan(cfg)
            key_dir = Path(cfg.cache_dir) / plan.key
            key_dir.mkdir(parents=True, exist_ok=True)
            held.enter_context(CacheLock(key_dir, wait=cfg.wait_lock))  # released after assembly
            _warn_other_dataset(key_dir, cfg)
            shards = ShardStore(key_dir)
            earlier.update(shards.shard_paths())
            done = set(shards.index())
            return plan, [it for it in plan.items if it.content_id not in done]

        job = plan_job(ranks, Path(cfg.cache_dir), prepare)
        plan, key_dir, store = job.plan, job.key_dir, ShardStore(job.key_dir)
        result = ExtractResult(key_dir, reused=len(plan.items) - job.missing if ranks.is_main else 0)
        if job.missing:
            started = time.monotonic()
            if ranks.is_main:
                print(
                    f"extracting {job.missing} of {len(plan.items)} sequences into {key_dir}"
                    f"{describe_deal(job)}",
                    file=sys.stderr,
                )
            if cfg.workers:
                worker_context()  # the worker server imports its libraries while the encoders build
            frame_encoder = make_frame_encoder(build_encoders(cfg), plan, device, cfg.compile)
            dims = stream_dims(frame_encoder, cfg)
            if ranks.is_main:
                write_json_atomic(
                    key_dir / "key.json",
                    {"key": plan.key, "spec": plan.key_spec, "dims": dims.to_json()},
                    sort_keys=True,
                )
            meta = _meta(cfg, plan, dims)
            frames = job.missing * cfg.dataset.frames
            progress = SharedProgress(ranks, frames, job.token) if ranks.distributed else None
            result.computed, result.skipped = extract_missing(
                job.share, plan, cfg, store, frame_encoder, dims, meta, progress
            )
            result.forward_calls = frame_encoder.forward_calls
            merge_ranks(ranks, result, started)  # every rank waits here for the slowest
            if not ranks.is_main:
                return result
            done = set(index_after_extraction(store, job, result.computed))
        else:
            if not ranks.is_main:
                return result
            print(
                f"reused cache {key_dir}: all {len(plan.items)} sequences present, 0 computed",
                file=sys.stderr,
            )
            dims = _load_dims(key_dir, plan)
            meta = _meta(cfg, plan, dims)
            done = {it.content_id for it in plan.items}
        save_splits(
            key_dir / "splits.json",
            plan.assignment,
            split_params(plan.dataset, cfg.dataset),
            dataset_subjects(plan.dataset, cfg.dataset.group_regex),
        )
        assemble_splits(
            key_dir,
            plan.members(done),
            plan.dataset.classes,
            meta,
            trusted=set(store.shard_paths()) - earlier,
        )
        save_config(cfg, key_dir / "config.yaml")
        result.skipped = [*plan.dataset.skipped, *result.skipped]  # what discovery skipped counts too
    if result.skipped:
        print(f"skipped {len(result.skipped)} bad sequence(s) (--on-bad-frame skip):", file=sys.stderr)
        for msg in result.skipped:
            print(f"  {msg}", file=sys.stderr)
    return result
