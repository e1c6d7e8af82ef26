"""manifest.json: the one file that says whether a cache directory is complete.

It is always published last and atomically (``core.atomic``: tmp + fsync + os.replace +
directory fsync), and it is marked incomplete before any split file is replaced, so a crash at
any point leaves either the old complete cache or a cache that says it is incomplete — never a
half-written one that claims to be whole.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cache.schema import SHARD_DIR
from core.atomic import write_json_atomic
from core.errors import CacheError

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "val", "test")
# Root attributes of the split files that the manifest repeats.
MIRRORED_KEYS = (
    "schema_version",
    "key",
    "key_spec",
    "dims",
    "channel_layout",
    "stream_options",
    "encoders",
    "config",
    "versions",
    "created",
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def dataset_format(manifest: dict[str, Any]) -> str:
    """The format the cache's dataset was read as: the one extract detected (recorded in the stream
    options, whose annotations are that format's) where the config says ``auto``."""
    given = str((manifest.get("config") or {}).get("format", "auto"))
    detected = (manifest.get("stream_options") or {}).get("annotations")
    return str(detected) if given == "auto" and detected else given


def read_manifest(key_dir: Path) -> dict[str, Any] | None:
    """The manifest, or None when there is none yet. Raises CacheError when it is unreadable."""
    path = Path(key_dir) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CacheError(
            f"{path}: cannot read ({exc.strerror}); run `pipeline.py cache verify {key_dir}`"
        ) from exc
    except UnicodeDecodeError as exc:
        raise CacheError(
            f"{path}: not UTF-8 text (bad byte at offset {exc.start}); "
            "re-run `pipeline.py extract` to rebuild it"
        ) from exc
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CacheError(
            f"{path}: not valid JSON ({getattr(exc, 'msg', 'nested too deeply')} at line "
            f"{getattr(exc, 'lineno', '?')}); "
            "re-run `pipeline.py extract` to rebuild it"
        ) from exc
    if not isinstance(manifest, dict):
        raise CacheError(f"{path}: expected a JSON object; re-run `pipeline.py extract` to rebuild it")
    return manifest


def unfinished(key_dir: Path, manifest: dict[str, Any] | None) -> str | None:
    """Why a key directory is not a finished cache when an extraction explains it (interrupted, or still
    running): shards without a manifest, or a manifest not yet marked complete. Re-running extract is the
    remedy, not deleting anything. None: finished, or not a cache at all."""
    if manifest is None:
        shards = Path(key_dir) / SHARD_DIR
        if not shards.is_dir():
            return None
        stored = len(list(shards.glob("*.h5")))
        state = f"{stored} shard(s) stored, no {MANIFEST_NAME} yet"
    elif manifest.get("complete") is not True:
        state = f"{MANIFEST_NAME} not marked complete"
    else:
        return None
    return (
        f"{key_dir}: incomplete cache: an extraction was interrupted or is still running ({state}); "
        "re-run the same `pipeline.py extract` to finish it"
    )


def without_manifest(key_dir: Path) -> str:
    """What to say of a key directory with no manifest."""
    return unfinished(key_dir, None) or (
        f"{key_dir}: no {MANIFEST_NAME}, so not a cache key directory; see `pipeline.py cache ls`"
    )


def write_manifest(key_dir: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(Path(key_dir) / MANIFEST_NAME, manifest, indent=1, sort_keys=True)


def mark_incomplete(key_dir: Path) -> None:
    """Flip ``complete`` to false (creating a minimal manifest if none) before touching split files.

    An unreadable manifest is replaced by a minimal one: it is about to be rebuilt, and refusing here
    would leave the cache unrepairable by the very command its error message recommends.
    """
    try:
        manifest = read_manifest(key_dir)
    except CacheError:
        manifest = None
    manifest = manifest or {"key": Path(key_dir).name, "splits": {}}
    manifest["complete"] = False
    write_manifest(key_dir, manifest)


def splits_digest(manifest: dict[str, Any]) -> str:
    """A digest of which sequences each split holds: a run trained on this cache records it, so a resumed
    sweep or folds command can tell a finished run of an older split (re-extracted since) from its own."""
    splits = manifest.get("splits") or {}
    ids = {s: list((splits.get(s) or {}).get("sequence_ids") or []) for s in SPLITS}
    return hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()


def build_manifest(
    meta: dict[str, Any], class_names: list[str], splits: dict[str, dict[str, Any]], complete: bool
) -> dict[str, Any]:
    """The manifest mirrors the split files' root attributes for tools that do not speak HDF5."""
    out = {k: meta[k] for k in MIRRORED_KEYS if k in meta}
    out.update(class_names=list(class_names), complete=bool(complete), splits=splits)
    return out
