"""POST /v1/explain over real HTTP on a real uvicorn server: the same body as predict plus method/output/target."""

from __future__ import annotations

import numpy as np
import pytest

from forgeml.predictor import load
from forgeml.serve.app import MAX_EXPLAIN_ROWS, create_app
from tests.serve.conftest import httpx, running
from tests.serve.test_app import adult_row, digit

pytest.importorskip("captum", reason="the explain extra is not installed: pip install 'forgeml[explain]'")


@pytest.fixture(scope="module")
def adult(tiny_runs):
    with running(create_app(tiny_runs["adult-mlp"])) as (url, _):
        yield url


def test_explain_answers_what_predictor_explain_gives(tiny_runs, adult):
    rows = [adult_row(), adult_row(age=60, education="Masters")]
    r = httpx.post(adult + "/v1/explain", json={"instances": rows, "method": "occlusion"}, timeout=60)
    assert r.status_code == 200, r.text
    got = r.json()["explanations"]
    want = load(tiny_runs["adult-mlp"]).explain(rows, method="occlusion")
    assert [e["target"] for e in got] == [e["target"] for e in want]
    for g, w in zip(got, want):
        assert g["method"] == "occlusion" and set(g["attributions"]) == set(w["attributions"])
        assert g["attributions"]["age"] == pytest.approx(w["attributions"]["age"], abs=1e-5)


def test_one_bare_row_with_a_named_target(adult):
    r = httpx.post(adult + "/v1/explain", json={**adult_row(), "target": ">50K"}, timeout=60)
    assert r.status_code == 200, r.text
    (e,) = r.json()["explanations"]
    assert e["target"] == ">50K" and e["method"] == "integrated_gradients" and "delta" in e


@pytest.mark.parametrize("body, status, field, words", [
    ({"instances": [adult_row()], "method": "lime"}, 422, "method", "choose one of integrated_gradients, shap, occlusion"),
    ({"instances": [adult_row()], "target": "rich"}, 422, "target", "not a class of 'income'"),
    ({"instances": [adult_row()], "method": 3}, 422, "method", "a string expected"),
    ({"instances": [adult_row(age="old")]}, 422, "instances[0].age", "number"),
    ({"instances": [adult_row()] * (MAX_EXPLAIN_ROWS + 1)}, 413, "instances", "at most"),
])
def test_bad_explain_requests_name_the_field(adult, body, status, field, words):
    r = httpx.post(adult + "/v1/explain", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and words in r.json()["error"]


def test_an_image_comes_back_as_an_hxw_heat_map(tiny_runs):
    with running(create_app(tiny_runs["digits-cnn"])) as (url, _):
        r = httpx.post(url + "/v1/explain", json={"instances": [{"image": digit(1)}], "method": "shap"}, timeout=60)
        assert r.status_code == 200, r.text
        heat = np.asarray(r.json()["explanations"][0]["attributions"]["image"])
        assert heat.shape == (8, 8) and np.isfinite(heat).all()
        assert httpx.post(url + "/v1/predict", json={"instances": [{"image": digit(1)}]}, timeout=30).status_code == 200
