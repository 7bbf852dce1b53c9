"""model.init_from: train further from a run's weights, with its tokenizer and architecture; mismatches are refused."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

import forgeml
from forgeml.errors import ConfigError
from forgeml.training.callbacks import Callback
from tests.pretrained_fixtures import sms_config

pytestmark = pytest.mark.usefixtures("one_thread")

SHAKESPEARE = Path("data/tinyshakespeare/input.txt")


class FirstLoss(Callback):
    def __init__(self):
        self.losses = []

    def on_log(self, trainer, record):
        self.losses.append(record["loss"])


def gpt(runs: Path, text: Path, name: str, steps: int, **model) -> dict:
    return {"name": name, "runs_dir": str(runs),
            "data": {"source": "text", "path": str(text), "split": {"val": 0.05}, "text": {"tokenizer": "char"}},
            "model": {"name": "gpt", **model},
            "train": {"max_steps": steps, "batch_size": 16, "lr": 3e-3, "log_every_steps": 1, "eval_batches": 2,
                      "eval_every_steps": steps, "progress": False, "tensorboard": False, "threads": 1}}


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    from tests.conftest import ROOT

    text = (ROOT / SHAKESPEARE).read_text()
    folder = tmp_path_factory.mktemp("texts")
    (folder / "a.txt").write_text(text[:60_000])
    (folder / "b.txt").write_text(text[600_000:630_000])  # other plays, other speakers
    return folder


@pytest.mark.slow
def test_a_gpt_trains_further_on_new_text_with_its_tokenizer(runs, texts):
    arch = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32}
    base = forgeml.train(gpt(runs, texts / "a.txt", "base", 80, **arch))
    further = FirstLoss()
    run = forgeml.train(gpt(runs, texts / "b.txt", "further", 2, init_from=str(base)), callbacks=[further])
    vocab = json.loads((base / "features.json").read_text())["inputs"][0]["vocab_size"]
    # from scratch, a GPT's first loss is ln(vocab) (gpt_init's small weights: uniform predictions, within 0.1);
    # from the base run, the new text starts near where the base run's training ended
    assert further.losses[0] < math.log(vocab) - 0.8
    base_history = [json.loads(x) for x in (base / "history.jsonl").read_text().splitlines()]
    assert further.losses[0] < base_history[0]["loss"] - 0.8  # the base run's own first step, on its own text
    tok = lambda r: json.loads((r / "features.json").read_text())["inputs"][0]["tokenizer"]  # noqa: E731
    assert tok(run) == tok(base)  # the new text was tokenized with the base run's tokenizer
    saved = __import__("yaml").safe_load((run / "config.yaml").read_text())["model"]
    assert saved["n_embd"] == 32 and saved["init_from"] == str(base)  # the architecture came from the bundle
    [pred] = forgeml.load(run).predict(["ROMEO:"])
    assert "token" in pred

    with pytest.raises(ConfigError, match=r"model.init_from: the architecture comes from .*base, but this config sets "
                                          r"model.n_layer to 2 \(the run's: 1\)"):
        forgeml.train(gpt(runs, texts / "b.txt", "x", 2, n_layer=2, init_from=str(base)))
    with pytest.raises(ConfigError, match=r"model.init_from: .*nowhere: no such run folder"):
        forgeml.train(gpt(runs, texts / "b.txt", "x", 2, init_from=str(runs / "nowhere")))
    assert sorted(p.name for p in runs.iterdir()) == ["base", "further"]  # nothing half-written


def test_a_finetuned_pretrained_run_continues_without_its_source(runs, tiny_bert):
    first = forgeml.train(sms_config(runs, tiny_bert, max_steps=2))
    shutil.rmtree(tiny_bert)  # neither the tokenizer nor the weights are read from the source again
    again = forgeml.train(sms_config(runs, tiny_bert, max_steps=1, model={"name": "pretrained", "source": str(tiny_bert),
                                                                            "init_from": str(first)}), name="again")
    a, b = (json.loads((r / "features.json").read_text())["inputs"][0]["tokenizer"] for r in (first, again))
    assert a == b
    before, after = load_file(str(first / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert before.keys() == after.keys()
    other = sms_config(runs, tiny_bert, max_steps=1, model={"name": "pretrained", "source": str(tiny_bert), "init_from": str(first)})
    other["data"]["label_aliases"] = {"spam": "junk"}  # other classes: the head would not mean the same
    with pytest.raises(ConfigError, match=r"model.init_from: .*the output 'label' fits differently on this data"):
        forgeml.train(other, name="other")


def test_a_config_written_out_whole_continues_a_run_whose_settings_are_not_the_defaults(runs, tiny_bert):
    # a study's trials and best.yaml write every field; those at their defaults (pooling: mean) are not choices
    # that clash with the run's (pooling: cls): init_from used to refuse every such config
    from forgeml.config import load_config

    first = forgeml.train(sms_config(runs, tiny_bert, max_steps=1, model={"name": "pretrained", "source": str(tiny_bert),
                                                                          "pooling": "cls"}))
    written = load_config(sms_config(runs, tiny_bert, max_steps=1, model={"name": "pretrained", "source": str(tiny_bert),
                                                                           "init_from": str(first)})).to_dict()
    again = forgeml.train(written, name="again")
    assert __import__("yaml").safe_load((again / "config.yaml").read_text())["model"]["pooling"] == "cls"
