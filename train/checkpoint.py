"""Self-sufficient checkpoints: atomic writes, safe loads, and the cache-compatibility check.

A checkpoint holds only tensors and plain Python types so ``torch.load(weights_only=True)``
can read it: the state dict, model args, the resolved train config, class names, the cache
key, the cache manifest minus its split lists (what ``predict`` needs to rebuild the
extraction), the videos it was trained on, and the best metric.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from cache.manifest import splits_digest
from cache.schema import video_of
from core.atomic import atomic_path
from core.errors import CacheError, UserError

CHECKPOINT_FORMAT = "gesture-heads/1"
# Manifest entries that must agree between a checkpoint and any cache it is evaluated on.
# "encoders" too: the key hashes them, but a manifest can be edited or copied under another key dir.
COMPAT_KEYS = ("key", "class_names", "channel_layout", "dims", "encoders")
# How torch's zip writer words an I/O failure (it raises RuntimeError, not OSError).
_WRITER_FAILURES = ("inline_container", "PytorchStreamWriter", "file write failed")
DIGEST_KEY = "sha256"
# What evaluate and predict read from a loaded checkpoint, and the type each must have.
_FIELDS = {"state_dict": dict, "model_args": dict, "config": dict, "class_names": list, "cache": dict}


class CheckpointError(UserError):
    """A checkpoint file that is missing, unreadable or not one of ours."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (tmp + fsync + os.replace); a failed write keeps the previous file.

    torch's zip writer reports a full disk as a bare RuntimeError ("[enforce fail at
    inline_container.cc] unexpected pos ..."); that and OSErrors become one-line CheckpointErrors.
    """
    try:
        with atomic_path(path) as tmp:
            torch.save({"format": CHECKPOINT_FORMAT, **payload, DIGEST_KEY: payload_digest(payload)}, tmp)
    except (OSError, RuntimeError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, RuntimeError) and not any(m in text for m in _WRITER_FAILURES):
            raise
        raise CheckpointError(
            f"{path}: cannot write checkpoint ({text}); the disk may be full: free space and train "
            "again (the previous file, if any, is intact)"
        ) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load on CPU with ``weights_only=True``; unreadable files become one-line CheckpointErrors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; pass the best.pt of a run folder")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: holds objects other than tensors and plain types, so it is not loaded "
            "(weights_only); pass a checkpoint written by `pipeline.py train`"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        reason = _first_line(exc)
        raise CheckpointError(f"{path}: cannot read checkpoint ({reason}); it may be truncated") from exc
    except Exception as exc:  # noqa: BLE001  the unpickler on foreign bytes: IndexError, KeyError, ...
        # Any file can be passed here (metrics.csv from the same run folder is the usual one), and
        # torch's weights-only unpickler fails on foreign bytes with whatever its opcode loop hits.
        raise CheckpointError(
            f"{path}: not a checkpoint written by `pipeline.py train` ({type(exc).__name__}: "
            f"{_first_line(exc)}); pass the best.pt of a run folder"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a gesture-heads checkpoint; pass the best.pt of a training run")
    stored = ckpt.get(DIGEST_KEY)  # checkpoints from before the digest carry none
    if stored is not None and stored != payload_digest(ckpt):
        raise CheckpointError(
            f"{path}: damaged (its contents no longer match the digest written with it), so it is "
            "not a checkpoint written by `pipeline.py train` as it stands; use another copy or retrain"
        )
    wrong = next((k for k, kind in _FIELDS.items() if not isinstance(ckpt.get(k), kind)), None)
    if wrong is not None:
        raise CheckpointError(
            f"{path}: field {wrong!r} is missing or damaged, so it is not a checkpoint written by "
            "`pipeline.py train`; pass the best.pt of a run folder"
        )
    return ckpt


def payload_digest(payload: dict[str, Any]) -> str:
    """sha256 over every field but the format and the digest itself: weights, args, classes, config.

    torch's zip reader checks no CRC, so a zeroed or spliced span of a checkpoint can load as
    other weights or other class names without an error; this digest turns that into one.
    """
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, dict):
            h.update(b"{")
            for key in sorted(obj, key=str):
                if key not in (DIGEST_KEY, "format"):
                    h.update(f"{key!s}\0".encode("utf-8", "surrogatepass"))
                    feed(obj[key])
            h.update(b"}")
        elif isinstance(obj, list | tuple):
            h.update(b"[")
            for item in obj:
                feed(item)
            h.update(b"]")
        elif isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}\0".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(f"{type(obj).__name__}:{obj!r}\0".encode("utf-8", "surrogatepass"))

    feed(payload)
    return h.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__


def cache_record(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest minus its split lists: enough to check a cache and to redo the extraction."""
    return {k: v for k, v in manifest.items() if k not in ("splits", "complete")}


def check_compatible(
    ckpt: dict[str, Any], manifest: dict[str, Any], cache_dir: Path, ckpt_path: Path | str = "checkpoint"
) -> None:
    """Refuse a cache whose key, classes, channel layout, dims or encoders differ from the checkpoint's."""
    record = ckpt["cache"]
    for key in COMPAT_KEYS:
        want, got = record.get(key), manifest.get(key)
        if want != got:
            detail = _describe(key, want, got)
            advice = "pass the cache the model was trained on with --cache"
            if key == "class_names":  # one key directory holds every class subset; extract re-assembles it
                advice = f"re-run extract with the --classes the model was trained with, or {advice}"
            raise CacheError(f"cache {cache_dir} does not match checkpoint {ckpt_path} ({detail}); {advice}")


def trained_videos(sequence_ids: list[str]) -> list[str]:
    """The ``<class>/<video_id>`` set of a training split, sorted: stored in the checkpoint."""
    return sorted({video_of(s) for s in sequence_ids})


def check_unseen(
    ckpt: dict[str, Any], manifest: dict[str, Any], split: str, cache_dir: Path, ckpt_path: Path | str
) -> None:
    """Refuse to score ``split`` when it holds videos the model trained on.

    Re-running ``extract`` with another split ratio, seed or group regex keeps the cache key
    and re-assembles the split files, so an older checkpoint would otherwise be scored on its
    own training videos with no sign of it. Checkpoints from before this check carry no list.
    """
    seen = ckpt.get("trained_videos")
    if split == "train" or not seen:
        return
    held = manifest.get("splits", {}).get(split, {}).get("sequence_ids", [])
    overlap = sorted({video_of(s) for s in held} & set(seen))
    if overlap and ckpt.get("splits_sha256") == splits_digest(manifest):  # not re-split: a fold's model
        raise CacheError(
            f"checkpoint {ckpt_path} was trained on {len(overlap)} video(s) of the {split} split of cache "
            f"{cache_dir} (first: {overlap[0]}; a --folds run trains on part of val), so scoring it there "
            "would flatter it; evaluate it on another split (--split test)"
        )
    if overlap:
        raise CacheError(
            f"the {split} split of cache {cache_dir} holds {len(overlap)} video(s) that checkpoint "
            f"{ckpt_path} was trained on (first: {overlap[0]}): the cache was re-split after training; "
            "retrain on the current split, or re-extract with the split the model was trained with"
        )


def _describe(key: str, want: Any, got: Any) -> str:
    if key == "key":
        return f"key {got} != {want}"
    if isinstance(want, list) and isinstance(got, list):
        if key == "class_names" and sorted(map(str, want)) == sorted(map(str, got)):
            return f"the same {len(got)} classes in another order"
        return f"{key} {_short(got)} != {_short(want)}"
    return f"{key} differ"


def _short(items: list[Any], limit: int = 6) -> str:
    head = ",".join(str(x) for x in items[:limit])
    return f"[{head}{',…' if len(items) > limit else ''}]"
