"""Interactions of a recommendation run: checks, duplicates, splits, vocabularies, cold ids."""

import numpy as np
import pytest

from forgeml.config import DataConfig, load_config
from forgeml.data.columns import Columns
from forgeml.data.interactions import load_interactions
from forgeml.errors import ConfigError, DataError


def table(users, items, ratings=None, times=None) -> Columns:
    data = {"u": np.array(users, dtype=object), "i": np.array(items, dtype=object)}
    if ratings is not None:
        data["r"] = np.array(ratings, dtype=np.float64)
    if times is not None:
        data["t"] = np.array(times, dtype=np.float64)
    return Columns(data, origin="t.csv", rows=np.arange(2, len(users) + 2))  # line 1 is the header


def cfg(**kw) -> DataConfig:
    return DataConfig(users="u", items="i", **kw)


def pairs(data, split):
    s = data.splits[split]
    return sorted((data.users[u], data.items[i]) for u, i in zip(s.user, s.item))


def test_leave_last_out_by_time_holds_out_each_users_last():
    # every item also appears in some user's training rows (else it would be cold, and left out)
    cols = table(["a", "a", "a", "b", "b", "c", "c"], ["x", "y", "z", "x", "z", "y", "x"], times=[3, 1, 2, 1, 0, 5, 4])
    data = load_interactions(cfg(time="t", split={"by": "leave_last_out", "val": 0.1}), cols)
    assert pairs(data, "test") == [("a", "x"), ("b", "x"), ("c", "y")]  # the latest of each user
    assert pairs(data, "val") == [("a", "z")]  # a's second-to-last; b and c have two interactions only: no val
    assert pairs(data, "train") == [("a", "y"), ("b", "z"), ("c", "x")]
    # without data.time the file order decides
    data = load_interactions(cfg(split={"by": "leave_last_out", "val": 0.0}), cols)
    # the last listed: a z, b z, c x; z is then in no one's training rows: cold, left out and said
    assert pairs(data, "test") == [("c", "x")] and "val" not in data.splits
    assert any("test: 2 of 3 interactions left out" in n for n in data.notes)


def test_time_split_per_user_or_global():
    users = ["a"] * 4 + ["b"] * 4
    cols = table(users, ["1", "2", "3", "4", "3", "4", "1", "2"], times=[1, 2, 3, 4, 5, 6, 7, 8])
    per_user = load_interactions(cfg(time="t", split={"by": "time", "val": 0.0, "test": 0.5}), cols)
    assert pairs(per_user, "test") == [("a", "3"), ("a", "4"), ("b", "1"), ("b", "2")]  # each user's later half
    cols = table(users, ["1", "2", "3", "4", "1", "2", "3", "4"], times=[1, 2, 5, 6, 3, 4, 7, 8])
    whole = load_interactions(cfg(time="t", split={"by": "time", "per_user": False, "val": 0.0, "test": 0.25}), cols)
    assert pairs(whole, "test") == [("b", "3"), ("b", "4")]  # the last quarter of all interactions, in time


def test_random_split_sizes_and_seed():
    n = 200
    cols = table([f"u{k % 10}" for k in range(n)], [f"i{k // 10}" for k in range(n)])
    a = load_interactions(cfg(split={"val": 0.1, "test": 0.2, "seed": 1}), cols)
    b = load_interactions(cfg(split={"val": 0.1, "test": 0.2, "seed": 2}), cols)
    assert len(a.splits["train"]) + len(a.splits.get("val", [])) + len(a.splits.get("test", [])) + 0 <= n
    assert pairs(a, "train") != pairs(b, "train")  # split.seed changes which interactions are held out


def test_vocabularies_come_from_training_and_cold_ids_are_said():
    cols = table(["a", "a", "b", "b", "c"], ["x", "y", "x", "new", "y"], times=[1, 2, 1, 2, 1])
    data = load_interactions(cfg(time="t", split={"by": "leave_last_out", "val": 0.0}), cols)
    assert data.items == ["x", "y"] and data.users == ["a", "b", "c"]  # 'new' only in test: no vector
    assert pairs(data, "test") == [("a", "y")]
    assert any("test: 1 of 2 interactions left out" in n and "1 new item" in n for n in data.notes)


def test_numeric_ids_are_strings():
    cols = Columns({"u": np.array([10001.0, 10002.0]), "i": np.array([1000.0, 1001.0])}, origin="t.csv")
    data = load_interactions(cfg(split={"val": 0.0, "test": 0.0}), cols)
    assert data.users == ["10001", "10002"] and data.items == ["1000", "1001"]


def test_duplicates_error_last_or_mean():
    cols = table(["a", "a", "b", "a"], ["x", "y", "x", "x"], ratings=[1, 2, 3, 5], times=[1, 2, 3, 4])
    with pytest.raises(DataError, match=r"user 'a' and item 'x' appear together on line 2 and line 5.*data.duplicates"):
        load_interactions(cfg(rating="r", split={"val": 0, "test": 0}), cols)
    last = load_interactions(cfg(rating="r", time="t", duplicates="last", split={"val": 0, "test": 0}), cols)
    got = {(last.users[u], last.items[i]): r for u, i, r in zip(last.splits["train"].user, last.splits["train"].item,
                                                                last.splits["train"].rating)}
    assert got[("a", "x")] == 5 and len(got) == 3
    assert any("1 (user, item) pair(s) appeared more than once; 1 extra row(s)" in n for n in last.notes)
    mean = load_interactions(cfg(rating="r", duplicates="mean", split={"val": 0, "test": 0}), cols)
    s = mean.splits["train"]
    got = {(mean.users[u], mean.items[i]): r for u, i, r in zip(s.user, s.item, s.rating)}
    assert got[("a", "x")] == 3.0


def test_bad_ratings_and_ids_name_the_line():
    cols = table(["a", "b"], ["x", "y"], ratings=[3, 7])
    with pytest.raises(DataError, match=r"t.csv: line 3: rating 7 is outside data.rating_range \[1, 5\]"):
        load_interactions(cfg(rating="r", rating_range=(1, 5)), cols)
    cols = table(["a", "b"], ["x", "y"], ratings=[3, float("nan")])
    with pytest.raises(DataError, match="line 3: the rating in column 'r' is empty, not a number"):
        load_interactions(cfg(rating="r"), cols)
    cols = table(["a", None], ["x", "y"])
    with pytest.raises(DataError, match="line 3: the 'u' id is missing"):
        load_interactions(cfg(), cols)
    with pytest.raises(ConfigError, match="data.items: 'item' is not a column"):
        load_interactions(DataConfig(users="u", items="item"), table(["a"], ["x"]))


def test_item_table_gives_one_row_per_trained_item(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("i,title,price\nx,red shoe,3\ny,blue hat,4\nz,never seen,5\n")
    cols = table(["a", "a", "b"], ["x", "y", "y"])
    data = load_interactions(cfg(item_table=str(path), item_features=["title"], split={"val": 0, "test": 0}), cols)
    assert data.side["item"].names == ["title"] and data.side["item"].data["title"].tolist() == ["red shoe", "blue hat"]
    path.write_text("i,title\nx,red shoe\n")
    with pytest.raises(DataError, match="1 item\\(s\\) of the training interactions have no row here \\(e.g. 'y'\\)"):
        load_interactions(cfg(item_table=str(path), split={"val": 0, "test": 0}), cols)


@pytest.mark.parametrize(("raw", "message"), [
    ({"data": {"users": "u"}, "model": {"name": "mf"}}, "data.users and data.items go together"),
    ({"data": {"users": "u", "items": "i", "rating_range": [1, 5]}, "model": {"name": "mf"}}, "rating_range without data.rating"),
    ({"data": {"split": {"by": "time"}}}, "splitting by time or leave-last-out is for recommendation runs"),
    ({"data": {"users": "u", "items": "i"}}, "model.name cnn does not rank items"),
    ({"model": {"name": "mf"}}, "model.name mf ranks items for users: set data.users and data.items"),
    ({"data": {"users": "u", "items": "i"}, "model": {"name": "mf"}, "train": {"loss": "mse"}}, "needs ratings"),
    ({"data": {"users": "u", "items": "i", "rating": "r"}, "model": {"name": "mf"}, "train": {"loss": "bpr"}},
     "ratings train with mse"),
    ({"data": {"users": "u", "items": "i", "item_features": ["t"]}, "model": {"name": "mf"}}, "matrix factorisation reads ids only"),
])
def test_config_refuses_what_cannot_be(raw, message):
    with pytest.raises(ConfigError, match=message):
        load_config(raw)


def test_a_plain_run_digests_as_before():
    """The recommendation settings are left out of a plain run's resolved config: older bundles resume as they were."""
    d = load_config({}).to_dict()
    assert "users" not in d["data"] and "by" not in d["data"]["split"] and "k" not in d["eval"]
    assert "negatives" not in d["train"]
    rec = load_config({"data": {"users": "u", "items": "i"}, "model": {"name": "mf"}}).to_dict()
    assert rec["data"]["users"] == "u" and rec["eval"]["k"] == 10 and rec["data"]["split"]["by"] == "random"


def test_limit_takes_a_seeded_subset_of_the_interactions(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("u,i\n" + "".join(f"u{k % 10},i{k // 10}\n" for k in range(100)))
    data = load_interactions(cfg(path=str(path), limit=30, split={"val": 0, "test": 0}))
    assert len(data.splits["train"]) == 30
