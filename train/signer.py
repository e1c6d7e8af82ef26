"""Signer-invariant training for any head, and the signer probe that measures it.

A model that recognises a gesture by who makes it fails on the next person. Two extra losses act on the
sequence embedding (the fused summary the classifier reads):

- ``--signer-adversarial λ``: a signer classifier behind a gradient-reversal layer. It learns to name the
  signer; the reversed gradient (scaled by λ) teaches the heads to make that impossible. The classifier is
  kept fresh and fitted to a bank of recent embeddings (train/adversary.py), so the heads must remove the
  signer rather than fool one classifier.
- ``--supcon w``: a supervised contrastive loss (Khosla et al. 2020, L_out) on the L2-normalised
  embedding, pulling sequences of one class together whoever signs them.

Signers are the cache's subjects (``train/subjects.subjects_of``); with none, ``--pseudo-signers K`` names
K pseudo-signers by K-means over each sequence's mean input features. ``signer_probe`` fits a fresh
logistic regression on frozen embeddings: its accuracy beside the chance rate says how much of the signer
the embedding still carries (lower is more invariant).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from core.errors import BadInputError
from train.adversary import BANK, SignerAdversary
from train.subjects import subjects_of


def supcon_loss(embedding: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss of a batch: embedding (B, d), labels (B,).

    For each anchor with at least one positive (another sequence of its class), the mean over positives of
    -log softmax of the cosine similarity / τ over all other sequences; averaged over those anchors. Zero
    (with a gradient path) when no anchor has a positive.
    """
    z = F.normalize(embedding.float(), dim=1)
    n = z.shape[0]
    self_pair = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_pair, float("-inf"))  # (B, B)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_pair  # (B, B)
    anchors = positive.any(1)
    if not anchors.any():
        return z.sum() * 0.0
    per_anchor = log_prob.masked_fill(~positive, 0.0).sum(1)[anchors] / positive.sum(1)[anchors]
    return -per_anchor.mean()


class SignerObjective(nn.Module):
    """The extra training loss: λ-reversed signer classification and/or weighted SupCon on the embedding."""

    def __init__(
        self,
        embed_dim: int,
        num_signers: int,
        adversarial: float,
        supcon: float,
        temperature: float,
        bank: int = BANK,
    ) -> None:
        super().__init__()
        self.adversarial, self.supcon, self.temperature = adversarial, supcon, temperature
        self.adversary = (
            SignerAdversary(embed_dim, num_signers, adversarial, bank) if adversarial > 0 else None
        )

    def forward(
        self, embedding: torch.Tensor, labels: torch.Tensor, signers: torch.Tensor | None
    ) -> torch.Tensor:
        """embedding (B, d), labels (B,), signers (B,) -> the scalar loss to add to the class loss."""
        loss = embedding.new_zeros(())
        if self.adversary is not None:
            if signers is None:  # the batch lost its "signer" ids: an adversary that trains nothing
                raise RuntimeError("--signer-adversarial is on but the training batch carries no signer ids")
            loss = loss + self.adversary(embedding, signers)
        if self.supcon > 0:
            loss = loss + self.supcon * supcon_loss(embedding, labels, self.temperature)
        return loss


class SignerDataset(Dataset):
    """A dataset whose items also carry "signer", the signer id (int64) of each sequence."""

    def __init__(self, base: Dataset, signers: np.ndarray) -> None:
        self.base, self.signers = base, np.asarray(signers, np.int64)

    def __len__(self) -> int:
        return len(self.signers)

    def __getattr__(self, name: str) -> Any:  # sequence_ids, labels, ... of the base
        # Never the base's dunders: a DataLoader reads batches through ``__getitems__`` when the dataset
        # has one, and the base's would hand back items without "signer" (the adversary then never ran).
        if name in ("base", "signers") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**self.base[i], "signer": torch.tensor(self.signers[i])}

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """A batch read the way the base reads batches (the reader's inflate pool), each with its signer."""
        many = getattr(self.base, "__getitems__", None)
        items = many(indices) if many is not None else [self.base[i] for i in indices]
        return [
            {**item, "signer": torch.tensor(self.signers[i])} for i, item in zip(indices, items, strict=True)
        ]


def mean_features(dataset: Dataset, fields: Sequence[str]) -> np.ndarray:
    """(N, F): each sequence's float input fields averaged over its valid frames, flattened, joined."""
    rows = []
    for i in range(len(dataset)):  # type: ignore[arg-type]
        item = dataset[i]
        valid = item["valid"].bool()
        valid = valid if valid.any() else torch.ones_like(valid)
        rows.append(torch.cat([item[f][valid].float().mean(0).flatten() for f in fields]).numpy())
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def pseudo_signers(dataset: Dataset, fields: Sequence[str], k: int, seed: int) -> np.ndarray:
    """K-means over the standardised mean input features: (N,) pseudo-signer ids in 0..k-1."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(mean_features(dataset, fields))
    if k >= len(x):  # each sequence its own "signer": the adversary would erase what tells sequences apart
        raise BadInputError(
            f"--pseudo-signers {k}: the training split holds {len(x)} sequences; ask for far fewer"
        )
    k = max(1, k)
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x).astype(np.int64)


def signers_of(
    cache_dir: Path, manifest: dict[str, Any], dataset: Dataset, fields: Sequence[str], pseudo: int, seed: int
) -> tuple[np.ndarray, list[str], str] | None:
    """Signer id per sequence, the signers' names and where they came from ("subjects" or "pseudo-signers");
    None when the cache knows no subjects and no pseudo-signers were asked for."""
    subjects = subjects_of(cache_dir, manifest, list(dataset.sequence_ids))  # type: ignore[attr-defined]
    if subjects is not None:
        names = sorted(set(subjects))
        index = {s: i for i, s in enumerate(names)}
        return np.array([index[s] for s in subjects], np.int64), names, "subjects"
    if pseudo > 0:
        ids = pseudo_signers(dataset, fields, pseudo, seed)
        return ids, [f"pseudo-{i}" for i in range(int(ids.max()) + 1 if len(ids) else 0)], "pseudo-signers"
    return None


def signer_objective(
    cfg: Any, manifest: dict[str, Any], train_ds: Dataset, fields: Sequence[str], embed_dim: int
) -> tuple[Dataset, SignerObjective | None]:
    """The training set (with signer ids when the adversary needs them) and the extra loss, or None."""
    if cfg.signer_adversarial <= 0 and cfg.supcon <= 0:
        return train_ds, None
    num_signers = 1
    if cfg.signer_adversarial > 0:
        found = signers_of(Path(cfg.cache), manifest, train_ds, fields, cfg.pseudo_signers, cfg.seed)
        if found is None:
            raise BadInputError(
                f"{cfg.cache}: --signer-adversarial needs signers, and this cache knows no subjects; "
                "pass --pseudo-signers K, or extract with --group-regex naming the subject"
            )
        ids, names, _ = found
        train_ds, num_signers = SignerDataset(train_ds, ids), max(2, len(names))
    objective = SignerObjective(
        embed_dim, num_signers, cfg.signer_adversarial, cfg.supcon, cfg.supcon_temperature, len(train_ds)
    )
    return train_ds, objective


def signer_probe(embedding: np.ndarray, signers: np.ndarray, seed: int = 0) -> dict[str, Any] | None:
    """Cross-validated accuracy of a fresh logistic regression predicting the signer from the embeddings.

    Signers with a single sequence are left out (they cannot be both fitted and tested); None when fewer
    than two signers remain. ``chance`` is the share of the most common signer.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names, counts = np.unique(signers, return_counts=True)
    keep = np.isin(signers, names[counts >= 2])
    x, y = embedding[keep].astype(np.float64), signers[keep]
    kept_counts = counts[counts >= 2]
    if len(kept_counts) < 2 or not np.isfinite(x).all():
        return None
    folds = int(min(5, kept_counts.min()))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    scores = cross_val_score(probe, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return {
        "accuracy": float(scores.mean()),
        "chance": float(kept_counts.max() / kept_counts.sum()),
        "signers": int(len(kept_counts)),
        "sequences": int(len(y)),
        "folds": folds,
    }


def evaluate_signers(
    embedding: np.ndarray,
    dataset: Dataset,
    cache_dir: Path,
    manifest: dict[str, Any],
    fields: Sequence[str],
    config: dict[str, Any],
) -> tuple[dict[str, Any] | None, np.ndarray | None, list[str]]:
    """The signer probe of one evaluated split, with the signer id per sequence and the signers' names
    (for the t-SNE coloured by signer); (None, None, []) when the split's signers are unknown."""
    seed = int(config.get("seed", 0))
    found = signers_of(cache_dir, manifest, dataset, fields, int(config.get("pseudo_signers") or 0), seed)
    if found is None:
        return None, None, []
    ids, names, source = found
    probe = signer_probe(embedding, ids, seed)
    return ({**probe, "source": source} if probe else None), ids, names
