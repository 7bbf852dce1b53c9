import json

import numpy as np
import pytest

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
    train = Columns({"a": np.array([1.0, 2.0, 3.0, 4.0]), "c": np.array(["x", "y", "x", "y"], dtype=object),
                     "label": np.array(["p", "q", "p", "q"], dtype=object)})
    fs = FeatureSet.fit(train, DataConfig(), "label")
    again = FeatureSet.from_json(json.loads(json.dumps(fs.to_json())))
    test = Columns({"a": np.array([100.0]), "c": np.array(["z"], dtype=object), "label": np.array(["p"], dtype=object)})
    assert np.array_equal(fs.transform_inputs(test).numpy(), again.transform_inputs(test).numpy())
    assert fs.transform_inputs(test)[0, 0] > 10  # standardised with the training mean/std, not the test row's
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
