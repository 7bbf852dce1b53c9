"""Language models and text classifiers end to end through the CLI, on shipped data."""

import json

import pytest

import forgeml
from forgeml.cli import main
from forgeml.errors import ConfigError, DataError, RequestError
from forgeml.predictor import Predictor
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
    assert type(lm) is Predictor and lm.task == "language_model"  # one type for every bundle
    [pred] = lm.predict(["ROMEO"])  # a next-token output predicts the next token after the prompt
    assert set(pred) == {"token", "probability", "top"} and pred["token"] == max(pred["top"], key=pred["top"].get)
    assert len(lm.predict([{"text": "To be"}, "ROMEO:"])) == 2


@pytest.mark.parametrize("setting", ["train.loss=mse", "train.label_smoothing=0.1", "train.class_weights=balanced",
                                     "train.class_weights=[1.0,2.0]"])
def test_loss_settings_a_language_model_would_ignore_are_refused(runs, setting):
    with pytest.raises(ConfigError, match=setting.split("=")[0] + ": .*a GPT always trains on plain next-token cross entropy"):
        forgeml.train("examples/shakespeare-gpt.yaml", [f"runs_dir={runs}", setting, "train.max_steps=1", "train.eval_batches=1",
                                                        "train.progress=false", "model.n_layer=1", "model.n_embd=16"])
    assert list(runs.iterdir()) == []


def test_the_loss_a_language_model_trains_on_may_be_named():
    from forgeml.config import load_config
    from forgeml.models.compose import check_next_token_settings

    check_next_token_settings(load_config("examples/shakespeare-gpt.yaml", ["train.loss=cross_entropy", "train.label_smoothing=0"]).train)


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


def test_review_fixes_for_language_models(lm_run, tmp_path, capsys):
    import torch

    from forgeml.bundle import Bundle

    lm = forgeml.load(lm_run)
    assert Bundle(lm_run).meta()["config_digest"]  # a hand-edited config.yaml is caught on resume
    torch.manual_seed(0)
    lm.generate("A", 5)  # unseeded: must not reseed torch's global generator
    assert torch.equal(torch.rand(3), (torch.manual_seed(0), torch.rand(3))[1])
    for bad in ({"top_k": 0}, {"top_k": -2}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(RequestError):
            lm.generate("A", 5, **bad)
    short = lm.evaluate_text("To be, or not to be, that is the question: " * 3)  # fewer windows than a batch
    assert short["n_tokens"] == ((len("To be, or not to be, that is the question: " * 3) - 1) // 64) * 64
    assert main(["generate", "data"]) == 2  # not a run folder: a clear error, exit 2
    assert "error:" in capsys.readouterr().err


def test_a_fresh_runs_dir_and_a_text_model_asked_to_generate(tmp_path, runs, capsys):
    fresh = tmp_path / "not" / "there" / "yet"
    run = forgeml.train("examples/shakespeare-gpt.yaml", {"runs_dir": str(fresh), "train.max_steps": 4, "model.n_layer": 1,
                                                          "train.eval_every_steps": 2, "train.eval_batches": 1,
                                                          "train.progress": False, "train.tensorboard": False})
    assert run.parent == fresh and [p.name for p in fresh.iterdir()] == [run.name]  # no staging folder left
    assert main(["train", "examples/sms-spam-lstm.yaml", *quick(runs, "data.limit=300", "train.epochs=1")]) == 0
    capsys.readouterr()
    assert main(["generate", str(runs / "sms-spam-lstm"), "--prompt", "hi"]) == 2
    assert "no next-token output, so it does not generate text" in capsys.readouterr().err.replace("\n", " ")
    assert main(["predict", str(runs / "sms-spam-lstm"), "[URGENT] call now", "--json"]) == 0  # text, not JSON
    assert json.loads(capsys.readouterr().out)["input"] == "[URGENT] call now"
    with pytest.raises(ConfigError, match="train.monitor"):
        forgeml.train("examples/shakespeare-gpt.yaml", {"runs_dir": str(runs), "train.monitor": "val.acuracy"})


def test_a_too_short_held_out_text_means_no_val_file(tmp_path, runs):
    text = tmp_path / "t.txt"
    text.write_text("abcdefghij" * 60)  # 600 characters: the 1% held out cannot fill a 16-token window
    run = forgeml.train("examples/shakespeare-gpt.yaml", {
        "runs_dir": str(runs), "data.path": str(text), "data.split.val": 0.01, "model.block_size": 16, "model.n_layer": 1,
        "train.max_steps": 6, "train.eval_every_steps": 3, "train.progress": False, "train.tensorboard": False})
    assert not (run / "data" / "val.bin").exists()
    assert json.loads((run / "metrics.json").read_text()) == {}


def test_a_gpt_bundle_of_the_old_layout_is_refused_then_upgraded_to_the_same_text(lm_run, tmp_path, capsys):
    """Before the GPT moved onto the Network its bundle said format 2 but kept its own layout: features.json
    version 1 ({tokenizer, block_size}) and the GPT class's weight names. Rebuilt here by hand from a new run."""
    import shutil

    import torch

    from forgeml.bundle import load_safetensors, save_safetensors
    from forgeml.training.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "old-gpt"
    shutil.copytree(lm_run, run)
    new = json.loads((run / "features.json").read_text())
    old_names = lambda state: {("lm_head.weight" if k.startswith("heads.") else k.removeprefix("encoders.text.")): v  # noqa: E731
                               for k, v in state.items()}
    for path in (run / "model.safetensors", run / "checkpoints" / "best.safetensors"):
        if path.is_file():
            save_safetensors(path, old_names(load_safetensors(path)))
    last = run / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    save_checkpoint(last, {**state, "model": old_names(state["model"])})
    corpus = new["inputs"][0]
    (run / "features.json").write_text(json.dumps({"version": 1, "task": "language_model", "schema": {"prompt": "text"},
                                                   "block_size": corpus["block_size"], "vocab_size": corpus["vocab_size"],
                                                   "tokenizer": corpus["tokenizer"]}))
    assert main(["generate", str(run), "--prompt", "A"]) == 2
    assert "forgeml upgrade RUN" in capsys.readouterr().err
    assert main(["upgrade", str(run)]) == 0
    assert "checkpoints/last.pt: model weights renamed" in capsys.readouterr().out
    assert json.loads((run / "features.json").read_text()) == new
    assert forgeml.load(run).generate("ROMEO:", 30, seed=1) == forgeml.load(lm_run).generate("ROMEO:", 30, seed=1)
    renamed = load_checkpoint(last)["model"]
    assert renamed.keys() == state["model"].keys() and all(torch.equal(renamed[k], state["model"][k]) for k in renamed)
    assert main(["upgrade", str(run)]) == 0 and "nothing to do" in capsys.readouterr().out


def test_predict_on_a_language_model_gives_the_next_token_from_the_cli(lm_run, capsys):
    assert main(["predict", str(lm_run), "ROMEO:", "To be or", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in rows] == ["ROMEO:", "To be or"] and all(len(r["top"]) == 5 for r in rows)
    assert rows[0]["token"] == forgeml.load(lm_run).predict(["ROMEO:"])[0]["token"]
    assert main(["predict", str(lm_run), "ROMEO:"]) == 0
    assert "next token" in capsys.readouterr().out
