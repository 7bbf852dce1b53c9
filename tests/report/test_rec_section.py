"""The report's recommendation section: users bucketed by training activity, each bucket's mean metrics."""

import numpy as np
import pytest

from forgeml.evaluation.ranking import PerUser
from forgeml.report.rec_section import activity_buckets, by_activity


def test_buckets_are_powers_of_two():
    bucket, labels = activity_buckets(np.array([1, 2, 3, 4, 7, 8, 20]))
    assert labels == ["1", "2-3", "4-7", "8-15", "16-20"]
    assert bucket.tolist() == [0, 1, 1, 2, 2, 3, 4]


def test_by_activity_means_per_bucket():
    scores = PerUser(users=np.arange(4), recall=np.array([1.0, 0.0, 0.5, 0.5]), ndcg=np.array([1.0, 0.0, 0.2, 0.4]),
                     hit=np.array([1.0, 0.0, 1.0, 1.0]), activity=np.array([1, 1, 5, 6]), k=10)
    section = by_activity(scores)
    assert section["columns"][2] == "recall@10"
    assert section["rows"] == [("1", 2, 0.5, 0.5, 0.5), ("4-6", 2, 0.5, pytest.approx(0.3), 1.0)]
    assert section["figure"].startswith("data:image/png;base64,")
