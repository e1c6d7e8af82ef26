"""Finding real weights: local cache first, download when allowed, one clear error otherwise.

Cache directories are resolved from the environment at call time (huggingface_hub freezes them at import),
so a test or a user who points HF_HOME / TORCH_HOME somewhere else gets exactly that directory. With
HF_HUB_OFFLINE set, nothing touches the network and a missing file fails at once; without it, a dead
network makes huggingface_hub retry for ~23-47 s before failing. Files already cached never touch the network.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from core.errors import WeightsUnavailableError

from .digest import file_sha256

_TRUE = {"1", "ON", "YES", "TRUE"}


def is_offline() -> bool:
    """Mirror huggingface_hub's rule (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE), read now, not at import."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in _TRUE


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved like huggingface_hub.constants but at call time."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def torch_hub_path(url: str) -> Path:
    """Where torch.hub.load_state_dict_from_url keeps ``url`` (TORCH_HOME is read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def unavailable(encoder: str, what: str, reason: str, how: str) -> WeightsUnavailableError:
    """The one-line error for missing real weights: what, why, and the three ways out."""
    return WeightsUnavailableError(
        f"Pretrained weights for encoder '{encoder}' ({what}) are unavailable: {reason}. "
        f"Run once with internet access, or {how}, or use `--weights random`."
    )


def hub_file(repo_id: str, filename: str, encoder: str, revision: str | None = None) -> Path:
    """Local path of ``repo_id/filename`` from the Hugging Face hub cache, downloading it when allowed.

    ``revision`` (a branch, tag or commit hash) pins one upload; None means the repo's ``main``.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled

    cache_dir = hf_cache_dir()
    at = f" at revision {revision}" if revision else ""
    what = f"Hugging Face {repo_id}, file {filename}{at}"
    pin = f" --revision {revision}" if revision else ""
    how = f"fetch it with `hf download {repo_id} {filename}{pin}` (cache: {cache_dir})"
    # Cache first: no network round trip (huggingface_hub retries ~23 s on a dead network before it falls back
    # to the cache), and the weights stay the ones already used for existing extraction caches.
    cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    if is_offline():
        raise unavailable(encoder, what, f"not in the local cache {cache_dir} and HF_HUB_OFFLINE is set", how)
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir, revision=revision))
    except (EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled) as exc:
        reason = f"not cached in {cache_dir} and the download failed ({type(exc).__name__})"
        raise unavailable(encoder, what, reason, how) from exc


def url_file(url: str, encoder: str) -> Path:
    """Local path of ``url`` in the torch hub checkpoint cache, downloading it when allowed."""
    path = torch_hub_path(url)
    if path.is_file():
        return path
    how = f"download {url} to {path}"
    if is_offline():
        raise unavailable(encoder, url, f"{path} does not exist and HF_HUB_OFFLINE is set", how)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except (URLError, ConnectionError, TimeoutError, OSError) as exc:
        raise unavailable(
            encoder, url, f"{path} does not exist and the download failed ({exc})", how
        ) from exc
    return path


def load_state_dict_file(path: Path, url: str, encoder: str) -> dict[str, Any]:
    """A checkpoint file's tensors (``weights_only``); an unreadable file names itself and how to fix it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, IndexError) as exc:
        reason = f"{path} is unreadable ({type(exc).__name__}); delete it"
        raise unavailable(encoder, url, reason, f"download {url} to {path}") from exc


@dataclass(frozen=True)
class WeightSource:
    """Where an encoder's real weights live: files of a Hugging Face repo, or one URL (torch hub cache)."""

    repo: str | None = None
    files: tuple[str, ...] = ()
    url: str | None = None

    def __str__(self) -> str:
        if self.url:
            return self.url
        return self.repo if len(self.files) != 1 else f"{self.repo}/{self.files[0]}"


@dataclass(frozen=True)
class LocalWeights:
    """The resolved weight files of one encoder: what is loaded is exactly what the identity names."""

    source: WeightSource
    paths: dict[str, Path]  # file name in the repo (or the URL) -> local path
    revision: str | None  # the hub commit the files come from; None for a URL

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]

    def identity(self) -> dict[str, Any]:
        """Repo (or URL), resolved revision and the sha256 of every file: what a cache key must record."""
        where = {"url": self.source.url} if self.source.url else {"repo": self.source.repo}
        digests = {name: file_sha256(path) for name, path in sorted(self.paths.items())}
        return {**where, "revision": self.revision, "sha256": digests}


def _snapshot_revision(path: Path, filename: str) -> str | None:
    """The commit hash of a hub-cache file: ``.../snapshots/<commit>/<filename>``."""
    parents = Path(path).parents
    depth = len(Path(filename).parts)
    snapshot = parents[depth - 1] if len(parents) >= depth else None
    if snapshot is not None and snapshot.parent.name == "snapshots":
        return snapshot.name
    return None


def resolve_weights(source: WeightSource, encoder: str, revision: str | None = None) -> LocalWeights:
    """Find (or, online, fetch) every weight file of ``source``; raise WeightsUnavailableError otherwise."""
    if source.url:
        if revision:
            raise WeightsUnavailableError(
                f"Encoder '{encoder}' loads {source.url}, a plain URL with no revisions; "
                "drop its --weights-revision"
            )
        return LocalWeights(source, {source.url: url_file(source.url, encoder)}, None)
    paths = {name: hub_file(str(source.repo), name, encoder, revision) for name in source.files}
    revisions = {_snapshot_revision(path, name) for name, path in paths.items()}
    resolved = revisions.pop() if len(revisions) == 1 else None
    return LocalWeights(source, paths, resolved)


def create_timm_model(model_name: str, weights: LocalWeights | None, **kwargs: Any) -> nn.Module:
    """A timm model with the resolved real weights, or a random init when ``weights`` is None.

    The weights file goes to timm as a ``file`` override, so timm's own filtering and classifier removal
    (and position-embedding resampling) still apply but timm never reaches the network itself.
    """
    import timm

    if weights is None:
        return timm.create_model(model_name, pretrained=False, **kwargs)
    overlay = {**kwargs.pop("pretrained_cfg_overlay", {}), "file": str(weights["model.safetensors"])}
    return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)


def timm_source(model_name: str) -> WeightSource:
    """timm's released weights for ``model_name`` live in the hub repo ``timm/<model_name>``."""
    return WeightSource(repo=f"timm/{model_name}", files=("model.safetensors",))
