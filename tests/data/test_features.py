import json

import numpy as np
import pytest
import torch

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.data.features import (
    BinaryFeature,
    CategoryFeature,
    ClassLabels,
    ImageFeature,
    NumericFeature,
    RegressionTarget,
)
from forgeml.data.featureset import FeatureSet, infer_kind, infer_task
from forgeml.errors import DataError, RequestError


def roundtrip(feature):
    return type(feature).from_json(json.loads(json.dumps(feature.to_json())))


def test_numeric_imputes_with_training_median_flags_and_standardises():
    f = NumericFeature("age").fit(np.array([1.0, 2.0, np.nan, 5.0]))
    assert f.fill == 2.0 and f.flag and f.width == 2
    out = roundtrip(f).transform(np.array([np.nan, 5.0]))
    assert out[0, 1] == 1.0 and out[1, 1] == 0.0
    assert out[0, 0] == pytest.approx((2.0 - f.mean) / f.std)
    with pytest.raises(DataError, match="row 1: 'abc' is not a number"):
        f.transform(np.array(["1", "abc"], dtype=object))


def test_category_vocabulary_unknown_bucket_and_min_count():
    f = CategoryFeature("colour", min_count=2).fit(np.array(["red", "red", "blue", "blue", "green", None], dtype=object))
    assert f.vocab == ["blue", "red"]  # green and <missing> seen once
    out = roundtrip(f).transform(np.array(["red", "purple"], dtype=object))
    assert out.tolist() == [[0, 0, 1], [1, 0, 0]]  # index 0 is the unknown bucket


def test_binary_and_image_features():
    b = BinaryFeature("sex").fit(np.array(["Male", "Female", "Male"], dtype=object))
    assert roundtrip(b).transform(np.array(["Male", "Female"], dtype=object)).ravel().tolist() == [1.0, 0.0]
    imgs = np.random.default_rng(0).integers(0, 255, (10, 1, 4, 4)).astype(np.uint8)
    im = ImageFeature("image").fit(imgs)
    out = roundtrip(im).transform(imgs)
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-3
    with pytest.raises(DataError, match="expected shape"):
        im.transform(np.zeros((2, 1, 5, 5)))


def test_targets():
    t = ClassLabels("y").fit(np.array([10, 2, 2, 10, 1]))
    assert t.classes == ["1", "2", "10"] and t.counts == [1, 2, 2]  # numeric order, not text order
    assert t.encode(np.array([2, 10])).tolist() == [1, 2]
    with pytest.raises(DataError, match="never seen in training"):
        t.encode(np.array([3]))
    r = RegressionTarget("q").fit(np.array([1.0, 3.0]))
    assert np.allclose(r.decode(r.encode(np.array([2.0, 5.0]))), [2.0, 5.0])


def test_inference_of_kinds_and_task():
    assert infer_kind(np.array([1.0, 2.5, 3.0])) == "numeric"
    assert infer_kind(np.array([0.0, 1.0, 1.0])) == "binary"
    assert infer_kind(np.array(["a", "b", "c"], dtype=object)) == "category"
    assert infer_task(np.array(["x", "y"], dtype=object)) == "classification"
    assert infer_task(np.array([1.5, 2.25])) == "regression"


def test_featureset_fits_on_train_only_and_round_trips():
    train = Columns({"a": np.array([1.0, 2.0, 3.0, 4.0]), "c": np.array(["x", "y", "w", "y"], dtype=object),
                     "label": np.array(["p", "q", "p", "q"], dtype=object)})
    fs = FeatureSet.fit(train, DataConfig(), "label")
    again = FeatureSet.from_json(json.loads(json.dumps(fs.to_json())))
    test = Columns({"a": np.array([100.0]), "c": np.array(["z"], dtype=object), "label": np.array(["p"], dtype=object)})
    x, x_again = fs.transform_inputs(test), again.transform_inputs(test)
    assert list(x) == ["a", "c"] and all(torch.equal(x[k], x_again[k]) for k in x)
    assert x["a"][0, 0] > 10  # standardised with the training mean/std, not the test row's
    assert x["c"].dtype == torch.int64 and x["c"].tolist() == [0]  # a category is an index; 'z' is unknown (0)
    with pytest.raises(DataError, match="no target column 'lable'.*did you mean label"):
        FeatureSet.fit(train, DataConfig(), "lable")


def test_rows_to_columns_validates_keys():
    train = Columns({"age": np.array([1.0, 2.0]), "label": np.array(["a", "b"], dtype=object)})
    fs = FeatureSet.fit(train, DataConfig(), "label")
    assert len(fs.rows_to_columns([{"age": None}, {"age": 3}])) == 2
    with pytest.raises(RequestError, match="unknown key 'agee'; did you mean age"):
        fs.rows_to_columns([{"agee": 1}])
    with pytest.raises(RequestError, match="missing age"):
        fs.rows_to_columns([{}])


def test_a_non_number_in_a_numeric_column_is_a_warning_with_its_file_line(tmp_path, caplog):
    import logging

    from forgeml.config import DataConfig
    from forgeml.data.prepare import prepare

    table = tmp_path / "t.csv"
    lines = [f"{20 + i},{'a' if i % 2 else 'b'},{'x' if i % 3 else 'y'}" for i in range(12)]
    lines[7] = "?,a,x"  # file line 9: the header is line 1
    table.write_text("age,work,label\n" + "\n".join(lines) + "\n")
    split = {"val": 0, "test": 0}
    with caplog.at_level(logging.INFO, logger="forgeml"):
        data = prepare(DataConfig(path=str(table), split=split))
    assert "not a number" not in caplog.text  # kept for train to say once; evaluate and report refit quietly
    [text] = data.features.warnings
    assert "column 'age' line 9: '?' is not a number (1 such values)" in text
    assert "data.features: {age: numeric} and data.na_values: ['?']" in text
    assert data.features.summary == "columns: age category (12 values), work binary; target label: classification, 2 classes"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="forgeml"):
        data = prepare(DataConfig(path=str(table), split=split, features={"age": "numeric"}, na_values=["?"]))
    assert data.features.warnings == [] and data.features.summary.startswith("columns: age numeric, work binary")
    # declared numeric without the missing marker: the error cites line 9 whichever split the row fell in
    for seed in range(3):
        with pytest.raises(DataError, match=r"column 'age' line 9: '\?' is not a number"):
            prepare(DataConfig(path=str(table), split={"val": 0.25, "test": 0.25, "seed": seed}, features={"age": "numeric"}))
    val = tmp_path / "val.csv"
    val.write_text("age,work,label\n\n30,a,x\n31,b,zzz\n")
    with pytest.raises(DataError, match="val.csv: line 4: target 'label' = 'zzz' was never seen"):
        prepare(DataConfig(path=str(table), val_path=str(val), na_values=["?"]))


def test_text_and_label_columns_swapped_name_the_label(tmp_path):
    from forgeml.config import DataConfig
    from forgeml.data.prepare import prepare

    sms = [line.split("\t", 1) for line in open("data/sms_spam/SMSSpamCollection").read().splitlines()[:40]]
    table = tmp_path / "sms.tsv"
    table.write_text("label\ttext\n" + "\n".join(f"{t}\t{lab}" for lab, t in sms) + "\n")  # columns swapped
    with pytest.raises(DataError, match=r"target 'label' has \d+ different values in 40 rows, like free text.*"
                                        r"column 'text' \(2 values\) looks like the label: set data.target: text"):
        prepare(DataConfig(path=str(table), quote_char=None, split={"val": 0, "test": 0}))
    ok = prepare(DataConfig(path=str(table), quote_char=None, target="text", features={"label": "text"},
                            split={"val": 0, "test": 0}))
    assert ok.features.target.classes == ["ham", "spam"]
