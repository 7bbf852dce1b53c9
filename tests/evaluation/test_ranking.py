"""Full-ranking metrics on a tiny example computed by hand."""

import math

import numpy as np
import pytest
import torch

from forgeml.evaluation.ranking import (
    csr_mask,
    popularity_scorer,
    rank_per_user,
    rating_errors,
    split_per_user,
)


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


def test_the_test_split_is_ranked_with_training_and_validation_items_masked():
    """split_per_user on hand-made splits: ranking test, the user's val item (scored best) is masked like its train item."""
    from types import SimpleNamespace

    from forgeml.data.interactions import Interactions, RecData

    def split(users, items):
        return Interactions(np.array(users), np.array(items), None, np.arange(len(users)))

    data = RecData(["a"], ["0", "1", "2", "3"], {"train": split([0], [0]), "val": split([0], [1]), "test": split([0], [2])})
    scores = torch.tensor([[9.0, 8, 7, 6]])  # train item 0, then val item 1, then test item 2
    predictor = SimpleNamespace(score_users=lambda users: scores[users],
                                config=SimpleNamespace(eval=SimpleNamespace(k=1, batch_size=64)))
    test = split_per_user(predictor, data, "test")
    assert test.hit.tolist() == [1.0] and test.activity.tolist() == [1]  # 0 and 1 masked: the test item is first
    # masking the train item alone, the val item would take the only place: the hit above is the val mask's doing
    assert rank_per_user(lambda users: scores[users], 4, data.csr(("test",)), data.csr(("train",)), 1).hit.tolist() == [0.0]
    val = split_per_user(predictor, data, "val")
    assert val.hit.tolist() == [1.0]  # ranking val masks the train item only: the val item is first


def test_users_are_ranked_in_batches_bounded_by_memory():
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.normal(size=(10, 6)).astype(np.float32))
    relevant = csr([[u % 6, (u + 1) % 6] for u in range(10)])
    asked = []

    def score_fn(users):
        asked.append(len(users))
        return scores[users]

    whole = rank_per_user(score_fn, 6, relevant, None, k=2)
    assert asked == [10]
    asked.clear()
    small = rank_per_user(score_fn, 6, relevant, None, k=2, batch_users=4)  # eval.batch_size
    assert asked == [4, 4, 2] and small.recall.tolist() == whole.recall.tolist()
    asked.clear()
    rank_per_user(score_fn, 6, relevant, None, k=2, batch_users=4, max_cells=18)  # 18 cells / 6 items: 3 users at once
    assert asked == [3, 3, 3, 1]
