"""Federated feature fitting: the clients' summaries merged give the features a single fit on all their rows gives."""

from __future__ import annotations

import numpy as np
import pytest

from forgeml.config import load_config
from forgeml.data.featureset import FeatureSet
from forgeml.data.prepare import load_columns, target_name
from forgeml.errors import ConfigError, DataError
from forgeml.federate.partition import partition_indices
from forgeml.federate.stats import merge, summarise
from tests.federate.tables import table_config, write_table


def _adult():
    cfg = load_config("src/forgeml/examples/adult-mlp.yaml", ["data.limit=3000"])
    return cfg, load_columns(cfg.data)["train"]


def test_merged_summaries_equal_one_fit_on_all_rows():
    cfg, train = _adult()
    whole = FeatureSet.fit(train, cfg.data, target_name(cfg.data, train)).to_json()
    parts = partition_indices(len(train), 4, "dirichlet:0.5", seed=1, labels=train.data["income"])
    merged = merge([summarise(train.take(p), cfg.data) for p in parts], cfg.data)
    assert merged["schema"] == whole["schema"]
    for a, b in zip(merged["inputs"], whole["inputs"]):
        if a["kind"] == "numeric":  # exact pooled mean and spread; the fill is the mean of the clients' medians
            assert a["flag"] == b["flag"]
            if not a["flag"]:
                assert a["mean"] == pytest.approx(b["mean"], rel=1e-9) and a["std"] == pytest.approx(b["std"], rel=1e-9)
        else:
            assert a == b
    assert merged["outputs"] == whole["outputs"]


def test_a_category_seen_as_two_values_on_one_client_merges_as_a_category(tmp_path):
    cfg = load_config(table_config(write_table(tmp_path / "t.csv"), tmp_path))
    train = load_columns(cfg.data)["train"]
    only_two = train.take(np.flatnonzero(train.data["color"] != "blue"))  # this client sees red and green only
    merged = merge([summarise(only_two, cfg.data), summarise(train, cfg.data)], cfg.data)
    color = next(f for f in merged["inputs"] if f["name"] == "color")
    assert color["kind"] == "category" and color["vocab"] == ["blue", "green", "red"]


def test_clients_that_disagree_on_a_kind_are_told_to_declare_it(tmp_path):
    cfg = load_config(table_config(write_table(tmp_path / "t.csv"), tmp_path))
    train = load_columns(cfg.data)["train"]
    one, two = summarise(train, cfg.data), summarise(train, cfg.data)
    two["inputs"][0]["kind"] = "category"
    two["inputs"][0]["counts"] = {"1": 3}
    with pytest.raises(DataError, match=r"declare it in the config, e.g. data.features: \{x1: numeric\}"):
        merge([one, two], cfg.data)


def test_a_text_column_is_refused_with_what_to_do():
    cfg = load_config("src/forgeml/examples/sms-spam-lstm.yaml", ["data.limit=200"])
    train = load_columns(cfg.data)["train"]
    with pytest.raises(ConfigError, match="text input.*not merged"):
        summarise(train, cfg.data)
