"""The dataset behind a cache, read again as extract read it: for drawing sequences over their frames.

The manifest records the extraction config (its dataset paths absolute) and, in the stream options, the
format extract detected; ``source_config`` and ``corpus_videos`` turn that back into the corpus samples,
by the keys the split files name them with. The DINO attention plots and ``show`` use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from cache.manifest import dataset_format
from core.config import config_from_dict, to_plain
from data.sequence import Video

# While ``corpus_held`` is active: (extraction config, cache root) -> what ``corpus_videos`` read.
_held: dict[tuple[str, str], dict[str, Video] | None] | None = None


@contextmanager
def corpus_held() -> Iterator[None]:
    """Within it, ``corpus_videos`` reads each corpus once however many figures draw over it (a run's
    reports draw up to four, and a large corpus' plan takes seconds even from its memo); on leaving,
    what was read is let go. Outside it, every call reads afresh."""
    global _held
    if _held is not None:  # nested: the outer one holds
        yield
        return
    _held = {}
    try:
        yield
    finally:
        _held = None


def source_config(manifest: dict[str, Any]) -> dict[str, Any]:
    """The extraction config a plot re-reads the dataset with: the format extract detected (recorded in
    the manifest's stream options) in place of ``auto``, so it is neither detected nor announced again."""
    return {**(manifest.get("config") or {}), "format": dataset_format(manifest)}


def corpus_videos(extract_config: dict[str, Any], cache_root: Path) -> dict[str, Video] | None:
    """``_read_corpus``, read once per corpus while ``corpus_held`` is active."""
    key = (json.dumps(to_plain(extract_config), sort_keys=True), str(cache_root))
    if _held is not None and key in _held:
        return _held[key]
    videos = _read_corpus(extract_config, cache_root)
    if _held is not None:
        _held[key] = videos
    return videos


def _read_corpus(extract_config: dict[str, Any], cache_root: Path) -> dict[str, Video] | None:
    """The cache's dataset as extract read it (``source_config``: its format, manifest and windows), by key
    (``<class>/<video_id>[@start-end]``, a sequence id without ``#a<k>``); None when the dataset folder
    is gone. Uses the folder listings kept under ``cache_root`` (the ``--cache-dir``), so a large corpus
    is not listed again. Bad frames are skipped, not fatal: this only re-reads pixels to draw them."""
    from data.config import DataConfig
    from data.framelist import memo_path
    from data.sequences import read_samples  # lazy: formats load only when a corpus is read

    nested = extract_config.get("data")  # an early manifest nested the data stage's options
    flat = {**extract_config, **nested} if isinstance(nested, dict) else extract_config
    cfg = config_from_dict(DataConfig, flat, "the cache's extraction config")
    if cfg.data is None or not cfg.data.is_dir():
        return None
    cfg = replace(cfg, on_bad_frame="skip")
    return {v.key: v for v in read_samples(cfg, memo_path(cache_root, cfg.data)).videos}
