"""Predictor.explain on real runs: mass on the informative inputs, one value per token, HxW heat maps, completeness,
several outputs, and clear errors for what does not apply."""

from __future__ import annotations

import numpy as np
import pytest

import forgeml
from forgeml.data.columns import Columns
from forgeml.errors import RequestError
from forgeml.explain import METHODS
from forgeml.explain.global_view import global_view
from forgeml.explain.per_kind import total

INFORMATIVE = ("x0", "x1", "c0")


def rows_of(test, n=64):
    return test.drop(columns=["y", "z"]).iloc[:n].to_dict(orient="records")


@pytest.mark.parametrize("method", METHODS)
def test_most_attribution_mass_lands_on_the_informative_columns(known_run, method):
    run, test = known_run
    explained = forgeml.load(run).explain(rows_of(test), method=method, output="y")
    inside = sum(abs(e["attributions"][c]) for e in explained for c in INFORMATIVE)
    every = sum(abs(v) for e in explained for v in e["attributions"].values())
    assert inside / every > 0.8, {c: round(sum(abs(e["attributions"][c]) for e in explained), 3) for c in explained[0]["attributions"]}


def test_every_output_is_explained_and_the_regression_output_reads_its_own_column(known_run):
    run, test = known_run
    model = forgeml.load(run)
    explained = model.explain(rows_of(test, 16))
    assert set(explained[0]) == {"y", "z"}
    assert explained[0]["y"]["target"] in ("yes", "no") and explained[0]["z"]["target"] == "z"
    z = [e["z"]["attributions"] for e in explained]
    # an even spread would give x2 1/8; the shared trunk, a few epochs in, still leaks some of y's columns into z
    assert sum(abs(a["x2"]) for a in z) / sum(abs(v) for a in z for v in a.values()) > 0.6
    pred = model.predict(rows_of(test, 1))[0]["z"]["prediction"]
    assert explained[0]["z"]["score"] == pytest.approx(pred, rel=1e-4)  # the value is in the target's units


def test_integrated_gradients_is_complete(known_run):
    run, test = known_run
    for e in forgeml.load(run).explain(rows_of(test, 32), output="y"):
        assert total(e["attributions"]) == pytest.approx(e["score"] - e["baseline"], abs=0.02)
        assert abs(e["delta"]) < 0.02


def test_a_named_target_is_explained_instead_of_the_predicted_class(known_run):
    run, test = known_run
    model = forgeml.load(run)
    yes = model.explain(rows_of(test, 8), output="y", target="yes")
    no = model.explain(rows_of(test, 8), output="y", target="no")
    assert {e["target"] for e in yes} == {"yes"} and {e["target"] for e in no} == {"no"}
    for a, b in zip(yes, no):  # two classes: P(yes) = 1 - P(no), so their attributions are opposite
        assert a["attributions"]["x0"] == pytest.approx(-b["attributions"]["x0"], abs=1e-3)


def test_text_gives_one_value_per_token_as_the_tokenizer_split_it(text_run):
    model = forgeml.load(text_run)
    texts = ["WINNER you have won a free prize call now", "ok see you at home"]
    feature = model.features.inputs[0]
    for method in METHODS:
        explained = model.explain(texts, method=method)
        for text, e in zip(texts, explained):
            ids = feature.encode(np.array([text], dtype=object))[0]
            tokens = e["attributions"][feature.name]
            assert [t for t, _ in tokens] == [feature.tokenizer.decode([i]) for i in ids]
            assert all(np.isfinite(a) for _, a in tokens)


def test_an_image_gives_an_hxw_heat_map(digits_run):
    from sklearn.datasets import load_digits

    model = forgeml.load(digits_run)
    images = load_digits().images[:3].astype(np.float32)
    name = model.features.inputs[0].name
    for method in METHODS:
        explained = model.explain([{name: im} for im in images], method=method)
        assert [e["attributions"][name].shape for e in explained] == [(8, 8)] * 3
        assert all(np.abs(e["attributions"][name]).sum() > 0 for e in explained)


def test_what_does_not_apply_is_a_clear_error(known_run):
    run, test = known_run
    model = forgeml.load(run)
    row = rows_of(test, 1)
    with pytest.raises(RequestError, match="choose one of integrated_gradients, shap, occlusion"):
        model.explain(row, method="lime")
    with pytest.raises(RequestError, match="name the one the target belongs to"):
        model.explain(row, target="yes")
    with pytest.raises(RequestError, match="not a class of 'y'.*classes: no, yes"):
        model.explain(row, output="y", target="maybe")
    with pytest.raises(RequestError, match="regression with one value"):
        model.explain(row, output="z", target="1")
    with pytest.raises(RequestError, match="not an output"):
        model.explain(row, output="w")


def test_a_language_model_is_refused_with_what_is_supported(tmp_path):
    run = forgeml.train("examples/shakespeare-gpt.yaml", {
        "runs_dir": str(tmp_path), "train.max_steps": 1, "train.warmup_steps": 0, "train.eval_batches": 1,
        "train.progress": False, "train.tensorboard": False, "eval.splits": [], "model.n_layer": 1, "model.n_embd": 16, "model.n_head": 2})
    with pytest.raises(RequestError, match="language model.*explanations support class, multi-label and regression"):
        forgeml.load(run).explain(["ROMEO:"])


def test_global_view_ranks_the_informative_columns_first_both_ways(known_run):
    run, test = known_run
    cols = Columns({k: v.to_numpy() for k, v in test.items()}, "test")
    view = global_view(forgeml.load(run), cols, max_rows=100)
    assert view["rows"] == 100 and view["output"] == "y" and view["metric"] == "accuracy"
    for ranking in (view["attribution"], view["permutation"]):
        assert set(sorted(ranking, key=ranking.get, reverse=True)[:3]) == set(INFORMATIVE)


def test_shap_gives_the_same_numbers_for_the_same_rows(known_run):
    run, test = known_run
    model = forgeml.load(run)
    np.random.seed(1)
    first = model.explain(rows_of(test, 8), method="shap", output="y")
    np.random.seed(2)  # the global generators' state does not leak in (nor is it changed for the caller)
    after = np.random.random()
    np.random.seed(2)
    second = model.explain(rows_of(test, 8), method="shap", output="y")
    assert np.random.random() == after
    assert [e["attributions"] for e in first] == [e["attributions"] for e in second]
