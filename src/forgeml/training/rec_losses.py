"""Losses of recommendation runs, over the model's {"user": (B, D), "item": (B, D)} vectors (models/recommenders.py).

- mse: the score (the rows' dot products) against the rating.
- bpr: Bayesian personalised ranking (Rendle et al. 2009): for each (user, item) one item drawn uniformly from the whole
  catalogue is the negative; loss = -log sigmoid(score(u, i) - score(u, j)). A drawn item the user did interact with
  is not redrawn (with many items it is rare; the usual approximation).
- sampled_softmax: a softmax over the true item and negatives. in_batch: the batch's other items are the negatives;
  popular items turn up as negatives more often, which the logQ correction (Yi et al. 2019) undoes by subtracting
  log q(item), q the item's share of the training interactions; a negative that is the row's own item is masked.
  uniform: train.num_negatives items drawn uniformly per batch (no correction needed), the true item masked out.
- full_softmax (the validation loss of implicit runs): cross entropy of the held-out item over every item; exact and
  the same at every evaluation, so that it can pick the best checkpoint.

Negatives come from torch's global RNG, which the Trainer seeds and checkpoints: runs are repeatable and resume exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scores(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each row's score: the dot product of its user and item vectors. (B,)"""
    return (out["user"] * out["item"]).sum(-1)


class RecLoss:
    """The training loss of a recommendation run: a callable (outputs, targets) -> scalar, as the Trainer takes."""

    def __init__(self, kind: str, model, n_items: int, item_counts=None, negatives: str = "in_batch", num_negatives: int = 100):
        if kind not in ("mse", "bpr", "sampled_softmax", "full_softmax"):
            raise ValueError(f"unknown recommendation loss {kind!r}")
        self.kind, self.model, self.n_items = kind, model, n_items
        self.negatives, self.num_negatives = negatives, num_negatives
        counts = torch.as_tensor(item_counts if item_counts is not None else torch.ones(n_items), dtype=torch.float32)
        self.log_q = torch.log(counts.clamp(min=1) / counts.clamp(min=1).sum())  # (N,) log of each item's sampling share

    def __call__(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        loss = self._loss(out, y)
        # the model's L2 penalty of this batch's parameters (mf's model.reg); present in training mode only
        return loss + out["penalty"] if "penalty" in out else loss

    def _loss(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        U, V = out["user"].float(), out["item"].float()  # (B, D)
        if self.kind == "mse":
            return F.mse_loss(scores(out).float(), y.float())
        if self.kind == "bpr":
            neg = torch.randint(self.n_items, (U.shape[0],), device=U.device)
            negative = (U * self.model.item_vectors(neg).float()).sum(-1)
            return -F.logsigmoid((U * V).sum(-1) - negative).mean()
        if self.kind == "full_softmax":
            everything = self.model.item_vectors(torch.arange(self.n_items, device=U.device)).float()  # (N, D)
            return F.cross_entropy(U @ everything.T, y)  # (B, N) logits
        if self.negatives == "in_batch":
            if self.log_q.device != U.device:  # moved once, not copied host to device on every step
                self.log_q = self.log_q.to(U.device)
            logits = U @ V.T - self.log_q[y][None, :]  # (B, B): row b's item is column b; logQ correction
            clash = (y[None, :] == y[:, None]) & ~torch.eye(len(y), dtype=torch.bool, device=U.device)
            logits = logits.masked_fill(clash, float("-inf"))  # another row's copy of my own item is no negative
            return F.cross_entropy(logits, torch.arange(len(y), device=U.device))
        neg = torch.randint(self.n_items, (self.num_negatives,), device=U.device)
        negative = U @ self.model.item_vectors(neg).float().T  # (B, M)
        negative = negative.masked_fill(neg[None, :] == y[:, None], float("-inf"))
        logits = torch.cat([(U * V).sum(-1, keepdim=True), negative], dim=1)  # (B, 1 + M): the true item first
        return F.cross_entropy(logits, torch.zeros(len(y), dtype=torch.long, device=U.device))
