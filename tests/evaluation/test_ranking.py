"""Full-ranking metrics on a tiny example computed by hand."""

import math

import numpy as np
import pytest
import torch

from forgeml.evaluation.ranking import csr_mask, popularity_scorer, rank_per_user, rating_errors


def csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    return indptr, np.array([i for r in rows for i in r], dtype=np.int64)


def test_recall_ndcg_hit_by_hand():
    scores = torch.tensor([[5.0, 4, 3, 2, 1], [1.0, 2, 3, 4, 5], [9.0, 9, 9, 9, 9]])
    relevant = csr([[2, 4], [4], []])  # user 2 has nothing held out: not evaluated
    seen = csr([[0], [], [1]])  # user 0 has seen item 0, the best scored: it must not count
    out = rank_per_user(lambda users: scores[users], 5, relevant, seen, k=2, activity=np.array([1, 0, 7]))
    assert out.users.tolist() == [0, 1]
    # user 0: top 2 after masking = items 1, 2 -> one hit at rank 2 of 2 relevant
    # user 1: top 2 = items 4, 3 -> a hit at rank 1 of 1 relevant
    assert out.recall.tolist() == pytest.approx([0.5, 1.0])
    assert out.ndcg.tolist() == pytest.approx([(1 / math.log2(3)) / (1 + 1 / math.log2(3)), 1.0])
    assert out.hit.tolist() == [1.0, 1.0]
    assert out.activity.tolist() == [1, 0]
    means = out.means()
    assert means["recall@2"] == pytest.approx(0.75) and means["users"] == 2
    assert means["ndcg@2"] == pytest.approx((0.38685280723454163 + 1) / 2)


def test_without_masking_the_seen_item_takes_a_place():
    scores = torch.tensor([[5.0, 4, 3, 2, 1]])
    out = rank_per_user(lambda users: scores[users], 5, csr([[2]]), None, k=2)
    assert out.recall.tolist() == [0.0]  # items 0 and 1 fill the top 2


def test_csr_mask_and_popularity():
    mask = csr_mask(*csr([[1, 3], [], [0]]), np.array([2, 0]), 4)
    assert mask.tolist() == [[True, False, False, False], [False, True, False, True]]
    assert popularity_scorer(np.array([3, 1, 2]))(torch.tensor([0, 1])).tolist() == [[3, 1, 2], [3, 1, 2]]


def test_rating_errors_clip_to_the_range():
    got = rating_errors(np.array([1.0, 2.0, 6.0]), np.array([1.0, 3.0, 5.0]), (1, 5))
    assert got["rmse"] == pytest.approx(math.sqrt(1 / 3)) and got["mae"] == pytest.approx(1 / 3)
    assert rating_errors(np.array([6.0]), np.array([5.0]))["mae"] == pytest.approx(1.0)  # no range: not clipped
