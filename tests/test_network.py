"""Issue 10: the Network contract (dict in, dict out), mixed inputs and several outputs end to end through
the CLI, the bad-input errors, bundle format 2 and the upgrade of a format-1 bundle."""

import json
from pathlib import Path

import pytest
import torch

import forgeml
from forgeml.cli import main
from forgeml.config import CompositeConfig, ConcatCombinerConfig, TransformerCombinerConfig, load_config
from forgeml.data.features import CategoryFeature, ClassLabels, NumericFeature, RegressionTarget
from forgeml.errors import BundleError, ConfigError
from forgeml.models import build_network

QUIET = {"train.progress": False, "train.tensorboard": False}
CLOTHING = "examples/clothing-mixed.yaml"
MULTI = "examples/adult-multitask.yaml"


class Text:  # a fitted text feature's shape, all an encoder reads
    kind, vocab_size, max_length = "text", 40, 16

    def __init__(self, name):
        self.name = name


def mixed_network(combiner):
    inputs = [NumericFeature("age"), CategoryFeature("colour", ["blue", "red"]), Text("review")]
    outputs = [ClassLabels("liked", ["no", "yes"]), RegressionTarget("price")]
    cfg = CompositeConfig(encoders={"tabular": {"name": "tabular", "embed_dim": 3}, "text": {"name": "rnn", "hidden": 8, "embed_dim": 8}},
                          combiner=combiner)
    return build_network(cfg, inputs, outputs, seed=0)


@pytest.mark.parametrize("combiner", [ConcatCombinerConfig(hidden=[16]), TransformerCombinerConfig(d_model=16, heads=2, layers=1)])
def test_network_takes_a_dict_and_gives_a_dict_per_the_contract(combiner):
    net = mixed_network(combiner)
    B = 5
    inputs = {"age": torch.randn(B, 1), "colour": torch.tensor([0, 1, 2, 1, 0]), "review": torch.randint(1, 40, (B, 7))}
    out = net(inputs)
    assert list(out) == ["liked", "price"]
    assert out["liked"].shape == (B, 2) and out["liked"].dtype == torch.float32
    assert out["price"].shape == (B, 1)
    targets = {"liked": torch.tensor([0, 1, 1, 0, 1]), "price": torch.randn(B, 1)}
    heads = net.heads
    by_hand = (torch.nn.functional.cross_entropy(out["liked"], targets["liked"])
               + torch.nn.functional.mse_loss(out["price"], targets["price"]))
    torch.testing.assert_close(net.loss(out, targets), by_hand)
    net.weights["price"] = 0.5
    torch.testing.assert_close(net.loss(out, targets), by_hand - 0.5 * heads["price"].loss(out["price"], targets["price"]))


def test_an_encoder_that_cannot_read_a_kind_is_a_config_error():
    cfg = CompositeConfig(encoders={"age": {"name": "cnn"}})
    with pytest.raises(ConfigError, match="'cnn' encoder reads image or audio features, but 'age' is numeric"):
        build_network(cfg, [NumericFeature("age")], [ClassLabels("y", ["a", "b"])])
    with pytest.raises(ConfigError, match="model.encoders.agee: not an input column"):
        build_network(CompositeConfig(encoders={"agee": {"name": "tabular"}}), [NumericFeature("age")], [ClassLabels("y", ["a", "b"])])


@pytest.mark.parametrize("data, message", [
    ({"outputs": [{"name": "income", "weight": 0}]}, "weight of output 'income' is 0; it must be > 0"),
    ({"outputs": [{"name": "income", "weight": -1}]}, "must be > 0"),
    ({"outputs": [{"name": "income"}, {"name": "income", "type": "regression"}]}, "two outputs named 'income'"),
    ({"outputs": [{"name": "income"}], "features": {"income": "category"}}, "'income' is an output .* cannot be both input and output"),
    ({"target": "income", "features": {"income": "category"}}, "cannot be both input and output"),
])
def test_bad_outputs_are_one_line_config_errors(data, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config({"data": data})
    assert len(str(err.value).splitlines()) == 2  # the file, then the one line naming the field


def test_mixed_text_and_table_columns_train_predict_and_evaluate_through_the_cli(tmp_path, capsys):
    sets = ["--set", f"runs_dir={tmp_path}", "--set", "train.epochs=1", "--set", "train.progress=false",
            "--set", "train.tensorboard=false", "--set", "model.encoders.text.hidden=16"]
    assert main(["train", CLOTHING, *sets]) == 0
    run = tmp_path / "clothing-mixed"
    features = json.loads((run / "features.json").read_text())
    assert features["version"] == 2
    assert {f["name"]: f["kind"] for f in features["inputs"]} == {
        "Title": "text", "Review Text": "text", "Age": "numeric", "Positive Feedback Count": "numeric",
        "Division Name": "category", "Department Name": "category", "Class Name": "category"}
    assert [o["name"] for o in features["outputs"]] == ["Recommended IND"]
    weights = forgeml.load(run).model.state_dict()
    assert any(k.startswith("encoders.Title.") for k in weights) and any(k.startswith("encoders.Review Text.") for k in weights)
    assert any(k.startswith("encoders.tabular.embeddings.") for k in weights)  # embed_dim: 8 gives learned embeddings
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1
    row = {"Title": "Love it", "Review Text": "Fits well and the colour is lovely", "Age": 40, "Positive Feedback Count": 0,
           "Division Name": "General", "Department Name": "Tops", "Class Name": "Knits"}
    capsys.readouterr()
    assert main(["predict", str(run), json.dumps(row), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert pred["label"] in ("0", "1") and set(pred["probabilities"]) == {"0", "1"}
    assert main(["evaluate", str(run), "--json"]) == 0


@pytest.fixture(scope="module")
def multitask(tmp_path_factory):
    runs = tmp_path_factory.mktemp("multi")
    return forgeml.train(MULTI, {"runs_dir": str(runs), "train.epochs": 2, "data.limit": 600, **QUIET})


def test_two_outputs_give_metrics_predictions_and_evaluation_per_output(multitask, capsys):
    metrics = json.loads((multitask / "metrics.json").read_text())
    test = metrics["test"]
    assert 0.5 < test["income.accuracy"] <= 1
    assert 0 < test["hours-per-week.mae"] < 20  # hours per week, in the target's own unit
    assert "income.per_class" in test and "loss" in test
    model = forgeml.load(multitask)
    row = {"age": 39, "workclass": "State-gov", "fnlwgt": 77516, "education": "Bachelors", "education-num": 13,
           "marital-status": "Never-married", "occupation": "Adm-clerical", "relationship": "Not-in-family", "race": "White",
           "sex": "Male", "capital-gain": 2174, "capital-loss": 0, "native-country": "United-States"}
    [pred] = model.predict([row])
    assert pred["income"]["label"] in ("<=50K", ">50K") and 0 < pred["hours-per-week"]["prediction"] < 100
    capsys.readouterr()
    assert main(["predict", str(multitask), json.dumps(row)]) == 0
    table = capsys.readouterr().out
    assert "income" in table and "hours-per-week" in table
    result = forgeml.evaluate(multitask)
    assert set(result) == {"val", "test"} and "hours-per-week.r2" in result["test"]
    html = (multitask / "report.html").read_text()
    assert 'id="income-confusion"' in html and 'id="hours-per-week-regression"' in html  # a section per output


def as_format_1(run: Path) -> None:
    """Write a format-2 single-output run back in the old layout by hand: what forgeml before issue 10 saved."""
    from forgeml.bundle import load_safetensors, save_safetensors

    features = json.loads((run / "features.json").read_text())
    target = {k: v for k, v in features["outputs"][0].items() if k != "weight"}
    old = {"version": 1, "task": target["kind"], "input_shape": [0], "schema": features["schema"], "target": target,
           "inputs": features["inputs"]}
    (run / "features.json").write_text(json.dumps(old))
    for path in (run / "model.safetensors", run / "checkpoints" / "best.safetensors"):
        if path.is_file():
            state = load_safetensors(path)
            save_safetensors(path, {k.replace("combiner.body.", "body.").replace(f"heads.{target['name']}.proj.", "head."): v
                                    for k, v in state.items()})
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "format_version": 1}))


def test_format_1_bundle_is_refused_then_upgraded_to_the_same_predictions(tmp_path, capsys):
    run = forgeml.train("examples/adult-mlp.yaml", {"runs_dir": str(tmp_path), "train.epochs": 1, "data.limit": 300, **QUIET})
    rows = [{"age": a, "workclass": "Private", "fnlwgt": 100000, "education": "HS-grad", "education-num": 9,
             "marital-status": "Married-civ-spouse", "occupation": "Sales", "relationship": "Husband", "race": "White",
             "sex": "Male", "capital-gain": 0, "capital-loss": 0, "hours-per-week": 45, "native-country": "United-States"}
            for a in (25, 50)]
    before = forgeml.load(run).predict(rows)
    as_format_1(run)
    assert sorted(load_keys(run))[0].startswith("body.")
    with pytest.raises(BundleError, match=f"format version 1 .* forgeml upgrade {run}"):
        forgeml.load(run)
    assert main(["upgrade", str(run)]) == 0
    assert "weights renamed" in capsys.readouterr().out
    assert forgeml.load(run).predict(rows) == before
    assert main(["upgrade", str(run)]) == 0  # a second time: nothing to do


def load_keys(run: Path) -> list[str]:
    from forgeml.bundle import load_safetensors

    return list(load_safetensors(run / "model.safetensors"))
