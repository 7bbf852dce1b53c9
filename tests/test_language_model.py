"""Language models and text classifiers end to end through the CLI, on shipped data."""

import json

import pytest

import forgeml
from forgeml.cli import main
from forgeml.errors import ConfigError, DataError, RequestError
from tests.conftest import quick


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return forgeml.train("examples/shakespeare-gpt.yaml", {
        "runs_dir": str(runs), "train.max_steps": 40, "train.warmup_steps": 5, "train.eval_every_steps": 20, "train.eval_batches": 4,
        "train.progress": False, "train.tensorboard": False, "model.n_layer": 2, "model.n_embd": 64})


def test_train_evaluate_and_generate_repeatably(lm_run, capsys):
    metrics = json.loads((lm_run / "metrics.json").read_text())["val"]
    assert metrics["perplexity"] == pytest.approx(2.718281828 ** metrics["loss"], rel=1e-6)
    assert metrics["loss"] < 3.5  # from ln(67) = 4.2 at the start
    history = [json.loads(x) for x in (lm_run / "history.jsonl").read_text().splitlines()]
    assert any("tokens_per_s" in r for r in history) and any(r["split"] == "val" and "perplexity" in r for r in history)
    args = ["generate", str(lm_run), "--prompt", "ROMEO:", "--max-new-tokens", "100", "--temperature", "0.8",
            "--top-k", "40", "--seed", "1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0 and capsys.readouterr().out == first and first.startswith("ROMEO:")
    assert main([*args, "--no-cache"]) == 0 and capsys.readouterr().out == first  # the cache changes speed, not text
    assert main(["evaluate", str(lm_run), "--json"]) == 0
    assert "perplexity" in json.loads(capsys.readouterr().out)["val"]


def test_generation_edge_cases(lm_run):
    lm = forgeml.load(lm_run)
    assert len(lm.generate("ROMEO€:", 10, seed=0)) > 0  # an unknown character is <unk>, not a crash
    assert len(lm.generate("", 10, seed=0)) > 0  # an empty prompt starts a new line
    long = lm.generate("A", 200, seed=0, temperature=0.5)  # past the 64-token context: the window slides
    assert len(long) >= 150
    assert "\n\n" not in lm.generate("ROMEO:", 300, seed=2, stop=["\n\n"])
    with pytest.raises(RequestError, match="max_new_tokens"):
        lm.generate("x", 0)
    with pytest.raises(RequestError, match="generate"):
        lm.predict(["x"])


def test_language_model_bad_input_leaves_no_run(runs, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        forgeml.train("examples/shakespeare-gpt.yaml", {"runs_dir": str(runs), "data.path": str(empty)})
    with pytest.raises(ConfigError, match="block_size"):
        forgeml.train("examples/shakespeare-gpt.yaml", {"runs_dir": str(runs), "data.path": "data/sms_spam/SOURCE.md",
                                                        "model.block_size": 4096})
    assert [p for p in runs.iterdir() if not p.name.startswith(".")] == [] and list(runs.iterdir()) == []


@pytest.mark.parametrize("name", ["sms-spam-transformer", "sms-spam-lstm"])
def test_text_classifiers_train_and_predict_raw_strings(name, runs, capsys):
    assert main(["train", f"examples/{name}.yaml", *quick(runs, "data.limit=1200", "train.epochs=2")]) == 0
    capsys.readouterr()
    assert main(["predict", str(runs / name), "WINNER!! claim your free prize now", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert set(pred["probabilities"]) == {"ham", "spam"}
    model = forgeml.load(runs / name)
    assert len(model.predict(["hello", "free entry win cash"])) == 2
    with pytest.raises(RequestError, match="non-empty string"):
        model.predict([""])
