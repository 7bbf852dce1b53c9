"""Ranking metrics with full ranking: every item is scored for every evaluated user (no sampled handful of negatives).

For a batch of users, the scores of all items are one matrix product (users' vectors @ all items' vectors.T); the items
each user already has (training, and validation when the test split is measured) are set to -inf; the top k are
compared with the user's held-out items:

    recall@k   = hits in the top k / the user's held-out items
    ndcg@k     = sum over hits of 1 / log2(rank + 1) (rank from 1), divided by the best possible (min(k, held-out) hits first)
    hit_rate@k = 1 when any held-out item is in the top k

Users with no held-out item are not evaluated; the means are over evaluated users. Rating metrics (rmse, mae) are over
held-out interactions, predictions clipped to data.rating_range when it is set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PerUser:
    """Per evaluated user: index, recall, ndcg, hit (each (U,)), and their training interactions (activity)."""

    users: np.ndarray
    recall: np.ndarray
    ndcg: np.ndarray
    hit: np.ndarray
    activity: np.ndarray
    k: int

    def means(self) -> dict[str, float]:
        k, n = self.k, len(self.users)
        mean = (lambda a: float(a.mean())) if n else (lambda a: float("nan"))
        return {f"recall@{k}": mean(self.recall), f"ndcg@{k}": mean(self.ndcg), f"hit_rate@{k}": mean(self.hit), "users": n}


def csr_mask(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray, n_items: int) -> torch.Tensor:
    """(len(users), n_items) bool: True where the user has the item in the CSR arrays."""
    starts = indptr[users]
    counts = indptr[users + 1] - starts
    rows = np.repeat(np.arange(len(users)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # 0, 1, ... inside each user's run
    cols = indices[np.repeat(starts, counts) + within]
    mask = torch.zeros(len(users), n_items, dtype=torch.bool)
    mask[torch.from_numpy(rows), torch.from_numpy(cols)] = True
    return mask


@torch.no_grad()
def rank_per_user(score_fn: Callable[[torch.Tensor], torch.Tensor], n_items: int, relevant: tuple[np.ndarray, np.ndarray],
                  exclude: tuple[np.ndarray, np.ndarray] | None, k: int, activity: np.ndarray | None = None,
                  batch_users: int = 1024) -> PerUser:
    """Full-ranking metrics per user.

    Args:
        score_fn: user indices (B,) -> scores of every item (B, n_items).
        relevant: CSR (indptr, indices) of each user's held-out items; users with none are skipped.
        exclude: CSR of the items not to rank (the user's training items), or None.
        k: the cut-off.
        activity: per user index, a number kept beside the metrics (training interactions, for the report).
    """
    rel_ptr, rel_idx = relevant
    users = np.flatnonzero(np.diff(rel_ptr) > 0)
    kk = min(k, n_items)
    discounts = 1.0 / torch.log2(torch.arange(2, kk + 2, dtype=torch.float64))  # (k,) rank 1 -> 1/log2(2)
    ideal = torch.cumsum(discounts, 0)  # ideal[m - 1]: the best DCG with m relevant items
    recall, ndcg, hit = [], [], []
    for start in range(0, len(users), batch_users):
        chunk = users[start:start + batch_users]
        s = score_fn(torch.from_numpy(chunk)).float().cpu()  # (B, N)
        if exclude is not None:
            s = s.masked_fill(csr_mask(*exclude, chunk, n_items), float("-inf"))
        top = s.topk(kk, dim=1).indices  # (B, k)
        rel = csr_mask(rel_ptr, rel_idx, chunk, n_items)  # (B, N)
        hits = rel.gather(1, top).double()  # (B, k)
        n_rel = rel.sum(1)
        recall.append((hits.sum(1) / n_rel).numpy())
        ndcg.append(((hits * discounts).sum(1) / ideal[n_rel.clamp(max=kk) - 1]).numpy())
        hit.append((hits.sum(1) > 0).double().numpy())
    cat = (lambda parts: np.concatenate(parts)) if recall else (lambda parts: np.zeros(0))
    act = activity[users] if activity is not None else np.zeros(len(users))
    return PerUser(users, cat(recall), cat(ndcg), cat(hit), act, k)


def rating_errors(predicted: np.ndarray, actual: np.ndarray, rating_range: tuple[float, float] | None = None) -> dict[str, float]:
    """rmse and mae of predicted ratings (clipped to rating_range when given)."""
    p = np.clip(predicted, *rating_range) if rating_range is not None else predicted
    err = p.astype(np.float64) - actual.astype(np.float64)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}


def popularity_scorer(item_counts: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    """The most-popular baseline: every user gets the items ranked by their training interactions."""
    counts = torch.as_tensor(item_counts, dtype=torch.float32)
    return lambda users: counts.expand(len(users), -1)


def split_per_user(predictor, data, name: str) -> PerUser:
    """Full-ranking metrics of one split of a recommendation run's data (data/interactions.RecData) per user, each user's
    training activity beside them; `predictor` gives score_users and config.eval.k (rec_predictor.RecPredictor). Items
    masked: the user's training items (and validation items, when the test split is measured: the user has them too);
    measuring the training split itself masks nothing."""
    from forgeml.data.interactions import to_csr

    n_users, n_items = len(data.users), len(data.items)
    held = {"test": ("train", "val"), "val": ("train",)}.get(name, ())
    exclude = data.csr(held) if held else None
    relevant = to_csr([data.splits[name]], n_users)
    activity = np.bincount(data.splits["train"].user, minlength=n_users)
    return rank_per_user(predictor.score_users, n_items, relevant, exclude, predictor.config.eval.k, activity)
