"""Finding real weights: local cache first, download when allowed, one clear error otherwise.

Cache directories are resolved from the environment at call time (huggingface_hub freezes them at import),
so a test or a user who points HF_HOME / TORCH_HOME somewhere else gets exactly that directory. With
HF_HUB_OFFLINE set, nothing touches the network and a missing file fails at once; without it, a dead
network makes huggingface_hub retry for ~23-47 s before failing. Files already cached never touch the network.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from core.errors import WeightsUnavailableError

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


def hub_file(repo_id: str, filename: str, encoder: str) -> Path:
    """Local path of ``repo_id/filename`` from the Hugging Face hub cache, downloading it when allowed."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled

    cache_dir = hf_cache_dir()
    what = f"Hugging Face {repo_id}, file {filename}"
    how = f"fetch it with `hf download {repo_id} {filename}` (cache: {cache_dir})"
    # Cache first: no network round trip (huggingface_hub retries ~23 s on a dead network before it falls back
    # to the cache), and the weights stay the ones already used for existing extraction caches.
    cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    if isinstance(cached, str):
        return Path(cached)
    if is_offline():
        raise unavailable(encoder, what, f"not in the local cache {cache_dir} and HF_HUB_OFFLINE is set", how)
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir))
    except (EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled) as exc:
        reason = f"not cached in {cache_dir} and the download failed ({type(exc).__name__})"
        raise unavailable(encoder, what, reason, how) from exc


def torch_hub_state_dict(url: str, encoder: str) -> dict[str, Any]:
    """State dict behind ``url`` via the torch hub checkpoint cache; never waits on the network offline."""
    path = torch_hub_path(url)
    how = f"download {url} to {path}"
    if not path.is_file() and is_offline():
        raise unavailable(encoder, url, f"{path} does not exist and HF_HUB_OFFLINE is set", how)
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=True)
    except (URLError, ConnectionError, TimeoutError) as exc:
        raise unavailable(
            encoder, url, f"{path} does not exist and the download failed ({exc})", how
        ) from exc
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        reason = f"{path} is unreadable ({type(exc).__name__}); delete it"
        raise unavailable(encoder, url, reason, how) from exc


def create_timm_model(model_name: str, pretrained: bool, encoder: str, **kwargs: Any) -> nn.Module:
    """A timm model with real weights from the hub cache (resolved here, offline-aware) or a random init.

    The weights file goes to timm as a ``file`` override, so timm's own filtering and classifier removal
    still apply but timm never reaches the network itself.
    """
    import timm

    if not pretrained:
        return timm.create_model(model_name, pretrained=False, **kwargs)
    repo_id = timm.models.get_pretrained_cfg(model_name).hf_hub_id
    if not repo_id:
        raise ValueError(f"timm model {model_name!r} has no Hugging Face hub weights")
    path = hub_file(repo_id, "model.safetensors", encoder)
    overlay = {**kwargs.pop("pretrained_cfg_overlay", {}), "file": str(path)}
    return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
