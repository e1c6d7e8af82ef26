"""The dataset behind a cache, read again as extract read it: for drawing sequences over their frames.

The manifest records the extraction config (its dataset paths absolute) and, in the stream options, the
format extract detected; ``source_config`` and ``corpus_videos`` turn that back into the corpus samples,
by the keys the split files name them with. The DINO attention plots and ``show`` use it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from cache.manifest import dataset_format
from core.config import config_from_dict
from data.sequence import Video


def source_config(manifest: dict[str, Any]) -> dict[str, Any]:
    """The extraction config a plot re-reads the dataset with: the format extract detected (recorded in
    the manifest's stream options) in place of ``auto``, so it is neither detected nor announced again."""
    return {**(manifest.get("config") or {}), "format": dataset_format(manifest)}


def corpus_videos(extract_config: dict[str, Any], cache_root: Path) -> dict[str, Video] | None:
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
