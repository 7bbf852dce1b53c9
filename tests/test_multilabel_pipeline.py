"""A multilabel output end to end through the CLI: train on the GoEmotions sample, thresholds tuned on the
dev split and kept in features.json, then evaluate and predict show label sets and macro/micro F1."""

import json

import numpy as np
import pytest
import torch

import forgeml
from forgeml.cli import main
from forgeml.config import load_config
from forgeml.data.features.multilabel import MultiLabelTarget
from tests.conftest import quick

EXAMPLE = "examples/goemotions-multilabel.yaml"
FEW_STEPS = ["train.max_steps=12", "model.hidden=16", "model.embed_dim=16", "eval.splits=[val,test]"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    assert main(["train", EXAMPLE, *quick(runs, *FEW_STEPS)]) == 0
    return runs / "goemotions-multilabel"


def test_train_tunes_thresholds_on_val_and_keeps_them_in_features_json(run):
    features = json.loads((run / "features.json").read_text())
    out = features["outputs"][0]
    assert features["task"] == "multilabel" and out["kind"] == "multilabel"
    assert out["labels"][:3] == ["admiration", "amusement", "anger"] and len(out["labels"]) == 28  # emotions.txt's names
    assert len(out["thresholds"]) == 28 and all(0 < t < 1 for t in out["thresholds"])
    assert any(t != 0.5 for t in out["thresholds"]), "threshold: tune left every label at 0.5"
    metrics = json.loads((run / "metrics.json").read_text())
    per_label = metrics["test"]["per_label"]
    assert [per_label[label]["threshold"] for label in out["labels"]] == pytest.approx(out["thresholds"])  # measured at them
    for key in ("f1_macro", "f1_micro", "precision_micro", "recall_micro", "subset_accuracy"):
        assert 0 <= metrics["test"][key] <= 1


def test_evaluate_shows_macro_and_micro_f1(run, capsys):
    assert main(["evaluate", str(run)]) == 0  # refits the features; tuned thresholds are not a data change
    out = capsys.readouterr().out
    assert "f1_macro" in out and "f1_micro" in out


def test_load_predicts_label_sets_and_every_probability(run):
    model = forgeml.load(run)
    rows = model.predict(["Thank you so much, this made my day", "I hate this, it is awful"])
    target = model.features.target
    for row in rows:
        assert set(row) == {"labels", "probabilities"} and len(row["probabilities"]) == 28
        chosen = [label for label, t in zip(target.labels, target.thresholds) if row["probabilities"][label] >= t]
        assert row["labels"] == chosen  # the set is exactly the labels at or above their tuned threshold


def test_cli_predict_prints_the_label_sets(run, capsys):
    assert main(["predict", str(run), "what a lovely surprise"]) == 0
    out = capsys.readouterr().out
    assert "labels" in out and "top 3" in out


def test_a_number_threshold_is_used_for_every_label(run):
    from forgeml.pipeline import set_thresholds

    cfg = load_config(EXAMPLE, ["data.outputs=[{name: labels, type: multilabel, names_path: data/goemotions/emotions.txt, "
                                "threshold: 0.3}]"])
    model = forgeml.load(run)
    assert set_thresholds(cfg, model, None)  # a number needs no validation split
    assert model.features.target.thresholds == [0.3] * 28


def test_decode_rows_gives_the_set_and_every_probability():
    target = MultiLabelTarget("labels").fit(np.array(["a,b", "a", "b"], dtype=object))
    target.set_thresholds([0.3, 0.3])
    rows = target.decode_rows(torch.tensor([[0.0, -2.0]]))  # sigmoid: 0.5 and 0.12
    assert rows[0]["labels"] == ["a"] and rows[0]["probabilities"]["b"] == pytest.approx(0.1192, abs=1e-4)


@pytest.mark.parametrize("setting, message", [
    ("data.outputs=[{name: labels, type: multilabel, threshold: 1.5}]", "threshold of output 'labels'"),
    ("data.outputs=[{name: labels, type: multilabel, loss: mse}]", "use bce"),
])
def test_config_mistakes_are_one_line_errors(  # ConfigError, printed by the CLI as one line
        setting, message, tmp_path, capsys):
    code = main(["train", EXAMPLE, *quick(tmp_path, "train.max_steps=1", setting)])
    err = capsys.readouterr().err
    assert code != 0 and message in err
