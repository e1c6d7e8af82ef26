"""The signer adversary of ``--signer-adversarial λ``: a signer classifier behind a gradient-reversal layer.

The plain DANN recipe (one classifier trained jointly with the encoder through the reversed gradient) did
not hide the signer on the synthetic signer test (tests/test_signer.py): the encoder learned to fool *that*
classifier, which kept adapting, while a fresh logistic regression on the frozen embeddings still named
the signer as well as without the adversary. The encoder only removes what a *new* classifier would find,
so the classifier here is kept fresh and strong, like the probe that judges it:

- it is re-initialised every ``REFRESH_STEPS`` training steps, so no encoder trick that fools one set of
  weights lasts;
- before each training step it takes ``DISC_STEPS`` Adam steps of its own on a bank of the last epoch's
  sequence embeddings (detached; at most ``BANK``), so it knows the signers of more than one batch;
- the encoder then gets λ times the reversed gradient of that classifier's signer loss on the batch; the
  classifier's own weights take no step from it (they learn only from the bank).

Under torchrun each rank keeps its own classifier and bank (its own batches); only the heads are
DDP-wrapped, so the reversed gradients of the ranks' classifiers are averaged like any other. The
classifier is not checkpointed: it is rebuilt every REFRESH_STEPS anyway.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

REFRESH_STEPS = 6  # training steps between two fresh signer classifiers
DISC_STEPS = 10  # the classifier's own updates per training step
DISC_LR = 1e-2  # its Adam learning rate: a small new classifier, apart from the encoder's schedule
BANK = 256  # at most this many recent sequences' embeddings to learn from


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient flows back multiplied by ``-scale``."""
    return _ReverseGrad.apply(x, scale)


class SignerAdversary(nn.Module):
    """λ-reversed signer classification of the sequence embedding, by a classifier kept fresh (see above)."""

    def __init__(self, embed_dim: int, num_signers: int, scale: float, bank: int = BANK) -> None:
        """``bank``: sequences of recent embeddings the classifier learns from (about one epoch's)."""
        super().__init__()
        self.scale, self.bank = scale, max(1, min(bank, BANK))
        self.classifier = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, num_signers)
        )
        self._bank: list[tuple[torch.Tensor, torch.Tensor]] = []  # (b, d) detached embeddings, (b,) signers
        self._optimizer: torch.optim.Optimizer | None = None
        self._steps = 0

    def forward(self, embedding: torch.Tensor, signers: torch.Tensor) -> torch.Tensor:
        """embedding (B, d), signers (B,) -> the signer loss, whose gradient reaches the encoder reversed."""
        if self.training:
            self._learn(embedding.detach().float(), signers)
        frozen = {name: p.detach() for name, p in self.classifier.named_parameters()}
        reversed_embedding = reverse_grad(embedding.float(), self.scale)  # (B, d)
        logits = functional_call(self.classifier, frozen, (reversed_embedding,))  # (B, signers)
        return F.cross_entropy(logits.float(), signers)

    def _learn(self, embedding: torch.Tensor, signers: torch.Tensor) -> None:
        """Refresh the classifier when due, then fit it for DISC_STEPS steps to the bank (with this batch)."""
        if self._steps % REFRESH_STEPS == 0:
            for layer in self.classifier.modules():
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
            self._optimizer = torch.optim.Adam(self.classifier.parameters(), lr=DISC_LR)
        self._steps += 1
        self._bank.append((embedding, signers))
        while sum(len(s) for _, s in self._bank) - len(self._bank[0][1]) >= self.bank:
            self._bank.pop(0)
        x = torch.cat([e for e, _ in self._bank])  # (N, d)
        y = torch.cat([s for _, s in self._bank])  # (N,)
        assert self._optimizer is not None
        with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
            for _ in range(DISC_STEPS):
                self._optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(self.classifier(x), y).backward()
                self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
