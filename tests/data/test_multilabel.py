"""MultiLabelTarget: label sets in every written form, the multi-hot round trip, and one-line errors."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forgeml.config import OutputConfig
from forgeml.data.features.multilabel import MultiLabelTarget, read_names
from forgeml.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "data" / "goemotions"


def read_split(split: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{split}.tsv", sep="\t", header=None, names=["text", "labels", "id"], keep_default_na=False, dtype=str)


def test_delimited_strings_encode_to_multi_hot_and_decode_back():
    values = np.array(["joy|love", "anger", "love|joy|anger"], dtype=object)
    t = MultiLabelTarget("emotion", separator="|").fit(values)
    assert t.labels == ["anger", "joy", "love"]
    assert t.counts == [2, 2, 2] and t.n_rows == 3
    y = t.encode(values)
    assert y.dtype == np.float32 and y.shape == (3, 3)
    assert y.tolist() == [[0, 1, 1], [1, 0, 0], [1, 1, 1]]
    assert t.decode(y) == [["joy", "love"], ["anger"], ["anger", "joy", "love"]]


def test_json_lists_python_lists_and_numbers_are_label_sets_too():
    values = np.array(['["b", "a"]', ["a"], 3, 3.0, "a,3"], dtype=object)
    t = MultiLabelTarget("y").fit(values)
    assert t.labels == ["3", "a", "b"]  # 3 and 3.0 are one label
    assert t.encode(values).tolist() == [[0, 1, 1], [0, 1, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0]]


def test_names_file_maps_goemotions_ids_to_names_in_id_order():
    train = read_split("train")
    t = MultiLabelTarget("labels", separator=",", names_path=str(DATA / "emotions.txt")).fit(train["labels"].to_numpy())
    assert len(t.labels) == 28 and t.labels[0] == "admiration" and t.labels[27] == "neutral"
    y = t.encode(train["labels"].to_numpy())
    assert y.shape == (2000, 28) and y.sum(1).min() >= 1
    first = [int(i) for i in train["labels"][0].split(",")]
    assert np.flatnonzero(y[0]).tolist() == sorted(first)
    assert y.sum(0).astype(int).tolist() == t.counts
    # names and ids are both accepted once a mapping is known
    assert t.encode(np.array(["anger,17", "joy"], dtype=object)).sum(0)[[2, 17]].tolist() == [1.0, 2.0]


def test_thresholds_and_names_survive_to_json_from_json(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nbird")
    t = MultiLabelTarget("pets", names_path=str(names)).fit(np.array(["0,2", "1"], dtype=object))
    t.set_thresholds([0.3, 0.6, 0.9])
    names.unlink()  # a bundle never reads the names file again
    back = MultiLabelTarget.from_json(json.loads(json.dumps(t.to_json())))
    assert back.labels == ["cat", "dog", "bird"] and back.thresholds == [0.3, 0.6, 0.9]
    assert back.encode(np.array(["2"], dtype=object)).tolist() == [[0, 0, 1]]
    probs = np.array([[0.35, 0.55, 0.95], [0.1, 0.7, 0.5]])
    assert back.decode(probs) == [["cat", "bird"], ["dog"]]
    assert back.decode(probs, [0.5, 0.5, 0.5]) == [["dog", "bird"], ["dog", "bird"]]


def test_an_unexpected_separator_is_a_one_line_error_naming_the_setting():
    with pytest.raises(DataError) as err:
        MultiLabelTarget("labels", separator=",").fit(np.array(["2", "2;17"], dtype=object))
    msg = str(err.value)
    assert "\n" not in msg and "row 1" in msg and "separator" in msg and "';'" in msg and "set separator: ';'" in msg


def test_a_listed_name_may_hold_another_separator():
    t = MultiLabelTarget("y", names=["rock;pop", "jazz"]).fit(np.array(["rock;pop,jazz", "1"], dtype=object))
    assert t.labels == ["rock;pop", "jazz"]
    assert t.encode(np.array(["0,1", "rock;pop"], dtype=object)).tolist() == [[1, 1], [1, 0]]
    assert MultiLabelTarget("y").fit(np.array([np.float32(2.0), np.int64(3)], dtype=object)).labels == ["2", "3"]


def test_the_separator_check_also_guards_evaluation_data():
    t = MultiLabelTarget("labels", separator="|").fit(np.array(["a|b", "a"], dtype=object))
    with pytest.raises(DataError, match=r"row 0: .*separated by ','.*set separator: ','"):
        t.encode(np.array(["a,b"], dtype=object))


def test_an_empty_label_set_is_refused_unless_allowed():
    values = np.array(["a", "", None, "b"], dtype=object)
    with pytest.raises(DataError, match=r"row 1: target 'y' has no labels; .*allow_empty: true"):
        MultiLabelTarget("y").fit(values)
    t = MultiLabelTarget("y", allow_empty=True).fit(values)
    assert t.encode(values).tolist() == [[1, 0], [0, 0], [0, 0], [0, 1]]


def test_a_label_never_seen_in_training_is_an_error_at_evaluation():
    t = MultiLabelTarget("y").fit(np.array(["a", "b"], dtype=object))
    with pytest.raises(DataError) as err:
        t.encode(np.array(["a", "b,c"], dtype=object))
    msg = str(err.value)
    assert "\n" not in msg and "row 1" in msg and "'c'" in msg and "never seen in training" in msg


def test_a_label_outside_the_names_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"row 0: .*label '28', which is not among the 28 label names"):
        MultiLabelTarget("labels", names_path=str(DATA / "emotions.txt")).fit(np.array(["3,28"], dtype=object))
    with pytest.raises(DataError, match="cannot be read"):
        read_names(tmp_path / "missing.txt")


def test_decode_checks_its_shapes():
    t = MultiLabelTarget("y").fit(np.array(["a", "b"], dtype=object))
    with pytest.raises(ValueError):
        t.decode(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        t.set_thresholds([0.5])


def test_settings_build_the_target_and_refuse_a_misspelt_key():
    s = OutputConfig(name="y", type="multilabel", separator="|", allow_empty=True)
    t = MultiLabelTarget.from_settings(s).fit(np.array(["a|b", ""], dtype=object))
    assert t.labels == ["a", "b"] and t.allow_empty
    assert OutputConfig(name="y", type="multilabel").threshold == "tune"
    with pytest.raises(ValueError, match="seperator"):
        OutputConfig(name="y", type="multilabel", seperator=";")
    with pytest.raises(ValueError):
        OutputConfig(name="y", type="multilabel", threshold="sometimes")
